//! The Enterprise Manager client: one logon session per endpoint shared by every call,
//! single-flight re-logon on 401, exactly one `Accept` value, no cookie store, and every call
//! through the endpoint's [`Limiter`]. Endpoint trouble (no answer, logon refused) marks the
//! endpoint's [`EndpointHealth`] down; while it is down no call is made but the prober's
//! (logons and probes live in `session.rs`). Knows nothing of the ledger or the broker.

use super::codec::{self, Format, Task};
use super::error::{EmError, ErrorClass, classify, is_lost_task_message};
use crate::config::{EmSettings, Secret, SecretSource};
use crate::health::EndpointHealth;
use crate::http::{Answer, Failure, read};
use crate::limit::{CallPermit, Limiter};
use reqwest::{Method, StatusCode};
use std::sync::{Arc, Mutex};

/// The session-token header (and cookie) name.
pub const TOKEN_HEADER: &str = "X-RestSvcSessionId";

/// One EM logon session. The GUID identifies it (and logs it off); the token authorises calls.
pub(super) struct Session {
    pub guid: String,
    pub token: Secret,
}

/// Who makes a call: work for requests (refused at once while the endpoint is down), or the
/// prober (which is how a down endpoint comes back).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Purpose {
    Work,
    Probe,
}

/// What a DELETE answered.
#[derive(Debug, Clone, PartialEq)]
pub enum DeleteAnswer {
    /// 202 + Task: the task to follow, and the GUID of the session it belongs to.
    Task {
        task: Task,
        session: String,
        status: u16,
    },
    /// 200/204: done, nothing to follow.
    Done { status: u16 },
    /// Another 2xx, or a 202 whose Task cannot be read (an HTML page from a proxy, an empty
    /// body, no task id): the delete was accepted, but there is no task to follow. It is
    /// never sent again; the deletion is confirmed on the resource instead.
    Accepted { status: u16, reason: String },
}

/// Whether a resource exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    Present,
    Absent,
}

/// A client for one EM endpoint.
pub struct EmClient {
    pub(super) http: reqwest::Client,
    /// The endpoint's URL without a trailing slash; every path starts with `/api/`.
    pub(super) base: String,
    pub(super) username: String,
    pub(super) password: SecretSource,
    pub(super) format: Format,
    pub(super) limiter: Arc<Limiter>,
    pub(super) health: Arc<EndpointHealth>,
    pub(super) current: Mutex<Option<Arc<Session>>>,
    pub(super) logon_gate: tokio::sync::Mutex<()>,
}

impl EmClient {
    /// Builds the client (TLS trust and timeouts from `settings`), reporting endpoint trouble
    /// to `health`. Does not log on yet.
    pub fn new(
        settings: &EmSettings,
        limiter: Arc<Limiter>,
        health: Arc<EndpointHealth>,
    ) -> anyhow::Result<Self> {
        let http = crate::http::client(&settings.http)?;
        Ok(EmClient {
            http,
            base: settings.url.trim_end_matches('/').to_string(),
            username: settings.username.clone(),
            password: settings.password.clone(),
            format: settings.format,
            limiter,
            health,
            current: Mutex::new(None),
            logon_gate: tokio::sync::Mutex::new(()),
        })
    }

    /// The endpoint's health.
    pub fn health(&self) -> &Arc<EndpointHealth> {
        &self.health
    }

    /// The password's source (the prober watches its file).
    pub fn password(&self) -> &SecretSource {
        &self.password
    }

    /// The GUID of the current session, if logged on.
    pub fn session_guid(&self) -> Option<String> {
        self.current_session().map(|s| s.guid.clone())
    }

    pub(super) fn current_session(&self) -> Option<Arc<Session>> {
        self.current
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Refuses a call for work while the endpoint is down (no remote call is made).
    pub(super) fn check_up(&self, purpose: Purpose) -> Result<(), EmError> {
        match self.health.down_reason() {
            Some(reason) if purpose == Purpose::Work => Err(EmError::unavailable(format!(
                "endpoint `{}` is down ({reason}): waiting for it",
                self.health.name()
            ))),
            _ => Ok(()),
        }
    }

    /// Sends `DELETE {path}` (a path below the endpoint, e.g. `/api/jobs/{id}`).
    pub async fn delete(&self, path: &str) -> Result<DeleteAnswer, EmError> {
        let (answer, session) = self.call(Method::DELETE, path, "delete", true).await?;
        let status = answer.status.as_u16();
        match answer.status {
            StatusCode::OK | StatusCode::NO_CONTENT => Ok(DeleteAnswer::Done { status }),
            StatusCode::ACCEPTED | StatusCode::CREATED => {
                match codec::decode_task(self.format, &answer.body) {
                    Ok(task) if !task.task_id.is_empty() => Ok(DeleteAnswer::Task {
                        task,
                        session: session.guid.clone(),
                        status,
                    }),
                    Ok(_) => Ok(DeleteAnswer::Accepted {
                        status,
                        reason: "its Task has no task id".into(),
                    }),
                    Err(e) => Ok(DeleteAnswer::Accepted {
                        status,
                        reason: format!("its Task cannot be read: {e}"),
                    }),
                }
            }
            s if s.is_success() => Ok(DeleteAnswer::Accepted {
                status,
                reason: "no Task was expected with this status".into(),
            }),
            StatusCode::INTERNAL_SERVER_ERROR if path.starts_with("/api/tasks/") => {
                let err = self.error(answer);
                if is_lost_task_message(&err.message) {
                    Err(foreign_task(err))
                } else {
                    Err(err)
                }
            }
            _ => Err(self.error(answer)),
        }
    }

    /// `GET {path}`: whether the resource still exists (used to verify a deletion).
    pub async fn presence(&self, path: &str) -> Result<Presence, EmError> {
        let (answer, _) = self.call(Method::GET, path, "verify", true).await?;
        match answer.status {
            s if s.is_success() => Ok(Presence::Present),
            StatusCode::NOT_FOUND => Ok(Presence::Absent),
            _ => Err(self.error(answer)),
        }
    }

    /// `GET /api/jobs/{job_id}`: the job's `Name` (for the protected-name globs), budgeted
    /// like every call. A job EM does not know (404) is an error of class
    /// [`ErrorClass::NotFound`] ([`EmError::is_absent`]); a 2xx whose body has no readable
    /// `Name` is a transient error, so no name check passes on a name it did not read.
    pub async fn job_name(&self, job_id: &str) -> Result<String, EmError> {
        let job = crate::request::Segment::parse(job_id)
            .map_err(|e| EmError::not_sent(format!("job id: {e}")))?;
        let path = format!("/api/jobs/{}", job.as_str());
        let (answer, _) = self.call(Method::GET, &path, "read_job", true).await?;
        if !answer.status.is_success() {
            return Err(self.error(answer));
        }
        codec::decode_job_ref(self.format, &answer.body)
            .map(|job| job.name)
            .map_err(|e| EmError::transport(e.to_string()))
    }

    /// Logs the current session off (`DELETE /api/logonSessions/{guid}`), if there is one.
    pub async fn log_off(&self) -> Result<(), EmError> {
        let Some(session) = self
            .current
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        else {
            return Ok(());
        };
        self.end_session(&session).await
    }

    /// `DELETE /api/logonSessions/{guid}` for `session`; a session EM no longer knows is
    /// ended already.
    pub(super) async fn end_session(&self, session: &Session) -> Result<(), EmError> {
        let path = format!("/api/logonSessions/{}", session.guid);
        let answer = self
            .send(
                Method::DELETE,
                &path,
                "log_off",
                Some(session),
                Purpose::Work,
            )
            .await?;
        match answer.status {
            s if s.is_success() || s == StatusCode::NOT_FOUND || s == StatusCode::UNAUTHORIZED => {
                Ok(())
            }
            _ => Err(self.error(answer)),
        }
    }

    /// One authorised call. On 401 the session is renewed (single-flight) and, when
    /// `retry_on_401`, the call is sent once more. Returns the session the answer came under.
    pub(super) async fn call(
        &self,
        method: Method,
        path: &str,
        operation: &'static str,
        retry_on_401: bool,
    ) -> Result<(Answer, Arc<Session>), EmError> {
        self.check_up(Purpose::Work)?;
        let session = self.session().await?;
        let answer = self
            .send(
                method.clone(),
                path,
                operation,
                Some(&session),
                Purpose::Work,
            )
            .await?;
        if answer.status != StatusCode::UNAUTHORIZED {
            return Ok((answer, session));
        }
        let fresh = self.relogon(Some(&session)).await?;
        if !retry_on_401 {
            return Ok((answer, session));
        }
        let answer = self
            .send(method, path, operation, Some(&fresh), Purpose::Work)
            .await?;
        if answer.status == StatusCode::UNAUTHORIZED {
            return Err(EmError {
                class: ErrorClass::Unauthorized,
                status: Some(401),
                message: "EM refused a freshly issued session token".into(),
                retry_after: None,
            });
        }
        Ok((answer, fresh))
    }

    /// Sends one request through the limiter, with the one `Accept` value and the token. A
    /// call for work that waited for the budget while the endpoint went down is not sent.
    pub(super) async fn send(
        &self,
        method: Method,
        path: &str,
        operation: &'static str,
        session: Option<&Session>,
        purpose: Purpose,
    ) -> Result<Answer, EmError> {
        let mut permit = self.limiter.acquire().await;
        self.check_up(purpose)?;
        permit.sending(operation);
        let url = format!("{}{path}", self.base);
        let mut req = self
            .http
            .request(method, url)
            .header(reqwest::header::ACCEPT, self.format.media_type());
        if let Some(s) = session {
            req = req.header(TOKEN_HEADER, s.token.expose());
        }
        let sent = req
            .send()
            .await
            .map_err(|e| self.transport_error(&e, &mut permit))?;
        let answer = read(sent)
            .await
            .map_err(|f| self.read_failure(f, &mut permit))?;
        permit.answered(answer.status.as_u16());
        self.limiter
            .observe(answer.status.as_u16(), answer.retry_after);
        Ok(answer)
    }

    /// A transport failure of the call `permit` holds; one that means the endpoint does not
    /// answer marks it down, a timeout is told to the permit (an overload signal).
    pub(super) fn transport_error(&self, e: &reqwest::Error, permit: &mut CallPermit) -> EmError {
        self.read_failure(Failure::of(e), permit)
    }

    /// A call that got no (whole) answer, as [`EmClient::transport_error`] says.
    pub(super) fn read_failure(&self, f: Failure, permit: &mut CallPermit) -> EmError {
        if f.timed_out {
            permit.timed_out();
        }
        self.troubled(f.into())
    }

    /// Reports an [`ErrorClass::Unavailable`] error to the endpoint's health.
    pub(super) fn troubled(&self, e: EmError) -> EmError {
        if e.class == ErrorClass::Unavailable {
            self.health.trouble(&e.to_string());
        }
        e
    }

    /// Turns a non-success answer into an [`EmError`] with EM's `Message`.
    pub(super) fn error(&self, answer: Answer) -> EmError {
        let status = answer.status.as_u16();
        let message = codec::decode_error(self.format, &answer.body)
            .map(|e| e.message)
            .filter(|m| !m.is_empty())
            .unwrap_or_else(|| {
                answer
                    .status
                    .canonical_reason()
                    .unwrap_or("unexpected answer")
                    .to_string()
            });
        EmError {
            class: classify(status),
            status: Some(status),
            message,
            retry_after: answer.retry_after,
        }
    }
}

/// EM's lost-task answer to `DELETE /api/tasks/{id}`: the task belongs to another logon
/// session (EM tasks are session-scoped), so no session of reaper's can ever remove it.
/// A permanent refusal, not something to retry.
fn foreign_task(err: EmError) -> EmError {
    EmError {
        class: ErrorClass::Permanent,
        message: format!(
            "EM tasks belong to the logon session that created them, and this one was not \
             created by reaper's current session, so it cannot be removed (EM: {})",
            err.message
        ),
        ..err
    }
}

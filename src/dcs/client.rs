//! The DCS client: deletes (and lists) background tasks with `X-Auth-Token`, every call —
//! IAM token calls included — through the endpoint's [`Limiter`]. On 401 the project's token
//! is renewed (single-flight) and the call is sent exactly once more. Endpoint trouble (DCS or
//! IAM not answering, IAM refusing the password, DCS refusing the static token) marks the
//! endpoint's [`EndpointHealth`] down; while it is down no call is made but the prober's.
//! Knows nothing of the ledger or the broker.

use super::answer::{Answer, into_error, read, transport_error};
use super::error::{DcsError, ErrorClass, Origin};
use super::token::{Iam, Purpose, Token, Tokens, down};
use super::wire::{TOKEN_HEADER, TaskList};
use crate::config::{DcsAuth, DcsSettings, SecretSource};
use crate::health::EndpointHealth;
use crate::limit::Limiter;
use crate::request::{Segment, dcs_tasks_path};
use reqwest::{Method, StatusCode};
use std::sync::{Arc, Mutex};

/// A background task deleted (DELETE answered 200 or 204). DCS deletes synchronously:
/// there is nothing to follow afterwards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DcsDeleted {
    pub status: u16,
    /// The answer's `X-Request-Id`.
    pub request_id: Option<String>,
}

/// A client for one DCS endpoint.
pub struct DcsClient {
    http: reqwest::Client,
    url: String,
    tokens: Tokens,
    limiter: Arc<Limiter>,
    health: Arc<EndpointHealth>,
    /// The project and instance of the last call that met endpoint trouble: what a probe asks.
    probe_target: Mutex<Option<(Segment, Segment)>>,
    not_found_is_absent: bool,
}

impl DcsClient {
    /// Builds the client (TLS trust and timeouts from `settings`, used for IAM as well),
    /// reporting endpoint trouble to `health`. Asks IAM for nothing yet.
    pub fn new(
        settings: &DcsSettings,
        limiter: Arc<Limiter>,
        health: Arc<EndpointHealth>,
    ) -> anyhow::Result<Self> {
        let http = crate::http::client(&settings.http)?;
        let tokens = match &settings.auth {
            DcsAuth::Static(token) => Tokens::fixed(token.clone()),
            DcsAuth::Iam {
                iam_url,
                domain,
                username,
                password,
            } => Tokens::Iam(Box::new(Iam {
                http: http.clone(),
                limiter: Arc::clone(&limiter),
                url: format!("{}/v3/auth/tokens", iam_url.trim_end_matches('/')),
                domain: domain.clone(),
                username: username.clone(),
                password: password.clone(),
                health: Arc::clone(&health),
                projects: Mutex::default(),
            })),
        };
        Ok(DcsClient {
            http,
            url: settings.url.trim_end_matches('/').to_string(),
            tokens,
            limiter,
            health,
            probe_target: Mutex::default(),
            not_found_is_absent: settings.not_found_is_absent,
        })
    }

    /// The endpoint's health.
    pub fn health(&self) -> &Arc<EndpointHealth> {
        &self.health
    }

    /// The secrets (IAM password or static token) whose files the prober watches.
    pub fn secrets(&self) -> Vec<SecretSource> {
        self.tokens.secrets()
    }

    /// Probes the endpoint (for the health prober only): lists the tasks of the instance whose
    /// call met the trouble — with an IAM token asked for its project first, when IAM is
    /// used. Any answer but a refused token shows the endpoint usable again.
    pub async fn probe(&self) -> Result<String, String> {
        let target = self
            .probe_target
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let Some((project_id, instance_id)) = target else {
            return Ok("no call to probe with".into());
        };
        let path = dcs_tasks_path(&project_id, &instance_id, None);
        let answer = self
            .call(Method::GET, project_id.as_str(), &path, Purpose::Probe)
            .await
            .map_err(|e| e.to_string())?;
        Ok(format!("DCS answered {}", answer.status.as_u16()))
    }

    /// Remembers what to probe with when `result` is endpoint trouble.
    fn note<T>(&self, result: &Result<T, DcsError>, project_id: &Segment, instance_id: &Segment) {
        if let Err(e) = result
            && e.class == ErrorClass::Unavailable
        {
            *self.probe_target.lock().unwrap_or_else(|e| e.into_inner()) =
                Some((project_id.clone(), instance_id.clone()));
        }
    }

    /// Whether a 404 on delete counts as `already_absent` (else `refused`).
    pub fn not_found_is_absent(&self) -> bool {
        self.not_found_is_absent
    }

    /// `DELETE /v2/{project_id}/instances/{instance_id}/tasks/{task_id}`. Success is 200
    /// (`{"message": ""}` or an empty body) or 204 — and any other 2xx, whatever its body:
    /// DCS deletes synchronously, so an answered 2xx is the deletion.
    pub async fn delete_task(
        &self,
        project_id: &Segment,
        instance_id: &Segment,
        task_id: &Segment,
    ) -> Result<DcsDeleted, DcsError> {
        let path = dcs_tasks_path(project_id, instance_id, Some(task_id));
        let answer = self
            .call(Method::DELETE, project_id.as_str(), &path, Purpose::Work)
            .await;
        self.note(&answer, project_id, instance_id);
        let answer = answer?;
        if answer.status.is_success() {
            return Ok(DcsDeleted {
                status: answer.status.as_u16(),
                request_id: answer.request_id,
            });
        }
        Err(into_error(answer, Origin::Dcs))
    }

    /// `GET /v2/{project_id}/instances/{instance_id}/tasks`: the instance's background tasks.
    pub async fn list_tasks(
        &self,
        project_id: &Segment,
        instance_id: &Segment,
    ) -> Result<TaskList, DcsError> {
        let path = dcs_tasks_path(project_id, instance_id, None);
        let answer = self
            .call(Method::GET, project_id.as_str(), &path, Purpose::Work)
            .await;
        self.note(&answer, project_id, instance_id);
        let answer = answer?;
        if answer.status != StatusCode::OK {
            return Err(into_error(answer, Origin::Dcs));
        }
        serde_json::from_str(&answer.body)
            .map_err(|e| DcsError::transport(Origin::Dcs, format!("unreadable task listing: {e}")))
    }

    /// One authorised call. On 401 an IAM token is renewed and the call sent once more; a
    /// second 401 is returned as it is, classified `Unauthorized`. A static token refused
    /// is read again from its file and, when it changed, the call is sent once more; still
    /// refused, the endpoint is down (its one token is wrong: no request could pass).
    async fn call(
        &self,
        method: Method,
        project_id: &str,
        path: &str,
        purpose: Purpose,
    ) -> Result<Answer, DcsError> {
        let (answer, token) = self
            .send(method.clone(), project_id, path, None, purpose)
            .await?;
        if answer.status != StatusCode::UNAUTHORIZED {
            return Ok(answer);
        }
        let renewable = self.tokens.is_renewable();
        if renewable || self.tokens.reload_static() {
            tracing::debug!(
                project_id,
                "DCS refused the token: retrying once with a new one"
            );
            let (answer, _) = self
                .send(method, project_id, path, Some(&token), purpose)
                .await?;
            if renewable || answer.status != StatusCode::UNAUTHORIZED {
                return Ok(answer);
            }
        }
        let mut e = into_error(answer, Origin::Dcs);
        e.class = ErrorClass::Unavailable;
        e.message = format!(
            "DCS refused the static token ({}): check REAPER_DCS_TOKEN or REAPER_DCS_TOKEN_FILE",
            e.message
        );
        self.health.trouble(&e.to_string());
        Err(e)
    }

    /// Sends one request through the limiter with a token that is still fresh when the call
    /// leaves: one that aged while waiting for the budget is renewed first (without holding
    /// a call slot, which the IAM call needs). `refused` is never sent again. A 429/503
    /// pauses the whole endpoint.
    async fn send(
        &self,
        method: Method,
        project_id: &str,
        path: &str,
        refused: Option<&Arc<Token>>,
        purpose: Purpose,
    ) -> Result<(Answer, Arc<Token>), DcsError> {
        self.check_up(purpose)?;
        let mut token = self.tokens.get(project_id, refused, purpose).await?;
        let mut permit = self.limiter.acquire().await;
        if !token.is_fresh() {
            drop(permit);
            token = self.tokens.renew(project_id, &token, purpose).await?;
            permit = self.limiter.acquire().await;
        }
        self.check_up(purpose)?;
        permit.sending(match purpose {
            Purpose::Probe => "probe",
            Purpose::Work if method == Method::DELETE => "delete",
            Purpose::Work => "list_tasks",
        });
        let resp = self
            .http
            .request(method, format!("{}{path}", self.url))
            .header(reqwest::header::ACCEPT, "application/json")
            .header(TOKEN_HEADER, token.value.expose())
            .send()
            .await
            .map_err(|e| self.troubled(transport_error(Origin::Dcs, &e, &mut permit)))?;
        let answer = read(Origin::Dcs, resp, &mut permit)
            .await
            .map_err(|e| self.troubled(e))?;
        permit.answered(answer.status.as_u16());
        drop(permit);
        self.limiter
            .observe(answer.status.as_u16(), answer.retry_after);
        Ok((answer, token))
    }
}

impl DcsClient {
    /// Refuses a call for work while the endpoint is down (no remote call is made).
    fn check_up(&self, purpose: Purpose) -> Result<(), DcsError> {
        match self.health.down_reason() {
            Some(reason) if purpose == Purpose::Work => Err(DcsError::unavailable(
                Origin::Dcs,
                down(&self.health, &reason),
            )),
            _ => Ok(()),
        }
    }

    /// Reports an [`ErrorClass::Unavailable`] error to the endpoint's health.
    fn troubled(&self, e: DcsError) -> DcsError {
        if e.class == ErrorClass::Unavailable {
            self.health.trouble(&e.to_string());
        }
        e
    }
}

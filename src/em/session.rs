//! The EM client's logon session: logging on (single-flight, through the budget), renewing a
//! session EM forgot, and probing the endpoint while it is down. A refused logon (401/403)
//! marks the endpoint down: reaper's credentials are wrong, which is no request's fault, and
//! retrying them per request would lock the account. The password file is read again when EM
//! refuses it, so a rotated password is used at once.

use super::client::{EmClient, Purpose, Session, TOKEN_HEADER};
use super::codec;
use super::error::{EmError, ErrorClass};
use crate::config::Secret;
use crate::http::read;
use reqwest::{Method, StatusCode};
use std::sync::Arc;

impl EmClient {
    /// The current session, logging on when there is none.
    pub(super) async fn session(&self) -> Result<Arc<Session>, EmError> {
        match self.current_session() {
            Some(s) => Ok(s),
            None => self.relogon(None).await,
        }
    }

    /// Replaces `stale` (or the absent session) with a new one. Single-flight: concurrent
    /// callers wait on one logon and all get its session; when that logon marked the
    /// endpoint down, they get its error without logging on themselves.
    ///
    /// Cancel safety: a logon cancelled half-way leaves the old session in place.
    pub(super) async fn relogon(
        &self,
        stale: Option<&Arc<Session>>,
    ) -> Result<Arc<Session>, EmError> {
        let gate = self.logon_gate.lock().await;
        self.check_up(Purpose::Work)?;
        if let Some(cur) = self.current_session() {
            let replaced = stale.is_none_or(|s| !Arc::ptr_eq(s, &cur));
            if replaced {
                return Ok(cur);
            }
        }
        let (session, replaced) = self.install(self.logon(Purpose::Work).await?);
        drop(gate);
        self.retire(replaced).await;
        Ok(session)
    }

    /// Makes `session` the current one; returns it and the session it replaced.
    fn install(&self, session: Session) -> (Arc<Session>, Option<Arc<Session>>) {
        let session = Arc::new(session);
        tracing::info!(session = %session.guid, "logged on to Enterprise Manager");
        let replaced = self
            .current
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .replace(Arc::clone(&session));
        (session, replaced)
    }

    /// EM keeps leftover sessions: a replaced one is logged off (best effort; it usually
    /// expired already, which EM answers 401 or 404).
    async fn retire(&self, replaced: Option<Arc<Session>>) {
        if let Some(old) = replaced
            && let Err(e) = self.end_session(&old).await
        {
            tracing::debug!(session = %old.guid, error = %e, "logging off a replaced session failed");
        }
    }

    /// Probes the endpoint (for the health prober only): with a current session, a
    /// `GET /api/logonSessions/{guid}` — any answer but 401 shows EM answers and keeps the
    /// session, so tasks stay pollable; without one (or when EM forgot it), a logon. Says how
    /// EM answered, or why it still cannot be used.
    pub async fn probe(&self) -> Result<String, String> {
        let gate = self.logon_gate.lock().await;
        if let Some(s) = self.current_session() {
            let path = format!("/api/logonSessions/{}", s.guid);
            let answer = self
                .send(Method::GET, &path, "probe", Some(&s), Purpose::Probe)
                .await
                .map_err(|e| e.to_string())?;
            if answer.status != StatusCode::UNAUTHORIZED {
                return Ok(format!(
                    "EM answered {} with the current session",
                    answer.status.as_u16()
                ));
            }
        }
        let session = self
            .logon(Purpose::Probe)
            .await
            .map_err(|e| e.to_string())?;
        let (_, replaced) = self.install(session);
        drop(gate);
        self.retire(replaced).await;
        Ok("logged on".into())
    }

    /// Logs on. A refused logon reads the password file again and, when it changed, tries
    /// once more with the new password; still refused, it marks the endpoint down.
    async fn logon(&self, purpose: Purpose) -> Result<Session, EmError> {
        let result = match self.try_logon(purpose).await {
            Err(e) if refused(&e) && self.password.reload() => {
                tracing::info!("the EM password file changed: logging on with the new password");
                self.try_logon(purpose).await
            }
            other => other,
        };
        result.map_err(|e| if refused(&e) { self.troubled(e) } else { e })
    }

    async fn try_logon(&self, purpose: Purpose) -> Result<Session, EmError> {
        let mut permit = self.limiter.acquire().await;
        self.check_up(purpose)?;
        permit.sending("logon");
        let url = format!("{}/api/sessionMngr/?v=latest", self.base);
        let password = self.password.current();
        let resp = self
            .http
            .post(url)
            .header(reqwest::header::ACCEPT, self.format.media_type())
            .basic_auth(&self.username, Some(password.expose()))
            .send()
            .await
            .map_err(|e| self.transport_error(&e, &mut permit))?;
        let token = resp
            .headers()
            .get(TOKEN_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let answer = read(resp)
            .await
            .map_err(|f| self.read_failure(f, &mut permit))?;
        let status = answer.status.as_u16();
        permit.answered(status);
        if matches!(status, 401 | 403) {
            return Err(EmError {
                class: ErrorClass::Unavailable,
                status: Some(status),
                message: format!(
                    "logon refused for user `{}`: check REAPER_EM_USERNAME and the password",
                    self.username
                ),
                retry_after: None,
            });
        }
        if !answer.status.is_success() {
            return Err(self.error(answer));
        }
        let token = token.ok_or_else(|| {
            EmError::transport(format!("logon answered without a {TOKEN_HEADER} header"))
        })?;
        let session = codec::decode_logon_session(self.format, &answer.body)
            .map_err(|e| EmError::transport(e.to_string()))?;
        Ok(Session {
            guid: session.session_id,
            token: Secret::new(token),
        })
    }
}

/// Whether EM refused reaper's credentials (not merely failed to answer).
fn refused(e: &EmError) -> bool {
    e.class == ErrorClass::Unavailable && e.status.is_some()
}

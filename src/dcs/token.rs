//! DCS tokens: a static one, or project-scoped IAM tokens obtained with password auth
//! (`POST {iam_url}/v3/auth/tokens`, token in `X-Subject-Token`), cached one per project and
//! renewed before they expire or when DCS answers 401. Renewal is single-flight per project:
//! concurrent callers wait on one IAM call and all get its token.
//!
//! IAM refusing the credentials (401/403), or not answering, marks the endpoint down; the
//! password file is read again when IAM refuses it. A static token comes from its source as
//! it is now (a rotated token file is picked up).
//!
//! Tokens and the password live in [`Secret`]s: never logged, never put into an error.

use super::answer::{into_error, read, transport_error};
use super::cache::{Gate, ProjectTokens};
use super::error::{DcsError, ErrorClass, Origin};
use super::wire::{SUBJECT_TOKEN_HEADER, TokenBody, auth_request};
use crate::config::{Secret, SecretSource};
use crate::health::EndpointHealth;
use crate::limit::Limiter;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// IAM's documented token lifetime, assumed when an answer does not say.
const DEFAULT_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// How long before its expiry a token of `lifetime` is renewed: 5 minutes, or a tenth of
/// the lifetime when that is shorter (so short-lived tokens are still used for most of it).
pub fn refresh_margin(lifetime: Duration) -> Duration {
    (lifetime / 10).min(Duration::from_secs(5 * 60))
}

/// One token.
pub(super) struct Token {
    pub value: Secret,
    /// When to renew it proactively; `None` for a static token.
    pub(super) renew_at: Option<Instant>,
}

impl Token {
    /// Whether it is not yet due for renewal.
    pub fn is_fresh(&self) -> bool {
        self.renew_at.is_none_or(|t| Instant::now() < t)
    }
}

/// Who makes a call: work for requests (refused at once while the endpoint is down), or the
/// prober (which is how a down endpoint comes back).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Purpose {
    Work,
    Probe,
}

/// Where tokens come from.
pub(super) enum Tokens {
    /// A static token: the source's value, and the token made of it last.
    Static {
        source: SecretSource,
        token: Mutex<Arc<Token>>,
    },
    Iam(Box<Iam>),
}

/// Password credentials and the per-project token cache.
pub(super) struct Iam {
    pub http: reqwest::Client,
    pub limiter: Arc<Limiter>,
    /// `{iam_url}/v3/auth/tokens`
    pub url: String,
    pub domain: String,
    pub username: String,
    pub password: SecretSource,
    pub health: Arc<EndpointHealth>,
    /// Tokens and renewal gates per project, bounded (see `cache.rs`).
    pub projects: Mutex<ProjectTokens>,
}

impl Tokens {
    pub fn fixed(source: SecretSource) -> Self {
        let token = Mutex::new(static_token(source.current()));
        Tokens::Static { source, token }
    }

    /// A token for `project_id`: the cached one while fresh (and not `refused`), else a
    /// new one. A static token is its source's current value.
    pub async fn get(
        &self,
        project_id: &str,
        refused: Option<&Arc<Token>>,
        purpose: Purpose,
    ) -> Result<Arc<Token>, DcsError> {
        match self {
            Tokens::Static { source, token } => {
                let value = source.current();
                let mut t = token.lock().unwrap_or_else(|e| e.into_inner());
                if t.value != value {
                    *t = static_token(value);
                }
                Ok(Arc::clone(&t))
            }
            Tokens::Iam(iam) => match iam.cached(project_id) {
                Some(t) if t.is_fresh() && refused.is_none_or(|r| !Arc::ptr_eq(r, &t)) => Ok(t),
                _ => iam.renew(project_id, refused, purpose).await,
            },
        }
    }

    /// A new token in place of `stale` (refused by DCS, or aged while waiting for the
    /// budget), unless another caller already replaced it. A static token stays as it is.
    pub async fn renew(
        &self,
        project_id: &str,
        stale: &Arc<Token>,
        purpose: Purpose,
    ) -> Result<Arc<Token>, DcsError> {
        match self {
            Tokens::Static { .. } => self.get(project_id, None, purpose).await,
            Tokens::Iam(iam) => iam.renew(project_id, Some(stale), purpose).await,
        }
    }

    /// DCS refused the static token: reads its file again. Returns whether it changed (then
    /// the call is worth sending once more).
    pub fn reload_static(&self) -> bool {
        match self {
            Tokens::Static { source, .. } => source.reload(),
            Tokens::Iam(_) => false,
        }
    }

    /// The secrets whose files the prober watches.
    pub fn secrets(&self) -> Vec<SecretSource> {
        match self {
            Tokens::Static { source, .. } => vec![source.clone()],
            Tokens::Iam(iam) => vec![iam.password.clone()],
        }
    }

    /// Whether a refused token can be replaced (IAM) or not (static).
    pub fn is_renewable(&self) -> bool {
        matches!(self, Tokens::Iam(_))
    }
}

fn static_token(value: Secret) -> Arc<Token> {
    Arc::new(Token {
        value,
        renew_at: None,
    })
}

impl Iam {
    fn cached(&self, project_id: &str) -> Option<Arc<Token>> {
        self.projects
            .lock()
            .expect("lock poisoned")
            .token(project_id)
    }

    fn gate(&self, project_id: &str) -> Gate {
        self.projects
            .lock()
            .expect("lock poisoned")
            .gate(project_id)
    }

    /// Replaces `stale` (or the absent token) with a new one, unless another caller already
    /// did. Single-flight per project; callers that waited on a call that marked the
    /// endpoint down get its error without calling IAM themselves.
    ///
    /// Cancel safety: cancelled half-way, the old token (if any) stays cached.
    async fn renew(
        &self,
        project_id: &str,
        stale: Option<&Arc<Token>>,
        purpose: Purpose,
    ) -> Result<Arc<Token>, DcsError> {
        let gate = self.gate(project_id);
        let _one_at_a_time = gate.lock().await;
        self.check_up(purpose)?;
        if let Some(cur) = self.cached(project_id) {
            let replaced = stale.is_none_or(|s| !Arc::ptr_eq(s, &cur));
            if replaced && cur.is_fresh() {
                return Ok(cur);
            }
        }
        let token = Arc::new(self.fetch(project_id, purpose).await?);
        self.projects
            .lock()
            .expect("lock poisoned")
            .store(project_id, Arc::clone(&token));
        Ok(token)
    }

    /// Refuses a call for work while the endpoint is down.
    fn check_up(&self, purpose: Purpose) -> Result<(), DcsError> {
        match self.health.down_reason() {
            Some(reason) if purpose == Purpose::Work => Err(DcsError::unavailable(
                Origin::Iam,
                down(&self.health, &reason),
            )),
            _ => Ok(()),
        }
    }

    /// Asks IAM for a token. Refused, it reads the password file again and, when it changed,
    /// asks once more; still refused (or not answered), it marks the endpoint down.
    async fn fetch(&self, project_id: &str, purpose: Purpose) -> Result<Token, DcsError> {
        let result = match self.try_fetch(project_id, purpose).await {
            Err(e) if refused(&e) && self.password.reload() => {
                tracing::info!("the DCS (IAM) password file changed: asking IAM again");
                self.try_fetch(project_id, purpose).await
            }
            other => other,
        };
        result.map_err(|e| if refused(&e) { self.troubled(e) } else { e })
    }

    /// Reports an [`ErrorClass::Unavailable`] error to the endpoint's health.
    fn troubled(&self, e: DcsError) -> DcsError {
        if e.class == ErrorClass::Unavailable {
            self.health.trouble(&e.to_string());
        }
        e
    }

    /// One IAM call, through the endpoint's limiter.
    async fn try_fetch(&self, project_id: &str, purpose: Purpose) -> Result<Token, DcsError> {
        let mut permit = self.limiter.acquire().await;
        self.check_up(purpose)?;
        permit.sending("logon");
        let password = self.password.current();
        let body = auth_request(&self.domain, &self.username, password.expose(), project_id);
        let resp = self
            .http
            .post(&self.url)
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/json;charset=utf8",
            )
            .body(body.to_string())
            .send()
            .await
            .map_err(|e| self.troubled(transport_error(Origin::Iam, &e, &mut permit)))?;
        let token = resp
            .headers()
            .get(SUBJECT_TOKEN_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(|v| Secret::new(v.trim()));
        let answer = read(Origin::Iam, resp, &mut permit)
            .await
            .map_err(|e| self.troubled(e))?;
        permit.answered(answer.status.as_u16());
        if !answer.status.is_success() {
            if let Some(d) = answer.retry_after
                && matches!(answer.status.as_u16(), 429 | 503)
            {
                self.limiter.pause_for(d);
            }
            return Err(self.refusal(into_error(answer, Origin::Iam)));
        }
        let value = token.filter(|t| !t.expose().is_empty()).ok_or_else(|| {
            DcsError::transport(
                Origin::Iam,
                format!("IAM answered without a {SUBJECT_TOKEN_HEADER} header"),
            )
        })?;
        let lifetime = lifetime(&answer.body);
        tracing::info!(project_id, valid_for = ?lifetime, "obtained a DCS token from IAM");
        Ok(Token {
            value,
            renew_at: Some(Instant::now() + lifetime - refresh_margin(lifetime)),
        })
    }

    /// IAM refusing the credentials is a configuration problem: say which keys to check.
    fn refusal(&self, mut e: DcsError) -> DcsError {
        if matches!(e.status, Some(401 | 403)) {
            e.class = ErrorClass::Unavailable;
            e.message = format!(
                "IAM refused user `{}` of domain `{}` ({}): check REAPER_DCS_USERNAME, \
                 REAPER_DCS_DOMAIN and the password",
                self.username, self.domain, e.message
            );
        }
        e
    }
}

/// Whether IAM (or DCS, for a static token) refused reaper's credentials.
pub(super) fn refused(e: &DcsError) -> bool {
    e.class == ErrorClass::Unavailable && e.status.is_some()
}

/// The message of a call refused because the endpoint is down.
pub(super) fn down(health: &EndpointHealth, reason: &str) -> String {
    format!(
        "endpoint `{}` is down ({reason}): waiting for it",
        health.name()
    )
}

/// A token's lifetime by IAM's own clock (`expires_at - issued_at`, so clock skew between
/// IAM and this host does not matter), or the documented 24 h when the body does not say.
fn lifetime(body: &str) -> Duration {
    let Ok(TokenBody { token }) = serde_json::from_str::<TokenBody>(body) else {
        tracing::warn!("IAM's token answer has no readable expires_at: assuming 24 h");
        return DEFAULT_LIFETIME;
    };
    let issued = token.issued_at.unwrap_or_else(chrono::Utc::now);
    (token.expires_at - issued)
        .to_std()
        .unwrap_or(Duration::ZERO)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_renewed_five_minutes_or_a_tenth_of_their_life_early() {
        let table = [
            (Duration::from_secs(24 * 3600), Duration::from_secs(300)),
            (Duration::from_secs(3000), Duration::from_secs(300)),
            (Duration::from_secs(600), Duration::from_secs(60)),
            (Duration::from_secs(2), Duration::from_millis(200)),
            (Duration::ZERO, Duration::ZERO),
        ];
        for (life, margin) in table {
            assert_eq!(refresh_margin(life), margin, "{life:?}");
        }
    }

    #[test]
    fn the_lifetime_comes_from_the_body() {
        let body = r#"{"token":{"issued_at":"2020-01-04T08:42:38.000000Z",
                       "expires_at":"2020-01-05T08:42:38.000000Z","methods":["password"]}}"#;
        assert_eq!(lifetime(body), Duration::from_secs(24 * 3600));
        assert_eq!(lifetime("{}"), DEFAULT_LIFETIME);
        let past = r#"{"token":{"expires_at":"2020-01-05T08:42:38Z"}}"#;
        assert_eq!(
            lifetime(past),
            Duration::ZERO,
            "an expired token is renewed at once"
        );
    }
}

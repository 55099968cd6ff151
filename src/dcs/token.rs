//! DCS tokens: a static one, or project-scoped IAM tokens obtained with password auth
//! (`POST {iam_url}/v3/auth/tokens`, token in `X-Subject-Token`), cached one per project and
//! renewed before they expire or when DCS answers 401. Renewal is single-flight per project:
//! concurrent callers wait on one IAM call and all get its token.
//!
//! Tokens and the password live in [`Secret`]s: never logged, never put into an error.

use super::answer::{read, transport_error};
use super::cache::{Gate, ProjectTokens};
use super::error::{DcsError, ErrorClass, Origin};
use super::wire::{SUBJECT_TOKEN_HEADER, TokenBody, auth_request};
use crate::config::Secret;
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

/// Where tokens come from.
pub(super) enum Tokens {
    Static(Arc<Token>),
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
    pub password: Secret,
    /// Tokens and renewal gates per project, bounded (see `cache.rs`).
    pub projects: Mutex<ProjectTokens>,
}

impl Tokens {
    pub fn fixed(token: Secret) -> Self {
        Tokens::Static(Arc::new(Token {
            value: token,
            renew_at: None,
        }))
    }

    /// A token for `project_id`: the cached one while fresh (and not `refused`), else a
    /// new one.
    pub async fn get(
        &self,
        project_id: &str,
        refused: Option<&Arc<Token>>,
    ) -> Result<Arc<Token>, DcsError> {
        match self {
            Tokens::Static(t) => Ok(Arc::clone(t)),
            Tokens::Iam(iam) => match iam.cached(project_id) {
                Some(t) if t.is_fresh() && refused.is_none_or(|r| !Arc::ptr_eq(r, &t)) => Ok(t),
                _ => iam.renew(project_id, refused).await,
            },
        }
    }

    /// A new token in place of `stale` (refused by DCS, or aged while waiting for the
    /// budget), unless another caller already replaced it. A static token stays as it is.
    pub async fn renew(
        &self,
        project_id: &str,
        stale: &Arc<Token>,
    ) -> Result<Arc<Token>, DcsError> {
        match self {
            Tokens::Static(t) => Ok(Arc::clone(t)),
            Tokens::Iam(iam) => iam.renew(project_id, Some(stale)).await,
        }
    }

    /// Whether a refused token can be replaced (IAM) or not (static).
    pub fn is_renewable(&self) -> bool {
        matches!(self, Tokens::Iam(_))
    }
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
    /// did. Single-flight per project.
    ///
    /// Cancel safety: cancelled half-way, the old token (if any) stays cached.
    async fn renew(
        &self,
        project_id: &str,
        stale: Option<&Arc<Token>>,
    ) -> Result<Arc<Token>, DcsError> {
        let gate = self.gate(project_id);
        let _one_at_a_time = gate.lock().await;
        if let Some(cur) = self.cached(project_id) {
            let replaced = stale.is_none_or(|s| !Arc::ptr_eq(s, &cur));
            if replaced && cur.is_fresh() {
                return Ok(cur);
            }
        }
        let token = Arc::new(self.fetch(project_id).await?);
        self.projects
            .lock()
            .expect("lock poisoned")
            .store(project_id, Arc::clone(&token));
        Ok(token)
    }

    /// One IAM call, through the endpoint's limiter.
    async fn fetch(&self, project_id: &str) -> Result<Token, DcsError> {
        let body = auth_request(
            &self.domain,
            &self.username,
            self.password.expose(),
            project_id,
        );
        let _permit = self.limiter.acquire().await;
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
            .map_err(|e| transport_error(Origin::Iam, &e))?;
        let token = resp
            .headers()
            .get(SUBJECT_TOKEN_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(|v| Secret::new(v.trim()));
        let answer = read(Origin::Iam, resp).await?;
        if !answer.status.is_success() {
            if let Some(d) = answer.retry_after
                && matches!(answer.status.as_u16(), 429 | 503)
            {
                self.limiter.pause_for(d);
            }
            return Err(self.refusal(answer.into_error(Origin::Iam)));
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
        if e.status == Some(401) {
            e.class = ErrorClass::Unauthorized;
            e.message = format!(
                "IAM refused user `{}` of domain `{}` ({}): check REAPER_DCS_USERNAME, \
                 REAPER_DCS_DOMAIN and the password",
                self.username, self.domain, e.message
            );
        }
        e
    }
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

//! One raw HTTP answer from DCS or IAM (status, body, `Retry-After`, `X-Request-Id`) and its
//! conversion into a [`DcsError`]. Shared by the client and the token source; never reads or
//! keeps a token.

use super::error::{DcsError, Origin, classify};
use super::wire::{REQUEST_ID_HEADER, decode_error};
use reqwest::StatusCode;
use std::time::Duration;

/// A raw answer.
pub(super) struct Answer {
    pub status: StatusCode,
    pub body: String,
    pub retry_after: Option<Duration>,
    pub request_id: Option<String>,
}

/// Reads status, headers and body.
pub(super) async fn read(origin: Origin, resp: reqwest::Response) -> Result<Answer, DcsError> {
    let status = resp.status();
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let retry_after = header(reqwest::header::RETRY_AFTER.as_str())
        .as_deref()
        .and_then(crate::http::parse_retry_after);
    let request_id = header(REQUEST_ID_HEADER).filter(|r| !r.is_empty());
    // A success whose body cannot be read is still a success: its status is the answer
    // (a DELETE that DCS answered 2xx is never sent again).
    let body = match resp.text().await {
        Ok(body) => body,
        Err(_) if status.is_success() => String::new(),
        Err(e) => return Err(transport_error(origin, &e)),
    };
    Ok(Answer {
        status,
        body,
        retry_after,
        request_id,
    })
}

/// A connect/timeout/body failure, described without URL query or headers:
/// [`super::ErrorClass::Unavailable`] when the endpoint does not answer (connect, DNS, TLS, timeout,
/// reset), else transient.
pub(super) fn transport_error(origin: Origin, e: &reqwest::Error) -> DcsError {
    let message = crate::http::describe(e);
    if crate::http::is_unavailable(e) {
        DcsError::unavailable(origin, message)
    } else {
        DcsError::transport(origin, message)
    }
}

impl Answer {
    /// Turns a non-success answer into a [`DcsError`] with the body's code and message.
    pub fn into_error(self, origin: Origin) -> DcsError {
        let status = self.status.as_u16();
        let body = decode_error(&self.body).unwrap_or_default();
        let message = body.message.filter(|m| !m.is_empty()).unwrap_or_else(|| {
            self.status
                .canonical_reason()
                .unwrap_or("unexpected answer")
                .to_string()
        });
        let code = body.code.filter(|c| !c.is_empty());
        DcsError {
            class: classify(status, code.as_deref()),
            origin,
            status: Some(status),
            code,
            message,
            request_id: self.request_id.or(body.request_id),
            retry_after: self.retry_after,
        }
    }
}

//! DCS's and IAM's view of a raw HTTP answer ([`crate::http::Answer`]): reading it, and its
//! conversion into a [`DcsError`] with DCS's error code, message and request id. Shared by
//! the client and the token source; never reads or keeps a token.

use super::error::{DcsError, Origin, classify};
use super::wire::decode_error;
pub(super) use crate::http::Answer;
use crate::http::Failure;
use crate::limit::CallPermit;

/// A call that got no answer, as a [`DcsError`] of `origin`:
/// [`super::ErrorClass::Unavailable`] when the endpoint does not answer (connect, DNS, TLS,
/// timeout, reset), else transient.
fn failure(origin: Origin, f: Failure) -> DcsError {
    if f.unavailable {
        DcsError::unavailable(origin, f.message)
    } else {
        DcsError::transport(origin, f.message)
    }
}

/// Reads the answer to the call `permit` holds (see [`crate::http::read`]); a timeout is
/// told to the permit (an overload signal for the budget).
pub(super) async fn read(
    origin: Origin,
    resp: reqwest::Response,
    permit: &mut CallPermit,
) -> Result<Answer, DcsError> {
    crate::http::read(resp).await.map_err(|f| {
        if f.timed_out {
            permit.timed_out();
        }
        failure(origin, f)
    })
}

/// A transport failure of `origin` (see [`failure`]) of the call `permit` holds; a timeout
/// is told to the permit.
pub(super) fn transport_error(
    origin: Origin,
    e: &reqwest::Error,
    permit: &mut CallPermit,
) -> DcsError {
    if e.is_timeout() {
        permit.timed_out();
    }
    failure(origin, Failure::of(e))
}

/// Turns a non-success answer into a [`DcsError`] with the body's code and message.
pub(super) fn into_error(answer: Answer, origin: Origin) -> DcsError {
    let status = answer.status.as_u16();
    let body = decode_error(&answer.body).unwrap_or_default();
    let message = body.message.filter(|m| !m.is_empty()).unwrap_or_else(|| {
        answer
            .status
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
        request_id: answer.request_id.or(body.request_id),
        retry_after: answer.retry_after,
    }
}

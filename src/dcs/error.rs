//! What can go wrong talking to Huawei Cloud DCS (and to IAM for its tokens), classified the
//! way callers branch on it. The mapping from HTTP status and DCS `error_code` to class is
//! pure and tested as a table. Errors never carry a token or a password.

use std::fmt;
use std::time::Duration;

pub use crate::http::ErrorClass;

/// Which service answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The DCS API (`/v2/...`).
    Dcs,
    /// IAM, when asked for a token (`/v3/auth/tokens`).
    Iam,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Origin::Dcs => "DCS",
            Origin::Iam => "IAM",
        })
    }
}

/// A failed DCS or IAM call.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}", self.describe())]
pub struct DcsError {
    pub class: ErrorClass,
    pub origin: Origin,
    pub status: Option<u16>,
    /// DCS `error_code` (e.g. `DCS.4957`), or the legacy body's `error.code`.
    pub code: Option<String>,
    /// DCS `error_msg`, or a description of the transport failure.
    pub message: String,
    /// The answer's `X-Request-Id`, for the operator's support ticket.
    pub request_id: Option<String>,
    /// The server's `Retry-After`, when it sent one.
    pub retry_after: Option<Duration>,
}

impl DcsError {
    /// A connect, timeout or body-reading failure: transient.
    pub fn transport(origin: Origin, message: impl Into<String>) -> Self {
        DcsError {
            class: ErrorClass::Transient,
            origin,
            status: None,
            code: None,
            message: message.into(),
            request_id: None,
            retry_after: None,
        }
    }

    /// The endpoint cannot be used (it does not answer, or it is known to be down).
    pub fn unavailable(origin: Origin, message: impl Into<String>) -> Self {
        DcsError {
            class: ErrorClass::Unavailable,
            ..DcsError::transport(origin, message)
        }
    }

    pub fn is_transient(&self) -> bool {
        self.class == ErrorClass::Transient
    }

    fn describe(&self) -> String {
        match (self.status, &self.code) {
            (Some(s), Some(c)) => format!("{} answered {s} {c}: {}", self.origin, self.message),
            (Some(s), None) => format!("{} answered {s}: {}", self.origin, self.message),
            (None, _) => format!("{} unreachable: {}", self.origin, self.message),
        }
    }
}

/// DCS codes that mean "not now": a task still running or not deletable in its current state
/// (DCS.4017, DCS.4957), internal or submit failures (DCS.5000, DCS.5006, DCS.4842), another
/// user modifying the configuration (DCS.4069), and API-gateway throttling (APIG.0308, also
/// spelled APIGW.0308).
const TRANSIENT_CODES: [&str; 8] = [
    "DCS.4017",
    "DCS.4957",
    "DCS.5000",
    "DCS.5006",
    "DCS.4842",
    "DCS.4069",
    "APIG.0308",
    "APIGW.0308",
];

/// The class of a non-success answer, from its HTTP status and DCS `error_code`.
pub fn classify(status: u16, code: Option<&str>) -> ErrorClass {
    let transient_code =
        code.is_some_and(|c| TRANSIENT_CODES.iter().any(|t| t.eq_ignore_ascii_case(c)));
    match status {
        404 => ErrorClass::NotFound,
        401 => ErrorClass::Unauthorized,
        _ if transient_code => ErrorClass::Transient,
        408 | 429 => ErrorClass::Transient,
        400..=499 => ErrorClass::Permanent,
        500..=599 => ErrorClass::Transient,
        _ => ErrorClass::Permanent,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_codes_map_to_classes() {
        use ErrorClass::*;
        let table: [(u16, Option<&str>, ErrorClass); 26] = [
            (404, Some("DCS.4001"), NotFound),
            (404, Some("DCS.3022"), NotFound),
            (404, None, NotFound),
            (401, Some("DCS.1001"), Unauthorized),
            (401, Some("DCS.1002"), Unauthorized),
            (401, None, Unauthorized),
            (400, Some("DCS.4017"), Transient),
            (400, Some("DCS.4957"), Transient),
            (400, Some("DCS.4070"), Permanent),
            (400, Some("DCS.4094"), Permanent),
            (400, None, Permanent),
            (403, Some("DCS.2003"), Permanent),
            (403, Some("DCS.3003"), Permanent),
            (403, Some("DCS.2007"), Permanent),
            (403, Some("DCS.3002"), Permanent),
            (405, None, Permanent),
            (500, Some("DCS.5000"), Transient),
            (500, Some("DCS.5006"), Transient),
            (500, Some("DCS.4842"), Transient),
            (500, Some("DCS.4069"), Transient),
            (429, Some("APIG.0308"), Transient),
            (429, Some("APIGW.0308"), Transient),
            (502, None, Transient),
            (503, None, Transient),
            (504, None, Transient),
            (302, None, Permanent),
        ];
        for (status, code, class) in table {
            assert_eq!(classify(status, code), class, "{status} {code:?}");
        }
        assert_eq!(classify(500, Some("DCS.9999")), Transient, "other 5xx");
        assert_eq!(classify(429, None), Transient);
    }

    #[test]
    fn errors_describe_origin_status_and_code() {
        let e = DcsError {
            class: ErrorClass::Transient,
            origin: Origin::Dcs,
            status: Some(400),
            code: Some("DCS.4957".into()),
            message: "not allowed now".into(),
            request_id: None,
            retry_after: None,
        };
        assert_eq!(e.to_string(), "DCS answered 400 DCS.4957: not allowed now");
        assert!(e.is_transient());
        let t = DcsError::transport(Origin::Iam, "connection failed");
        assert_eq!(t.to_string(), "IAM unreachable: connection failed");
    }
}

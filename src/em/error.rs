//! What can go wrong talking to Enterprise Manager, classified the way callers branch on it.
//! The mapping from HTTP status to class is pure and tested as a table.

use std::time::Duration;

pub use crate::http::ErrorClass;

/// A failed EM call. Never carries a credential or a session token.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}", self.describe())]
pub struct EmError {
    pub class: ErrorClass,
    pub status: Option<u16>,
    /// EM's `Message`, or a description of the transport failure.
    pub message: String,
    /// The server's `Retry-After`, when it sent one.
    pub retry_after: Option<Duration>,
}

impl EmError {
    pub fn transport(message: impl Into<String>) -> Self {
        EmError {
            class: ErrorClass::Transient,
            status: None,
            message: message.into(),
            retry_after: None,
        }
    }

    /// The endpoint cannot be used (it does not answer, or it is known to be down).
    pub fn unavailable(message: impl Into<String>) -> Self {
        EmError {
            class: ErrorClass::Unavailable,
            ..EmError::transport(message)
        }
    }

    /// A call refused before it was sent (an id that cannot go into a URL): permanent.
    pub fn not_sent(message: impl Into<String>) -> Self {
        EmError {
            class: ErrorClass::Permanent,
            ..EmError::transport(message)
        }
    }

    pub fn is_transient(&self) -> bool {
        self.class == ErrorClass::Transient
    }

    /// EM does not know the resource or task (404): it is absent.
    pub fn is_absent(&self) -> bool {
        self.class == ErrorClass::NotFound
    }

    fn describe(&self) -> String {
        match self.status {
            Some(s) => format!("EM answered {s}: {}", self.message),
            None if self.class == ErrorClass::Permanent => {
                format!("not sent to EM: {}", self.message)
            }
            None => format!("EM unreachable: {}", self.message),
        }
    }
}

/// A call that got no answer: the endpoint is unavailable, or the failure is transient.
impl From<crate::http::Failure> for EmError {
    fn from(f: crate::http::Failure) -> Self {
        if f.unavailable {
            EmError::unavailable(f.message)
        } else {
            EmError::transport(f.message)
        }
    }
}

/// The class of a non-success HTTP status.
pub fn classify(status: u16) -> ErrorClass {
    match status {
        404 => ErrorClass::NotFound,
        401 => ErrorClass::Unauthorized,
        408 | 425 | 429 => ErrorClass::Transient,
        400..=499 => ErrorClass::Permanent,
        501 => ErrorClass::Permanent,
        _ => ErrorClass::Transient,
    }
}

/// EM's answer when a task id is asked of a session that did not create it.
pub fn is_lost_task_message(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("in current rest session") || (m.contains("no") && m.contains("task with id"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_classes() {
        let table = [
            (400, ErrorClass::Permanent),
            (401, ErrorClass::Unauthorized),
            (403, ErrorClass::Permanent),
            (404, ErrorClass::NotFound),
            (405, ErrorClass::Permanent),
            (408, ErrorClass::Transient),
            (409, ErrorClass::Permanent),
            (429, ErrorClass::Transient),
            (500, ErrorClass::Transient),
            (501, ErrorClass::Permanent),
            (502, ErrorClass::Transient),
            (503, ErrorClass::Transient),
            (504, ErrorClass::Transient),
        ];
        for (status, class) in table {
            assert_eq!(classify(status), class, "status {status}");
        }
    }

    #[test]
    fn the_lost_task_answer_is_recognised() {
        assert!(is_lost_task_message(
            "There is no task with id [task-297] in current rest session"
        ));
        assert!(is_lost_task_message(
            "There is no backup task with id [task-3] in current rest session"
        ));
        assert!(!is_lost_task_message("Internal server error"));
    }
}

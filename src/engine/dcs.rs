//! The pure mapping from a DCS delete's result to what should happen next, tested as a table.
//! DCS deletes synchronously, so nothing here ever polls or verifies.

use super::{Ending, Next};
use crate::dcs::{DcsDeleted, DcsError, ErrorClass};
use crate::event::{ErrorInfo, Outcome};

/// The event's `error` for a DCS failure: `error_code` in `code`, `error_msg` in `message`,
/// the answer's `X-Request-Id` in `request_id`.
pub fn dcs_error_info(e: &DcsError) -> ErrorInfo {
    ErrorInfo::remote(
        e.status,
        e.code.clone(),
        e.message.clone(),
        e.request_id.clone(),
    )
}

/// After a DCS DELETE. A 404 is `already_absent`, or `refused` when `not_found_is_absent`
/// is false (`REAPER_DCS_NOT_FOUND=refused`).
pub fn after_dcs_delete(result: Result<DcsDeleted, DcsError>, not_found_is_absent: bool) -> Next {
    let e = match result {
        Ok(done) => {
            return Next::Finish(Ending {
                outcome: Outcome::Deleted,
                error: None,
                task: None,
                http_status: Some(done.status),
            });
        }
        Err(e) => e,
    };
    let outcome = match e.class {
        ErrorClass::Transient => {
            return Next::Again {
                error: dcs_error_info(&e),
            };
        }
        ErrorClass::Unavailable => {
            return Next::Wait {
                reason: e.to_string(),
            };
        }
        ErrorClass::NotFound if not_found_is_absent => Outcome::AlreadyAbsent,
        ErrorClass::NotFound | ErrorClass::Permanent | ErrorClass::Unauthorized => Outcome::Refused,
    };
    Next::Finish(Ending {
        outcome,
        error: Some(dcs_error_info(&e)),
        task: None,
        http_status: e.status,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dcs::{Origin, classify};

    fn err(status: u16, code: &str) -> DcsError {
        DcsError {
            class: classify(status, Some(code)),
            origin: Origin::Dcs,
            status: Some(status),
            code: Some(code.into()),
            message: format!("m{status}"),
            request_id: Some("req-1".into()),
            retry_after: None,
        }
    }

    fn outcome(n: &Next) -> Option<Outcome> {
        n.outcome()
    }

    #[test]
    fn dcs_answers_map_to_outcomes() {
        use Outcome::*;
        // (status, code, outcome when 404 is absent, outcome when 404 is refused); None = again.
        let table: [(u16, &str, Option<Outcome>, Option<Outcome>); 14] = [
            (404, "DCS.4001", Some(AlreadyAbsent), Some(Refused)),
            (404, "DCS.3022", Some(AlreadyAbsent), Some(Refused)),
            (400, "DCS.4070", Some(Refused), Some(Refused)),
            (400, "DCS.4094", Some(Refused), Some(Refused)),
            (401, "DCS.1002", Some(Refused), Some(Refused)),
            (403, "DCS.2003", Some(Refused), Some(Refused)),
            (400, "DCS.4017", None, None),
            (400, "DCS.4957", None, None),
            (500, "DCS.5000", None, None),
            (500, "DCS.4069", None, None),
            (429, "APIG.0308", None, None),
            (429, "APIGW.0308", None, None),
            (502, "", None, None),
            (503, "", None, None),
        ];
        for (status, code, absent, refused) in table {
            for (flag, want) in [(true, absent), (false, refused)] {
                let next = after_dcs_delete(Err(err(status, code)), flag);
                assert_eq!(
                    outcome(&next),
                    want,
                    "{status} {code} absent={flag}: {next:?}"
                );
                if want.is_none() {
                    assert!(
                        matches!(next, Next::Again { .. }),
                        "{status} {code} is retried"
                    );
                }
            }
        }
        let transport = DcsError::transport(Origin::Dcs, "unreadable task listing");
        assert!(matches!(
            after_dcs_delete(Err(transport), true),
            Next::Again { .. }
        ));
        let unreachable = DcsError::unavailable(Origin::Iam, "connection failed");
        assert_eq!(
            after_dcs_delete(Err(unreachable.clone()), true),
            Next::Wait {
                reason: unreachable.to_string()
            },
            "the endpoint is down: the request waits"
        );
        for status in [200, 204] {
            let ok = after_dcs_delete(
                Ok(DcsDeleted {
                    status,
                    request_id: None,
                }),
                true,
            );
            assert_eq!(
                ok,
                Next::Finish(Ending {
                    outcome: Deleted,
                    error: None,
                    task: None,
                    http_status: Some(status)
                })
            );
        }
    }

    #[test]
    fn the_error_carries_code_message_and_request_id() {
        let Next::Finish(Ending {
            error: Some(e),
            http_status,
            ..
        }) = after_dcs_delete(Err(err(403, "DCS.2003")), true)
        else {
            panic!()
        };
        assert_eq!(http_status, Some(403));
        assert_eq!(e.kind, "http");
        assert_eq!(e.code.as_deref(), Some("DCS.2003"));
        assert_eq!(e.message, "m403");
        assert_eq!(e.request_id.as_deref(), Some("req-1"));
        let Next::Again { error } = after_dcs_delete(Err(err(400, "DCS.4957")), true) else {
            panic!()
        };
        assert_eq!(error.code.as_deref(), Some("DCS.4957"));
    }
}

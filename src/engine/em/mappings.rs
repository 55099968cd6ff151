//! Pure mappings from what Enterprise Manager answered (a DELETE, a task poll, a
//! verification GET) to what should happen next, tested as tables. No I/O: the engine
//! performs what these return.

use super::super::{Ending, Next};
use crate::em::codec::Task;
use crate::em::{DeleteAnswer, EmError, ErrorClass, Poll, Presence, Stop};
use crate::event::{ErrorInfo, Outcome};
use crate::ledger::TaskRecord;

/// The event's `error` for an EM failure.
pub fn em_error_info(e: &EmError) -> ErrorInfo {
    ErrorInfo::remote(e.status, None, e.message.clone(), None)
}

/// A task as recorded in the ledger.
pub fn task_record(task: &Task, session: Option<&str>) -> TaskRecord {
    let result = task.finished_result();
    TaskRecord {
        id: task.task_id.clone(),
        session: session.map(str::to_string),
        state: Some(task.state.as_str().to_string()),
        operation: Some(task.operation.clone()).filter(|o| !o.is_empty()),
        success: result.map(|r| r.success),
        message: result.map(|r| r.message.clone()),
    }
}

/// Maps a terminal-or-running task to the next step.
fn after_task(task: &Task, session: Option<&str>, http_status: Option<u16>) -> Next {
    let record = task_record(task, session);
    match task.finished_result() {
        Some(r) if r.success => Next::Finish(Ending {
            outcome: Outcome::Deleted,
            error: None,
            task: Some(record),
            http_status,
        }),
        Some(r) => Next::Finish(Ending {
            outcome: Outcome::TaskFailed,
            error: Some(ErrorInfo {
                kind: "task".into(),
                http_status: None,
                code: None,
                message: r.message.clone(),
                request_id: None,
            }),
            task: Some(record),
            http_status,
        }),
        None if task.state.is_terminal() => Next::Verify {
            task: Some(record),
            note: format!("task {} ended without a result", task.task_id),
            http_status,
        },
        None => Next::Poll {
            task: record,
            http_status,
        },
    }
}

/// After a DELETE.
pub fn after_delete(result: Result<DeleteAnswer, EmError>) -> Next {
    match result {
        Ok(DeleteAnswer::Done { status }) => Next::Finish(Ending {
            outcome: Outcome::Deleted,
            error: None,
            task: None,
            http_status: Some(status),
        }),
        Ok(DeleteAnswer::Task {
            task,
            session,
            status,
        }) => after_task(&task, Some(&session), Some(status)),
        // Accepted, but nothing to follow: never sent again, confirmed on the resource.
        Ok(DeleteAnswer::Accepted { status, reason }) => Next::Verify {
            task: None,
            note: format!("the DELETE was answered {status} but {reason}: verifying"),
            http_status: Some(status),
        },
        Err(e) => match e.class {
            ErrorClass::NotFound => Next::Finish(Ending {
                outcome: Outcome::AlreadyAbsent,
                error: Some(em_error_info(&e)),
                task: None,
                http_status: e.status,
            }),
            ErrorClass::Permanent | ErrorClass::Unauthorized => Next::Finish(Ending {
                outcome: Outcome::Refused,
                error: Some(em_error_info(&e)),
                task: None,
                http_status: e.status,
            }),
            ErrorClass::Transient => Next::Again {
                error: em_error_info(&e),
            },
            ErrorClass::Unavailable => Next::Wait {
                reason: e.to_string(),
            },
        },
    }
}

/// After polling a task.
pub fn after_poll(result: Result<Poll, EmError>) -> Next {
    match result {
        Ok(Poll::Task(task)) => after_task(&task, None, None),
        Ok(Poll::SessionLost) => Next::Verify {
            task: None,
            note: "the task's logon session is gone".into(),
            http_status: None,
        },
        Err(e) if e.class == ErrorClass::Unavailable => Next::Wait {
            reason: e.to_string(),
        },
        // The task cannot be read for a reason other than a transient one: confirm by GET.
        Err(e) if !e.is_transient() => Next::Verify {
            task: None,
            note: format!("task unreadable: {e}"),
            http_status: None,
        },
        Err(e) => Next::Again {
            error: em_error_info(&e),
        },
    }
}

/// After stopping a running task for an operator's `cancel --stop-running`: stopped, the
/// request ends `cancelled`; a task reaper can no longer reach is confirmed on the resource.
pub fn after_stop(result: Result<Stop, EmError>) -> Next {
    match result {
        Ok(Stop::Stopped { .. }) => Next::Finish(super::super::step::cancelled()),
        Ok(Stop::SessionLost) => Next::Verify {
            task: None,
            note: "the task could not be stopped: its logon session is gone".into(),
            http_status: None,
        },
        Err(e) => after_poll(Err(e)),
    }
}

/// After a verification GET on the deleted resource.
pub fn after_verify(result: Result<Presence, EmError>) -> Next {
    match result {
        Ok(Presence::Absent)
        | Err(EmError {
            class: ErrorClass::NotFound,
            ..
        }) => Next::Finish(Ending {
            outcome: Outcome::Deleted,
            error: None,
            task: None,
            http_status: None,
        }),
        Err(e) if e.class == ErrorClass::Unavailable => Next::Wait {
            reason: e.to_string(),
        },
        Ok(Presence::Present) => Next::Present,
        Err(e) => Next::Again {
            error: em_error_info(&e),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::em::codec::{TaskResult, TaskState};

    fn task(state: TaskState, result: Option<(bool, &str)>) -> Task {
        Task {
            task_id: "task-1".into(),
            state,
            operation: "DeleteJob".into(),
            result: result.map(|(success, m)| TaskResult {
                success,
                message: m.into(),
            }),
            href: None,
            links: vec![],
        }
    }

    fn err(status: u16, class: ErrorClass) -> EmError {
        EmError {
            class,
            status: Some(status),
            message: format!("m{status}"),
            retry_after: None,
        }
    }

    fn outcome(n: &Next) -> Option<Outcome> {
        n.outcome()
    }

    #[test]
    fn a_stopped_task_ends_cancelled_and_one_out_of_reach_is_verified() {
        let stopped = after_stop(Ok(Stop::Stopped { status: 204 }));
        assert_eq!(stopped.outcome(), Some(Outcome::Cancelled));
        assert!(matches!(
            after_stop(Ok(Stop::SessionLost)),
            Next::Verify { .. }
        ));
        let busy = after_stop(Err(err(503, ErrorClass::Transient)));
        assert!(matches!(busy, Next::Again { .. }), "{busy:?}");
    }

    #[test]
    fn delete_answers_map_to_outcomes() {
        use crate::em::error::classify;
        let table: Vec<(u16, Option<Outcome>)> = vec![
            (400, Some(Outcome::Refused)),
            (403, Some(Outcome::Refused)),
            (404, Some(Outcome::AlreadyAbsent)),
            (405, Some(Outcome::Refused)),
            (501, Some(Outcome::Refused)),
            (500, None),
            (502, None),
            (503, None),
            (504, None),
            (429, None),
        ];
        for (status, want) in table {
            let next = after_delete(Err(err(status, classify(status))));
            assert_eq!(outcome(&next), want, "status {status}: {next:?}");
            if want.is_none() {
                assert!(
                    matches!(next, Next::Again { .. }),
                    "status {status} is retried"
                );
            }
        }
        let refused = after_delete(Err(err(400, ErrorClass::Permanent)));
        let Next::Finish(Ending { error: Some(e), .. }) = refused else {
            panic!()
        };
        assert_eq!(e.message, "m400", "EM's Message is carried");
        assert!(matches!(
            after_delete(Err(EmError::transport("connection refused"))),
            Next::Again { .. }
        ));
        assert_eq!(
            outcome(&after_delete(Ok(DeleteAnswer::Done { status: 204 }))),
            Some(Outcome::Deleted)
        );
    }

    #[test]
    fn an_accepted_delete_without_a_readable_task_is_verified_never_sent_again() {
        let next = after_delete(Ok(DeleteAnswer::Accepted {
            status: 202,
            reason: "its Task cannot be read".into(),
        }));
        let Next::Verify {
            task: None,
            http_status: Some(202),
            note,
        } = next
        else {
            panic!("{next:?}")
        };
        assert!(note.contains("202"), "{note}");
    }

    #[test]
    fn tasks_map_by_state_and_result() {
        let accepted = |t| {
            after_delete(Ok(DeleteAnswer::Task {
                task: t,
                session: "s1".into(),
                status: 202,
            }))
        };
        let running = accepted(task(TaskState::Running, None));
        let Next::Poll {
            task: rec,
            http_status,
        } = running
        else {
            panic!("{running:?}")
        };
        assert_eq!(rec.session.as_deref(), Some("s1"));
        assert_eq!(http_status, Some(202));
        assert_eq!(
            outcome(&accepted(task(TaskState::Finished, Some((true, "Ok"))))),
            Some(Outcome::Deleted)
        );
        assert_eq!(
            outcome(&after_poll(Ok(Poll::Task(task(
                TaskState::OperationFinished,
                Some((true, "Ok"))
            ))))),
            Some(Outcome::Deleted),
            "OperationFinished with a Result is terminal"
        );
        let failed = after_poll(Ok(Poll::Task(task(
            TaskState::Finished,
            Some((false, "locked")),
        ))));
        let Next::Finish(Ending {
            outcome,
            error: Some(e),
            ..
        }) = failed
        else {
            panic!()
        };
        assert_eq!(outcome, Outcome::TaskFailed);
        assert_eq!(e.message, "locked");
        assert!(matches!(
            after_poll(Ok(Poll::Task(task(TaskState::Finished, None)))),
            Next::Verify { .. }
        ));
        assert!(matches!(
            after_poll(Ok(Poll::Task(task(TaskState::parse("Queued"), None)))),
            Next::Poll { .. }
        ));
        assert!(matches!(
            after_poll(Ok(Poll::SessionLost)),
            Next::Verify { .. }
        ));
        assert!(matches!(
            after_poll(Err(err(503, ErrorClass::Transient))),
            Next::Again { .. }
        ));
    }

    #[test]
    fn verification_ends_on_404_only() {
        assert_eq!(
            outcome(&after_verify(Ok(Presence::Absent))),
            Some(Outcome::Deleted)
        );
        assert_eq!(after_verify(Ok(Presence::Present)), Next::Present);
        assert!(matches!(
            after_verify(Err(err(502, ErrorClass::Transient))),
            Next::Again { .. }
        ));
    }

    #[test]
    fn endpoint_trouble_waits_at_every_step() {
        let troubles = [
            EmError::unavailable("connection failed: connection refused"),
            EmError {
                class: ErrorClass::Unavailable,
                status: Some(401),
                message: "logon refused for user `svc`".into(),
                retry_after: None,
            },
        ];
        for e in troubles {
            let want = Next::Wait {
                reason: e.to_string(),
            };
            assert_eq!(after_delete(Err(e.clone())), want, "delete");
            assert_eq!(after_poll(Err(e.clone())), want, "poll: not a verification");
            assert_eq!(after_verify(Err(e.clone())), want, "verify");
            assert_eq!(want.outcome(), None);
        }
    }
}

//! Ledger tests on real SQLite files, one module a topic; the helpers they share.

mod controls;
mod counts;
mod durations;
mod file;
mod group;
mod guard;
mod intake;
mod outbox;
mod rate_control;
mod replay;
mod schedule;
mod steps;

use super::*;
use crate::request::DeleteRequest;

pub(super) async fn ledger() -> (tempfile::TempDir, Ledger) {
    let dir = tempfile::tempdir().unwrap();
    let l = Ledger::open(&dir.path().join("l.db")).await.unwrap();
    (dir, l)
}

pub(super) fn request(id: &str, job: &str) -> DeleteRequest {
    let body = serde_json::json!({"request_id": id, "target": {"type": "em.job", "job_id": job}});
    DeleteRequest::decode(body.to_string().as_bytes(), None).unwrap()
}

pub(super) const JOB_A: &str = "5b89dae5-6f08-45ec-b068-08f0bd08394a";
pub(super) const JOB_B: &str = "d1b85018-2769-45be-89bc-03f66b60e6cb";

pub(super) fn finish(at: i64) -> Finish {
    Finish {
        outcome: "deleted".into(),
        finished_at: at,
    }
}

/// The outcome event a test request ends with, built from the row the step left.
pub(super) fn outcome_event(row: &RequestRow) -> NewEvent {
    NewEvent {
        event_id: format!("ev-{}", row.request_id),
        request_id: Some(row.request_id.clone()),
        routing_key: "delete.succeeded".into(),
        payload: format!(
            "{{\"id\":\"ev-{}\",\"outcome\":{:?}}}",
            row.request_id, row.outcome
        ),
    }
}

pub(super) fn event(id: &str) -> NewEvent {
    NewEvent {
        event_id: format!("ev-{id}"),
        request_id: Some(id.into()),
        routing_key: "delete.failed".into(),
        payload: "{}".into(),
    }
}

/// Accepts a request of `batch` for `endpoint` at `at`.
pub(super) async fn accept_in(l: &Ledger, id: &str, endpoint: &str, batch: &str, at: i64) {
    let body = serde_json::json!({"request_id": id, "batch_id": batch,
        "target": {"type": "em.job", "job_id": JOB_A}});
    let req = DeleteRequest::decode(body.to_string().as_bytes(), None).unwrap();
    assert_eq!(l.accept(&req, endpoint, at).await.unwrap(), Intake::New);
}

/// Moves a request to `polling` (its DELETE sent), due at `due`.
pub(super) async fn polling(l: &Ledger, id: &str, due: i64) {
    let change = Change {
        task: Some(TaskRecord {
            id: format!("task-{id}"),
            state: Some("Running".into()),
            ..Default::default()
        }),
        submitted_at: Some(due),
        ..Change::to(State::Polling, "task recorded").due(due)
    };
    l.advance(id, &change, due, None).await.unwrap();
}

/// Ends a request `outcome` at `at`, with a last error of kind `error_kind` if given.
pub(super) async fn ended(l: &Ledger, id: &str, outcome: &str, error_kind: Option<&str>, at: i64) {
    let state = match outcome {
        "deleted" | "already_absent" => State::Succeeded,
        _ => State::Failed,
    };
    let change = Change {
        last_error: error_kind.map(|k| serde_json::json!({"kind": k, "message": "no"}).to_string()),
        ..Change::to(state, "ended")
    };
    let f = Finish {
        outcome: outcome.into(),
        ..finish(at)
    };
    l.finish(id, &change, &f, outcome_event).await.unwrap();
}

/// The ids of rows, sorted.
pub(super) fn ids(rows: &[RequestRow]) -> Vec<&str> {
    let mut ids: Vec<&str> = rows.iter().map(|r| r.request_id.as_str()).collect();
    ids.sort();
    ids
}

/// The note of a request's last history row.
pub(super) async fn last_note(l: &Ledger, id: &str) -> String {
    let history = l.history(id).await.unwrap();
    history
        .last()
        .and_then(|t| t.note.clone())
        .unwrap_or_default()
}

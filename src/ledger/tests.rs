//! Ledger tests on real SQLite files.

use super::*;
use crate::request::DeleteRequest;

async fn ledger() -> (tempfile::TempDir, Ledger) {
    let dir = tempfile::tempdir().unwrap();
    let l = Ledger::open(&dir.path().join("l.db")).await.unwrap();
    (dir, l)
}

fn request(id: &str, job: &str) -> DeleteRequest {
    let body = serde_json::json!({"request_id": id, "target": {"type": "em.job", "job_id": job}});
    DeleteRequest::decode(body.to_string().as_bytes(), None).unwrap()
}

const JOB_A: &str = "5b89dae5-6f08-45ec-b068-08f0bd08394a";
const JOB_B: &str = "d1b85018-2769-45be-89bc-03f66b60e6cb";

fn finish(id: &str, at: i64) -> Finish {
    Finish {
        outcome: "deleted".into(),
        finished_at: at,
        event_id: format!("ev-{id}"),
        routing_key: "delete.succeeded".into(),
        payload: format!("{{\"id\":\"ev-{id}\"}}"),
    }
}

#[tokio::test]
async fn the_same_request_twice_is_one_row_and_a_different_target_is_a_conflict() {
    let (_d, l) = ledger().await;
    assert_eq!(
        l.accept(&request("r1", JOB_A), "em", 1).await.unwrap(),
        Intake::New
    );
    assert_eq!(
        l.accept(&request("r1", JOB_A), "em", 2).await.unwrap(),
        Intake::Duplicate { republished: false }
    );
    assert!(matches!(
        l.accept(&request("r1", JOB_B), "em", 3).await.unwrap(),
        Intake::Conflict { .. }
    ));
    assert_eq!(l.backlog().await.unwrap(), 1);
}

#[tokio::test]
async fn a_duplicate_of_a_finished_request_queues_its_event_again_once() {
    let (_d, l) = ledger().await;
    l.accept(&request("r1", JOB_A), "em", 1).await.unwrap();
    l.finish("r1", &Change::to(State::Succeeded, "ok"), &finish("r1", 5))
        .await
        .unwrap();
    let pending = l.pending_events(10).await.unwrap();
    assert_eq!(pending.len(), 1);
    l.mark_published(&[pending[0].seq], 6).await.unwrap();
    assert_eq!(l.unpublished_count().await.unwrap(), 0);

    let again = l.accept(&request("r1", JOB_A), "em", 7).await.unwrap();
    assert_eq!(again, Intake::Duplicate { republished: true });
    // A second duplicate while the copy is still pending adds nothing.
    let third = l.accept(&request("r1", JOB_A), "em", 8).await.unwrap();
    assert_eq!(third, Intake::Duplicate { republished: false });
    let pending = l.pending_events(10).await.unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].event_id, "ev-r1", "the same event id");
}

#[tokio::test]
async fn claimed_rows_are_leased_and_released_by_resume() {
    let (_d, l) = ledger().await;
    for i in 0..5 {
        l.accept(&request(&format!("r{i}"), JOB_A), "em", 100)
            .await
            .unwrap();
    }
    let claimed = l.claim_due(200, 3, 10_000, &[]).await.unwrap();
    assert_eq!(claimed.len(), 3);
    let more = l.claim_due(200, 10, 10_000, &[]).await.unwrap();
    assert_eq!(more.len(), 2, "leased rows are not handed out twice");
    assert!(l.claim_due(200, 10, 10_000, &[]).await.unwrap().is_empty());
    assert_eq!(l.next_due(&[]).await.unwrap(), Some(10_000));
    assert_eq!(l.resume(300, 1000).await.unwrap(), 5);
    assert_eq!(l.claim_due(300, 10, 10_000, &[]).await.unwrap().len(), 5);
}

#[tokio::test]
async fn attempts_and_task_records_survive_reopening_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("l.db");
    {
        let l = Ledger::open(&path).await.unwrap();
        l.accept(&request("r1", JOB_A), "em", 1).await.unwrap();
        assert_eq!(l.begin_attempt("r1", 2, 99).await.unwrap(), 1);
        assert_eq!(l.begin_attempt("r1", 3, 99).await.unwrap(), 2);
        let change = Change {
            task: Some(TaskRecord {
                id: "task-1".into(),
                session: Some("s-guid".into()),
                state: Some("Running".into()),
                ..Default::default()
            }),
            submitted_at: Some(4),
            ..Change::to(State::Polling, "task recorded").due(50)
        };
        l.advance("r1", &change, 4, None).await.unwrap();
        l.close().await;
    }
    let l = Ledger::open(&path).await.unwrap();
    let row = l.get("r1").await.unwrap().unwrap();
    assert_eq!(row.state(), State::Polling);
    assert_eq!(row.attempts, 2);
    assert_eq!(row.task_id.as_deref(), Some("task-1"));
    assert_eq!(row.task_session.as_deref(), Some("s-guid"));
    assert_eq!(row.submitted_at, Some(4));
    let history: Vec<String> = l
        .history("r1")
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.state)
        .collect();
    assert_eq!(history, ["accepted", "submitting", "submitting", "polling"]);
}

#[tokio::test]
async fn finishing_writes_the_outcome_and_its_event_together() {
    let (_d, l) = ledger().await;
    l.accept(&request("r1", JOB_A), "em", 1).await.unwrap();
    l.finish(
        "r1",
        &Change::to(State::Failed, "refused"),
        &Finish {
            outcome: "refused".into(),
            ..finish("r1", 9)
        },
    )
    .await
    .unwrap();
    let row = l.get("r1").await.unwrap().unwrap();
    assert_eq!(row.state(), State::Failed);
    assert_eq!(row.outcome.as_deref(), Some("refused"));
    assert_eq!(row.due_at, None, "a final row is never due");
    assert_eq!(row.finished_at, Some(9));
    assert_eq!(l.pending_events(10).await.unwrap()[0].event_id, "ev-r1");
    assert_eq!(l.backlog().await.unwrap(), 0);
}

#[tokio::test]
async fn a_backlog_of_new_requests_does_not_starve_due_polls_nor_polls_new_work() {
    let (_d, l) = ledger().await;
    // 20 old new requests, and 6 polls that became due later.
    for i in 0..20 {
        l.accept(&request(&format!("new-{i}"), JOB_A), "em", 100)
            .await
            .unwrap();
    }
    for i in 0..6 {
        let id = format!("poll-{i}");
        l.accept(&request(&id, JOB_A), "em", 100).await.unwrap();
        let change = Change::to(State::Polling, "task recorded").due(150);
        l.advance(&id, &change, 150, None).await.unwrap();
    }
    let rows = l.claim_due(200, 4, 10_000, &[]).await.unwrap();
    let polls = rows.iter().filter(|r| r.state == "polling").count();
    assert_eq!(
        (rows.len(), polls),
        (4, 2),
        "half the slots go to due polls"
    );
    // When one side has nothing due, the other takes every slot.
    let rows = l.claim_due(200, 10, 10_000, &[]).await.unwrap();
    let polls = rows.iter().filter(|r| r.state == "polling").count();
    assert_eq!((rows.len(), polls), (10, 4));
    let rows = l.claim_due(200, 50, 10_000, &[]).await.unwrap();
    assert_eq!(rows.len(), 12, "the rest of the new work");
}

#[tokio::test]
async fn a_batch_records_each_request_once_and_reports_duplicates_and_conflicts_within_it() {
    let (_d, l) = ledger().await;
    let (a, a_again, a_other, b) = (
        request("a", JOB_A),
        request("a", JOB_A),
        request("a", JOB_B),
        request("b", JOB_B),
    );
    let got = l
        .accept_batch(
            &[(&a, "em"), (&a_again, "em"), (&a_other, "em"), (&b, "em")],
            1,
        )
        .await
        .unwrap();
    assert_eq!(got[0], Intake::New);
    assert_eq!(got[1], Intake::Duplicate { republished: false });
    assert!(matches!(got[2], Intake::Conflict { .. }));
    assert_eq!(got[3], Intake::New);
    assert_eq!(l.backlog().await.unwrap(), 2);
}

#[tokio::test]
async fn rows_of_a_down_endpoint_wait_unless_their_deadline_passed() {
    let (_d, l) = ledger().await;
    l.accept(&request("em-1", JOB_A), "em", 100).await.unwrap();
    l.accept(&request("dcs-1", JOB_B), "dcs", 100)
        .await
        .unwrap();
    let body = serde_json::json!({"request_id": "em-late", "not_after": "1970-01-01T00:00:00.150Z",
        "target": {"type": "em.job", "job_id": JOB_B}});
    let late = DeleteRequest::decode(body.to_string().as_bytes(), None).unwrap();
    l.accept(&late, "em", 100).await.unwrap();
    l.accept(&request("em-poll", JOB_A), "em", 100)
        .await
        .unwrap();
    let change = Change::to(State::Polling, "task recorded").due(120);
    l.advance("em-poll", &change, 120, None).await.unwrap();

    let down = ["em".to_string()];
    assert_eq!(l.next_due(&down).await.unwrap(), Some(100), "dcs-1 is due");
    let rows = l.claim_due(200, 10, 10_000, &down).await.unwrap();
    let mut ids: Vec<&str> = rows.iter().map(|r| r.request_id.as_str()).collect();
    ids.sort();
    assert_eq!(
        ids,
        ["dcs-1", "em-late"],
        "em-late is claimed to end expired"
    );
    assert_eq!(
        l.next_due(&down).await.unwrap(),
        Some(10_000),
        "em's rows are not counted"
    );
    let rows = l.claim_due(200, 10, 10_000, &[]).await.unwrap();
    let mut ids: Vec<&str> = rows.iter().map(|r| r.request_id.as_str()).collect();
    ids.sort();
    assert_eq!(
        ids,
        ["em-1", "em-poll"],
        "up again: everything waiting is due"
    );
}

#[tokio::test]
async fn an_attempt_that_met_endpoint_trouble_is_given_back() {
    let (_d, l) = ledger().await;
    l.accept(&request("r1", JOB_A), "em", 100).await.unwrap();
    assert_eq!(l.begin_attempt("r1", 200, 10_000).await.unwrap(), 1);
    l.give_back_attempt("r1", State::Accepted, 300, "endpoint down", 250)
        .await
        .unwrap();
    let row = l.get("r1").await.unwrap().unwrap();
    assert_eq!(
        (row.state(), row.attempts, row.due_at),
        (State::Accepted, 0, Some(300))
    );
    let history = l.history("r1").await.unwrap();
    assert_eq!(
        history.last().unwrap().note.as_deref(),
        Some("endpoint down")
    );
    assert_eq!(
        l.begin_attempt("r1", 400, 10_000).await.unwrap(),
        1,
        "still the first"
    );
}

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
    let claimed = l.claim_due(200, 3, 10_000).await.unwrap();
    assert_eq!(claimed.len(), 3);
    let more = l.claim_due(200, 10, 10_000).await.unwrap();
    assert_eq!(more.len(), 2, "leased rows are not handed out twice");
    assert!(l.claim_due(200, 10, 10_000).await.unwrap().is_empty());
    assert_eq!(l.next_due().await.unwrap(), Some(10_000));
    assert_eq!(l.resume(300, 1000).await.unwrap(), 5);
    assert_eq!(l.claim_due(300, 10, 10_000).await.unwrap().len(), 5);
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
    let rows = l.claim_due(200, 4, 10_000).await.unwrap();
    let polls = rows.iter().filter(|r| r.state == "polling").count();
    assert_eq!(
        (rows.len(), polls),
        (4, 2),
        "half the slots go to due polls"
    );
    // When one side has nothing due, the other takes every slot.
    let rows = l.claim_due(200, 10, 10_000).await.unwrap();
    let polls = rows.iter().filter(|r| r.state == "polling").count();
    assert_eq!((rows.len(), polls), (10, 4));
    let rows = l.claim_due(200, 50, 10_000).await.unwrap();
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
async fn an_aborted_attempt_is_given_back_only_while_it_is_still_submitting() {
    let (_d, l) = ledger().await;
    l.accept(&request("r1", JOB_A), "em", 1).await.unwrap();
    let claimed = l.claim_due(1, 10, 99).await.unwrap().remove(0);
    assert_eq!(claimed.attempts, 0);
    assert_eq!(l.begin_attempt("r1", 2, 99).await.unwrap(), 1);
    assert!(
        l.give_back_attempt("r1", claimed.attempts, 3)
            .await
            .unwrap()
    );
    let row = l.get("r1").await.unwrap().unwrap();
    assert_eq!((row.state(), row.attempts), (State::Submitting, 0));
    assert!(
        !l.give_back_attempt("r1", claimed.attempts, 4)
            .await
            .unwrap(),
        "nothing is given back twice, nor an attempt this step did not count"
    );
    assert_eq!(l.get("r1").await.unwrap().unwrap().attempts, 0);
    let history = l.history("r1").await.unwrap();
    assert!(
        history
            .last()
            .and_then(|t| t.note.as_deref())
            .is_some_and(|n| n.contains("given back")),
        "{:?}",
        history.last()
    );

    // An attempt whose result was recorded stays counted.
    assert_eq!(l.begin_attempt("r1", 5, 99).await.unwrap(), 1);
    let retry = Change::to(State::RetryWait, "attempt 1 failed").due(50);
    l.advance("r1", &retry, 6, None).await.unwrap();
    assert!(!l.give_back_attempt("r1", 0, 7).await.unwrap());
    assert_eq!(l.get("r1").await.unwrap().unwrap().attempts, 1);

    // An unknown request is no error.
    assert!(!l.give_back_attempt("nope", 0, 8).await.unwrap());
}

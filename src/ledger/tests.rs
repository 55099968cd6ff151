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

fn finish(at: i64) -> Finish {
    Finish {
        outcome: "deleted".into(),
        finished_at: at,
    }
}

/// The outcome event a test request ends with (built from the row the step left).
fn outcome_event(row: &RequestRow) -> NewEvent {
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
    l.finish(
        "r1",
        &Change::to(State::Succeeded, "ok"),
        &finish(5),
        outcome_event,
    )
    .await
    .unwrap();
    let pending = l.pending_events(100, 10).await.unwrap();
    assert_eq!(pending.len(), 1);
    l.mark_published(&[pending[0].seq], 6).await.unwrap();
    assert_eq!(l.unpublished_count().await.unwrap(), 0);

    let again = l.accept(&request("r1", JOB_A), "em", 7).await.unwrap();
    assert_eq!(again, Intake::Duplicate { republished: true });
    // A second duplicate while the copy is still pending adds nothing.
    let third = l.accept(&request("r1", JOB_A), "em", 8).await.unwrap();
    assert_eq!(third, Intake::Duplicate { republished: false });
    let pending = l.pending_events(100, 10).await.unwrap();
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
    assert_eq!(
        l.next_due(&[]).await.unwrap(),
        None,
        "nothing unleased is due"
    );
    assert_eq!(l.resume().await.unwrap(), 5);
    assert_eq!(l.claim_due(300, 10, 10_000, &[]).await.unwrap().len(), 5);
    assert!(
        l.claim_due(10_001, 10, 20_000, &[]).await.unwrap().len() == 5,
        "an expired lease is handed out again"
    );
}

#[tokio::test]
async fn a_restart_releases_only_leases_and_keeps_every_due_time() {
    let (_d, l) = ledger().await;
    for (i, due) in [(0, 5_000), (1, 60_000), (2, 7_000)] {
        let id = format!("r{i}");
        l.accept(&request(&id, JOB_A), "em", 100).await.unwrap();
        let change = Change::to(State::Polling, "task recorded").due(due);
        l.advance(&id, &change, 100, None).await.unwrap();
    }
    // r0 is claimed at 5 000 and its process dies with it in flight.
    assert_eq!(l.claim_due(5_000, 1, 99_999, &[]).await.unwrap().len(), 1);
    assert_eq!(l.resume().await.unwrap(), 1, "only the lease in flight");
    let due = |id: &'static str| {
        let l = l.clone();
        async move { l.get(id).await.unwrap().unwrap().due_at }
    };
    assert_eq!(due("r0").await, Some(5_000));
    assert_eq!(due("r1").await, Some(60_000), "nothing is pulled forward");
    assert_eq!(due("r2").await, Some(7_000));
    // Spread at one every 1 000 ms from 6 000: r0 → 6 000, r2 → 7 000 (kept), r1 keeps 60 000.
    assert_eq!(l.spread_follow_ups("em", 6_000, 1_000).await.unwrap(), 1);
    assert_eq!(due("r0").await, Some(6_000));
    assert_eq!(due("r2").await, Some(7_000));
    assert_eq!(due("r1").await, Some(60_000));
    assert_eq!(l.spread_follow_ups("other", 6_000, 1_000).await.unwrap(), 0);
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
            ..finish(9)
        },
        outcome_event,
    )
    .await
    .unwrap();
    let row = l.get("r1").await.unwrap().unwrap();
    assert_eq!(row.state(), State::Failed);
    assert_eq!(row.outcome.as_deref(), Some("refused"));
    assert_eq!(row.due_at, None, "a final row is never due");
    assert_eq!(row.finished_at, Some(9));
    assert_eq!(row.event_id.as_deref(), Some("ev-r1"));
    let events = l.pending_events(100, 10).await.unwrap();
    assert_eq!(events[0].event_id, "ev-r1");
    assert!(
        events[0].payload.contains(r#""outcome":Some("refused")"#),
        "the event is built from the row with the step applied: {}",
        events[0].payload
    );
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

fn event(id: &str) -> NewEvent {
    NewEvent {
        event_id: format!("ev-{id}"),
        request_id: Some(id.into()),
        routing_key: "delete.failed".into(),
        payload: "{}".into(),
    }
}

#[tokio::test]
async fn a_refused_event_backs_off_alone_and_the_rows_behind_it_are_taken() {
    let (_d, l) = ledger().await;
    l.add_events(&[event("a"), event("b"), event("c")], 1)
        .await
        .unwrap();
    let first = l.pending_events(10, 2).await.unwrap();
    let ids: Vec<&str> = first.iter().map(|r| r.event_id.as_str()).collect();
    assert_eq!(ids, ["ev-a", "ev-b"], "oldest first");
    let (a, b) = (first[0].seq, first[1].seq);
    l.mark_unpublished(&[RetryAt { seq: a, at: 1000 }])
        .await
        .unwrap();
    l.mark_published(&[b], 10).await.unwrap();

    let next = l.pending_events(10, 2).await.unwrap();
    assert_eq!(next.len(), 1, "the returned row is not due");
    assert_eq!(next[0].event_id, "ev-c", "the row behind it is");
    assert_eq!(l.next_event_at().await.unwrap(), Some(0));
    l.mark_published(&[next[0].seq], 11).await.unwrap();
    assert_eq!(l.next_event_at().await.unwrap(), Some(1000));
    assert!(l.pending_events(999, 10).await.unwrap().is_empty());

    let again = l.pending_events(1000, 10).await.unwrap();
    assert_eq!((again[0].seq, again[0].attempts), (a, 1));
    assert_eq!(l.unpublished_count().await.unwrap(), 1);
    l.mark_published(&[a], 1000).await.unwrap();
    assert_eq!(l.next_event_at().await.unwrap(), None);
    assert_eq!(l.unpublished_count().await.unwrap(), 0);
}

async fn synchronous(l: &Ledger) -> i64 {
    sqlx::query_scalar("PRAGMA synchronous")
        .fetch_one(&l.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn intake_commits_with_synchronous_full_and_leaves_the_connection_normal() {
    let (_d, l) = ledger().await;
    const NORMAL: i64 = 1;
    const FULL: i64 = 2;
    assert_eq!(synchronous(&l).await, NORMAL);
    let inside: i64 = l
        .durably(async |tx| {
            Ok(sqlx::query_scalar("PRAGMA synchronous")
                .fetch_one(&mut **tx)
                .await?)
        })
        .await
        .unwrap();
    assert_eq!(inside, FULL, "the durable transaction runs FULL");
    assert_eq!(synchronous(&l).await, NORMAL, "and NORMAL again after");

    let failed = l
        .durably(async |tx| {
            sqlx::query("INSERT INTO no_such_table VALUES (1)")
                .execute(&mut **tx)
                .await?;
            Ok(())
        })
        .await;
    assert!(failed.is_err());
    assert_eq!(synchronous(&l).await, NORMAL, "also after a failed one");

    let (a, b) = (request("a", JOB_A), request("b", JOB_B));
    let got = l.accept_batch(&[(&a, "em"), (&b, "em")], 5).await.unwrap();
    assert_eq!(got, [Intake::New, Intake::New]);
    l.add_event(&event("bad"), 5).await.unwrap();
    assert_eq!(synchronous(&l).await, NORMAL);
    assert_eq!(l.get("a").await.unwrap().unwrap().state(), State::Accepted);
    assert_eq!(l.get("b").await.unwrap().unwrap().received_at, 5);
    assert_eq!(l.unpublished_count().await.unwrap(), 1);
}

#[cfg(unix)]
#[tokio::test]
async fn a_new_ledger_and_its_wal_and_shm_files_are_private_to_their_owner() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("private.db");
    let l = Ledger::open(&path).await.unwrap();
    l.accept(&request("r1", JOB_A), "em", 1).await.unwrap();
    for suffix in ["", "-wal", "-shm"] {
        let file = dir.path().join(format!("private.db{suffix}"));
        assert!(file.exists(), "{} exists while open", file.display());
        assert_eq!(mode(&file), 0o600, "{}", file.display());
    }
    l.close().await;

    // A file its owner made already keeps the mode it was given.
    let shared = dir.path().join("shared.db");
    std::fs::write(&shared, b"").unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o640)).unwrap();
    Ledger::open(&shared).await.unwrap().close().await;
    assert_eq!(mode(&shared), 0o640);
}

#[tokio::test]
async fn a_poll_that_changes_nothing_adds_no_history_row() {
    let (_d, l) = ledger().await;
    l.accept(&request("r1", JOB_A), "em", 1).await.unwrap();
    let running = |due: i64| Change {
        task: Some(TaskRecord {
            id: "task-1".into(),
            state: Some("Running".into()),
            ..Default::default()
        }),
        count_poll: true,
        ..Change::to(State::Polling, "still running").due(due)
    };
    l.advance("r1", &running(10), 2, None).await.unwrap();
    l.advance("r1", &running(20), 3, None).await.unwrap();
    l.advance("r1", &running(30), 4, None).await.unwrap();
    let row = l.get("r1").await.unwrap().unwrap();
    assert_eq!(
        (row.poll_count, row.due_at, row.updated_at),
        (3, Some(30), 4)
    );

    let failed_poll = |due: i64| Change {
        last_error: Some(r#"{"kind":"transient","message":"503"}"#.into()),
        count_poll: true,
        ..Change::to(State::Polling, "503").due(due)
    };
    l.advance("r1", &failed_poll(40), 5, None).await.unwrap();
    l.advance("r1", &failed_poll(50), 6, None).await.unwrap();
    l.advance("r1", &Change::to(State::Verifying, "lost").due(60), 7, None)
        .await
        .unwrap();
    l.finish(
        "r1",
        &Change::to(State::Succeeded, "ok"),
        &finish(8),
        outcome_event,
    )
    .await
    .unwrap();
    let history: Vec<(String, i64)> = l
        .history("r1")
        .await
        .unwrap()
        .into_iter()
        .map(|t| (t.state, t.at))
        .collect();
    let expected = [
        ("accepted", 1),
        ("polling", 2),
        ("polling", 5),
        ("verifying", 7),
        ("succeeded", 8),
    ];
    let expected: Vec<(String, i64)> = expected.iter().map(|(s, t)| (s.to_string(), *t)).collect();
    assert_eq!(
        history, expected,
        "a new error is news, the same one again is not"
    );
    assert_eq!(l.get("r1").await.unwrap().unwrap().poll_count, 5);
}

#[tokio::test]
async fn an_aborted_attempt_is_given_back_only_while_it_is_still_submitting() {
    let (_d, l) = ledger().await;
    l.accept(&request("r1", JOB_A), "em", 1).await.unwrap();
    let claimed = l.claim_due(1, 10, 99, &[]).await.unwrap().remove(0);
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
        None,
        "em's rows are not counted, the claimed ones are leased"
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
    l.wait_for_endpoint("r1", State::Accepted, 300, "endpoint down", 250)
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

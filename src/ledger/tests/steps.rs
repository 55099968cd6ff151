//! The steps of a request: attempts, task records, history rows, final steps.

use super::*;

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
    let claimed = l
        .claim_due(1, 10, 99, &Skip::default())
        .await
        .unwrap()
        .remove(0);
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

//! Task durations: written with the step that saw the task end, kept per kind up to
//! `KEPT_SAMPLES`, still there after reopening the file.

use super::*;

fn sample(endpoint: &str, operation: &str, ended_ms: i64) -> DurationSample {
    DurationSample {
        endpoint: endpoint.into(),
        operation: operation.into(),
        duration: TaskDuration {
            running_ms: ended_ms - 100,
            ended_ms,
        },
    }
}

/// Ends request `id` (polling) with `sample` written by the same step, at `at`.
async fn ended_with(l: &Ledger, id: &str, sample: DurationSample, at: i64) {
    let change = Change {
        duration: Some(sample),
        ..Change::to(State::Succeeded, "task finished")
    };
    l.finish(id, &change, &finish(at), outcome_event)
        .await
        .unwrap();
}

#[tokio::test]
async fn samples_are_written_with_their_step_and_survive_reopening_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("l.db");
    {
        let l = Ledger::open(&path).await.unwrap();
        for (i, id) in ["a", "b", "c"].into_iter().enumerate() {
            accept_in(&l, id, "em", "batch", 1).await;
            polling(&l, id, 10).await;
            let op = if id == "c" { "UpdateJob" } else { "DeleteJob" };
            ended_with(&l, id, sample("em", op, 9_000 + i as i64), 20).await;
        }
        // A step that ends in a verification keeps its sample too (a task that ended
        // without a result).
        accept_in(&l, "d", "em2", "batch", 1).await;
        polling(&l, "d", 10).await;
        let change = Change {
            duration: Some(sample("em2", "DeleteJob", 5_000)),
            ..Change::to(State::Verifying, "ended without a result").due(30)
        };
        l.advance("d", &change, 30, None).await.unwrap();
        l.close().await;
    }
    let l = Ledger::open(&path).await.unwrap();
    let got: Vec<(String, String, i64)> = l
        .task_durations()
        .await
        .unwrap()
        .into_iter()
        .map(|s| (s.endpoint, s.operation, s.duration.ended_ms))
        .collect();
    let want = [
        ("em", "DeleteJob", 9_000),
        ("em", "DeleteJob", 9_001),
        ("em", "UpdateJob", 9_002),
        ("em2", "DeleteJob", 5_000),
    ];
    let want: Vec<(String, String, i64)> = want
        .iter()
        .map(|(e, o, ms)| (e.to_string(), o.to_string(), *ms))
        .collect();
    assert_eq!(got, want, "oldest first");
}

#[tokio::test]
async fn only_the_most_recent_samples_of_each_kind_are_kept() {
    let (_d, l) = ledger().await;
    let total = KEPT_SAMPLES as i64 + 10;
    for i in 0..total {
        let id = format!("r{i}");
        accept_in(&l, &id, "em", "batch", 1).await;
        ended_with(&l, &id, sample("em", "DeleteJob", 1_000 + i), 2).await;
    }
    accept_in(&l, "other", "em", "batch", 1).await;
    ended_with(&l, "other", sample("em", "UpdateJob", 700), 2).await;
    let kept = l.task_durations().await.unwrap();
    let delete_jobs: Vec<i64> = kept
        .iter()
        .filter(|s| s.operation == "DeleteJob")
        .map(|s| s.duration.ended_ms)
        .collect();
    let newest: Vec<i64> = (total - KEPT_SAMPLES as i64..total)
        .map(|i| 1_000 + i)
        .collect();
    assert_eq!(delete_jobs, newest);
    assert_eq!(kept.len(), KEPT_SAMPLES + 1, "another kind keeps its own");
}

#[tokio::test]
async fn when_a_poll_last_saw_the_task_running_is_kept_until_a_replay() {
    let (_d, l) = ledger().await;
    accept_in(&l, "r1", "em", "b", 1).await;
    polling(&l, "r1", 10).await;
    let running = |at: Option<i64>| Change {
        task_running_at: at,
        count_poll: true,
        ..Change::to(State::Polling, "still running").due(50)
    };
    l.advance("r1", &running(Some(40)), 41, None).await.unwrap();
    l.advance("r1", &running(None), 60, None).await.unwrap();
    assert_eq!(
        l.get("r1").await.unwrap().unwrap().task_running_at,
        Some(40)
    );
    ended(&l, "r1", "task_failed", Some("task"), 70).await;
    l.replay(&Selection::Request("r1".into()), None, 100)
        .await
        .unwrap();
    let row = l.get("r1").await.unwrap().unwrap();
    assert_eq!((row.task_running_at, row.submitted_at), (None, None));
}

#[test]
fn a_duration_is_bounded_only_by_times_that_make_sense() {
    let d = TaskDuration::between(1_000, Some(9_000), 10_000);
    assert_eq!(
        d,
        Some(TaskDuration {
            running_ms: 8_000,
            ended_ms: 9_000
        })
    );
    let first = TaskDuration::between(1_000, None, 3_000).unwrap();
    assert_eq!((first.running_ms, first.ended_ms), (0, 2_000));
    assert_eq!(TaskDuration::between(1_000, Some(500), 3_000), None);
    assert_eq!(TaskDuration::between(1_000, Some(3_000), 3_000), None);
    assert_eq!(TaskDuration::between(1_000, None, 900), None);
}

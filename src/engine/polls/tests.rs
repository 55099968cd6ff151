//! The planner on a real ledger file: the backoff policy until a kind is known, the learned
//! plan after, and what was learned still known by a new planner on the same file (a
//! restart).

use super::*;
use crate::ledger::{Change, Finish, NewEvent, RequestRow, State};
use crate::request::DeleteRequest;

fn sample(operation: &str, ended_ms: i64) -> DurationSample {
    DurationSample {
        endpoint: "em".into(),
        operation: operation.into(),
        duration: TaskDuration {
            running_ms: ended_ms - 200,
            ended_ms,
        },
    }
}

/// Samples of tasks of about 10 s.
fn ten_seconds(n: usize) -> impl Iterator<Item = DurationSample> {
    (0..n).map(|i| sample("DeleteJob", 9_000 + 200 * (i as i64 % 10)))
}

fn first(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// Records `s` in the ledger as a poll that saw a task end does: with its request's ending.
async fn record(l: &Ledger, i: usize, s: DurationSample) {
    let id = format!("r{i}");
    let job = uuid::Uuid::new_v4().to_string();
    let body = serde_json::json!({"request_id": id, "target": {"type": "em.job", "job_id": job}});
    let req = DeleteRequest::decode(body.to_string().as_bytes(), None).unwrap();
    l.accept(&req, "em", 1).await.unwrap();
    let change = Change {
        duration: Some(s),
        ..Change::to(State::Succeeded, "task finished")
    };
    let finish = Finish {
        outcome: "deleted".into(),
        finished_at: 2,
    };
    let event = |row: &RequestRow| NewEvent {
        event_id: format!("ev-{}", row.request_id),
        request_id: Some(row.request_id.clone()),
        routing_key: "delete.succeeded".into(),
        payload: "{}".into(),
    };
    l.finish(&id, &change, &finish, event).await.unwrap();
}

async fn ledger() -> (tempfile::TempDir, Ledger) {
    let dir = tempfile::tempdir().unwrap();
    let l = Ledger::open(&dir.path().join("l.db")).await.unwrap();
    (dir, l)
}

#[tokio::test]
async fn a_kind_follows_the_backoff_policy_until_enough_is_known() {
    let (_d, l) = ledger().await;
    let planner = PollPlanner::new(l, &Config::default());
    let mut samples = ten_seconds(MIN_SAMPLES);
    for s in samples.by_ref().take(MIN_SAMPLES - 1) {
        planner.learn(&s).await.unwrap();
    }
    let d = first(planner.first_delay("em", "DeleteJob").await.unwrap());
    assert!((0.5..=1.0).contains(&d), "the policy's first delay: {d}");
    planner.learn(&samples.next().unwrap()).await.unwrap();
    let d = first(planner.first_delay("em", "DeleteJob").await.unwrap());
    assert!(
        (7.0..9.5).contains(&d),
        "near the earliest expected end: {d}"
    );
    let other = first(planner.first_delay("em", "UpdateJob").await.unwrap());
    assert!(other <= 1.0, "another operation is not known: {other}");
    let elsewhere = first(planner.first_delay("em2", "DeleteJob").await.unwrap());
    assert!(
        elsewhere <= 1.0,
        "nor the same one on another endpoint: {elsewhere}"
    );
    let task = Task {
        elapsed: Duration::from_secs(10),
        polls: 1,
    };
    let next = planner
        .next_delay("em", "DeleteJob", task, 0)
        .await
        .unwrap();
    assert!(
        next <= Duration::from_secs(1),
        "10 % of the time run: {next:?}"
    );
}

#[tokio::test]
async fn a_new_planner_on_the_same_ledger_knows_what_was_learned() {
    let (_d, l) = ledger().await;
    for (i, s) in ten_seconds(20).enumerate() {
        record(&l, i, s).await;
    }
    let restarted = PollPlanner::new(l.clone(), &Config::default());
    let d = first(restarted.first_delay("em", "DeleteJob").await.unwrap());
    assert!((7.0..9.5).contains(&d), "{d}");
    let off = Config {
        poll_lateness: None,
        ..Config::default()
    };
    let d = first(
        PollPlanner::new(l, &off)
            .first_delay("em", "DeleteJob")
            .await
            .unwrap(),
    );
    assert!(d <= 1.0, "REAPER_POLL_LATENESS=off: the policy only: {d}");
}

#[test]
fn a_task_without_an_operation_is_known_by_its_target_type() {
    assert_eq!(operation_of(Some("DeleteJob"), "em.job"), "DeleteJob");
    assert_eq!(operation_of(Some(""), "em.job"), "em.job");
    assert_eq!(operation_of(None, "em.job_include"), "em.job_include");
}

//! Polls that learn, end to end: after the first tasks of a kind, the next ones cost fewer
//! polls, and a restarted worker keeps what was learned (the samples are in the ledger).
//! Asserts on the simulator's call counts, never on time.

use crate::common::*;
use reaper::broker::client::EventWatcher;
use reaper::event::Outcome;
use reaper::retry::{Backoff, Jitter};
use reaper::sim::SimConfig;
use std::collections::HashSet;
use std::time::Duration;

/// Publishes `n` job deletions of batch `batch` and waits for their outcomes (an event of an
/// earlier batch, sent again after a restart, is not one of them); returns the task polls
/// they cost, per request.
async fn polls_per_request(env: &TestEnv, events: &mut EventWatcher, n: usize, batch: &str) -> f64 {
    let before = env.sim.stats().count("GET /api/tasks/{id}");
    let requests: Vec<_> = (0..n)
        .map(|i| job_request(&format!("{batch}-{i}"), &guid()))
        .collect();
    env.publisher().await.publish_all(&requests).await.unwrap();
    let mut ended = HashSet::new();
    while ended.len() < n {
        let next = tokio::time::timeout(Duration::from_secs(60), events.next()).await;
        let (_, ev) = next.expect("an outcome within 60 s").unwrap();
        let id = ev.data.request_id.clone().unwrap_or_default();
        if id.starts_with(&format!("{batch}-")) {
            assert_eq!(ev.data.outcome, Outcome::Deleted, "{id}");
            ended.insert(id);
        }
    }
    let polls = env.sim.stats().count("GET /api/tasks/{id}") - before;
    polls as f64 / n as f64
}

#[tokio::test]
async fn after_twenty_tasks_of_a_kind_polls_drop_and_a_restart_keeps_what_was_learned() {
    // Tasks of 1.8–2 s. The backoff policy (0.1 s doubling, equal jitter) has polled at
    // most 1.5 s into a task after four polls, so it needs five or more. Polls that have
    // learned go first near the earliest end, then every quarter of the time run (a
    // lateness of 25 %, so that even a plan from the policy's coarse samples saves polls).
    // A restarted worker that had forgotten would need five or more again: its ten tasks
    // would all be polled before ten of them ended.
    let sim = SimConfig {
        task_duration: (Duration::from_millis(1800), Duration::from_millis(2000)),
        ..SimConfig::default()
    };
    let mut env = TestEnv::new(sim).await;
    env.cfg.poll = Backoff {
        initial: Duration::from_millis(100),
        factor: 2.0,
        max: Duration::from_secs(5),
        jitter: Jitter::Equal,
    };
    env.cfg.poll_lateness = Some(0.25);
    let mut events = env.watcher().await;
    let worker = env.start_worker();

    let first = polls_per_request(&env, &mut events, 20, "first").await;
    assert!(first >= 5.0, "the policy needs five polls or more: {first}");
    let ledger = env.ledger().await;
    let samples = ledger.task_durations().await.unwrap();
    assert_eq!(samples.len(), 20, "one sample a task: {samples:?}");
    assert!(
        samples
            .iter()
            .all(|s| s.operation == "DeleteJob" && s.endpoint == "em")
    );
    let learned = polls_per_request(&env, &mut events, 10, "learned").await;
    assert!(
        learned <= 4.5,
        "polls per request: {first} for the first 20, {learned} after"
    );

    worker.kill().await;
    let worker = env.start_worker();
    let restarted = polls_per_request(&env, &mut events, 10, "restarted").await;
    assert!(
        restarted <= 4.0,
        "a restarted worker keeps what was learned: {restarted} polls per request (first 20: {first})"
    );
    assert_eq!(ledger.task_durations().await.unwrap().len(), 40);
    worker.stop().await;
    ledger.close().await;
    env.cleanup().await;
}

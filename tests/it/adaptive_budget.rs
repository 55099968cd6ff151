//! The adaptive budget against a simulated EM that answers 503 to calls beyond its capacity:
//! the budget finds the capacity and stays near it, every request still ends `deleted`, and
//! a restart keeps what was learned. Real RabbitMQ, real simulator, real ledger files.
//! Counts at the simulator, never wall-clock.

use crate::common::*;
use reaper::event::Outcome;
use reaper::limit::Budget;
use reaper::metrics::Health;
use reaper::sim::{SimConfig, SimStats};
use std::sync::Arc;
use std::time::Duration;

/// Calls answered 503, and all calls, counted by the simulator.
fn counts(s: &SimStats) -> (u64, u64) {
    (s.statuses.get("503").copied().unwrap_or(0), s.total_calls)
}

fn batch(prefix: &str, n: usize) -> Vec<reaper::request::RequestWire> {
    (0..n)
        .map(|i| job_request(&format!("{prefix}-{i}"), &guid()))
        .collect()
}

#[tokio::test]
async fn an_endpoint_that_answers_503_above_its_capacity_gets_few_once_the_budget_adapted() {
    let mut env = TestEnv::new(SimConfig {
        task_duration: (Duration::ZERO, Duration::ZERO),
        latency: Duration::from_millis(20),
        capacity: Some(8),
        ..SimConfig::default()
    })
    .await;
    env.cfg.em[0].budget = Budget {
        rate_per_sec: 0.0,
        burst: 1,
        max_in_flight: 32,
    };
    let mut events = env.watcher().await;
    env.publisher()
        .await
        .publish_all(&batch("cap", 600))
        .await
        .unwrap();
    let worker = env.start_worker();
    // The first outcomes come while the budget comes down from 32 calls in flight.
    let early = collect(&mut events, 150, Duration::from_secs(120)).await;
    let (rejected_early, calls_early) = counts(&env.sim.stats());
    let late = collect(&mut events, 450, Duration::from_secs(120)).await;
    let (rejected, calls) = counts(&env.sim.stats());
    assert_each_once(&early, Outcome::Deleted);
    assert_each_once(&late, Outcome::Deleted);
    assert!(
        rejected_early >= 1,
        "the capacity was met: {rejected_early}"
    );
    let (late_rejected, late_calls) = (rejected - rejected_early, calls - calls_early);
    assert!(
        late_rejected * 10 <= late_calls,
        "{late_rejected} of the last {late_calls} calls answered 503"
    );
    worker.stop().await;

    // What it learned is in the ledger, near the capacity.
    let saved = env.ledger().await.rate_controls().await.unwrap();
    assert_eq!(saved.len(), 1, "{saved:?}");
    assert_eq!(saved[0].endpoint, "em");
    assert!(
        (1.0..=12.0).contains(&saved[0].in_flight_limit),
        "{saved:?}"
    );

    // A restart starts from it: a new batch meets few 503s from its very first call, where
    // starting again from 32 calls in flight would meet 24 at once.
    let health = Arc::new(Health::default());
    let metrics = serve_metrics(&env, Arc::clone(&health)).await;
    let worker = Worker::start_with(env.cfg.clone(), health);
    env.publisher()
        .await
        .publish_all(&batch("again", 150))
        .await
        .unwrap();
    let again = collect(&mut events, 150, Duration::from_secs(120)).await;
    assert_each_once(&again, Outcome::Deleted);
    let (rejected_again, calls_again) = counts(&env.sim.stats());
    assert!(
        rejected_again - rejected <= 12,
        "{} of {} calls after the restart answered 503",
        rejected_again - rejected,
        calls_again - calls
    );
    let text = metrics_text(&metrics).await;
    assert!(
        text.contains("reaper_endpoint_budget_adapted{endpoint=\"em\"} 1"),
        "{text}"
    );
    let limit = text
        .lines()
        .find_map(|l| l.strip_prefix("reaper_endpoint_in_flight_limit{endpoint=\"em\"} "))
        .and_then(|v| v.parse::<f64>().ok());
    assert!(limit.is_some_and(|l| (1.0..=12.0).contains(&l)), "{text}");
    worker.stop().await;
    env.cleanup().await;
}

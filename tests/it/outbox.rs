//! The outbox never blocks on one event: events the broker returns (no queue bound for their
//! routing key) back off row by row while the events behind them are published — with real
//! RabbitMQ, a real SQLite ledger and the simulator over HTTP.

use crate::common::*;
use reaper::broker::client::EventWatcher;
use reaper::event::Outcome;
use reaper::request::RequestWire;
use reaper::sim::SimConfig;
use std::time::Duration;

fn quick_tasks() -> SimConfig {
    SimConfig {
        task_duration: (Duration::from_millis(200), Duration::from_millis(400)),
        ..SimConfig::default()
    }
}

/// A request whose target type does not exist: rejected, with an `invalid` event.
fn unknown_target(request_id: &str) -> RequestWire {
    RequestWire {
        request_id: Some(request_id.into()),
        target: serde_json::json!({"type": "em.no_such_thing", "job_id": guid()}),
        ..Default::default()
    }
}

#[tokio::test]
async fn success_events_get_out_behind_300_failure_events_that_no_queue_takes() {
    let env = TestEnv::new(quick_tasks()).await;
    let topology = &env.cfg.topology;
    let mut succeeded = EventWatcher::bound_to(&env.conn, topology, "delete.succeeded")
        .await
        .unwrap();
    let worker = env.start_worker();
    let publisher = env.publisher().await;

    // More failure events than the publisher takes in one round (256), and older than any
    // success event: a queue bound to `delete.succeeded` only returns every one of them.
    let bad: Vec<RequestWire> = (0..300)
        .map(|i| unknown_target(&format!("bad-{i}")))
        .collect();
    publisher.publish_all(&bad).await.unwrap();
    let ledger = env.ledger().await;
    wait_until(
        "the 300 invalid events are in the outbox",
        Duration::from_secs(30),
        || async { ledger.unpublished_count().await.unwrap() == 300 },
    )
    .await;

    let good: Vec<RequestWire> = (0..20)
        .map(|i| job_request(&format!("good-{i}"), &guid()))
        .collect();
    publisher.publish_all(&good).await.unwrap();
    let got = collect(&mut succeeded, 20, Duration::from_secs(60)).await;
    assert_eq!(got.len(), 20);
    assert_each_once(&got, Outcome::Deleted);
    assert!(
        got.keys().all(|id| id.starts_with("good-")),
        "{:?}",
        got.keys()
    );

    // The failure events are still there, each tried and backing off on its own.
    wait_until(
        "only the 300 failure events are unpublished",
        Duration::from_secs(10),
        || async { ledger.unpublished_count().await.unwrap() == 300 },
    )
    .await;
    let pending = ledger.pending_events(i64::MAX, 1000).await.unwrap();
    assert_eq!(pending.len(), 300);
    assert!(pending.iter().all(|r| r.routing_key == "delete.failed"));
    assert!(
        pending.iter().all(|r| r.attempts >= 1),
        "every failure event was tried"
    );

    // Once a queue takes them, they arrive too: nothing was dropped.
    let mut all = env.watcher().await;
    let failed = collect(&mut all, 300, Duration::from_secs(150)).await;
    assert_eq!(failed.len(), 300);
    assert_each_once(&failed, Outcome::Invalid);
    assert!(failed.values().all(|e| e[0].0 == "delete.failed"));
    wait_until(
        "every event is marked published",
        Duration::from_secs(10),
        || async { ledger.unpublished_count().await.unwrap() == 0 },
    )
    .await;
    worker.stop().await;
    env.cleanup().await;
}

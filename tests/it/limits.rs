//! The call budget and finishing under pressure: rate and burst measured at the server,
//! transient errors and throttling retried, permanent failure, timeouts, deadlines, and
//! backpressure on intake. Real RabbitMQ, real simulator, real ledger files.

use crate::common::*;
use reaper::event::Outcome;
use reaper::limit::Budget;
use reaper::request::RequestWire;
use reaper::sim::SimConfig;
use std::time::Duration;

fn quick() -> SimConfig {
    SimConfig {
        task_duration: (Duration::from_millis(100), Duration::from_millis(200)),
        ..SimConfig::default()
    }
}

fn set_budget(env: &mut TestEnv, budget: Budget) {
    env.cfg.em[0].budget = budget;
}

#[tokio::test]
async fn at_twenty_calls_a_second_the_busiest_second_stays_within_rate_plus_burst() {
    let mut env = TestEnv::new(quick()).await;
    set_budget(
        &mut env,
        Budget {
            rate_per_sec: 20.0,
            burst: 5,
            max_in_flight: 8,
        },
    );
    let mut events = env.watcher().await;
    let requests: Vec<_> = (0..300)
        .map(|i| job_request(&format!("rate-{i}"), &guid()))
        .collect();
    env.publisher().await.publish_all(&requests).await.unwrap();
    let worker = env.start_worker();
    let got = collect(&mut events, 300, Duration::from_secs(120)).await;
    assert!(
        got.values()
            .all(|e| e.len() == 1 && e[0].1.data.outcome == Outcome::Deleted)
    );
    let stats = env.sim.stats();
    assert!(
        stats.max_calls_per_second <= 25,
        "busiest second saw {} calls, over rate 20 + burst 5",
        stats.max_calls_per_second
    );
    assert!(
        stats.total_calls >= 600,
        "deletes and polls all went through the budget"
    );
    worker.stop().await;
    env.cleanup().await;
}

#[tokio::test]
async fn transient_errors_and_throttling_are_retried_until_everything_succeeds() {
    let mut env = TestEnv::new(SimConfig {
        error_ratio: 0.2,
        throttle_ratio: 0.1,
        ..quick()
    })
    .await;
    env.cfg.max_attempts = 12;
    let mut events = env.watcher().await;
    let worker = env.start_worker();
    let requests: Vec<_> = (0..50)
        .map(|i| job_request(&format!("flaky-{i}"), &guid()))
        .collect();
    env.publisher().await.publish_all(&requests).await.unwrap();
    let got = collect(&mut events, 50, Duration::from_secs(120)).await;
    for evs in got.values() {
        assert_eq!(evs.len(), 1);
        let d = &evs[0].1.data;
        assert!(matches!(d.outcome, Outcome::Deleted), "{d:?}");
    }
    worker.stop().await;
    // Every DELETE the simulator saw is an attempt counted in the ledger, and no more.
    let ledger = env.ledger().await;
    let mut attempts = 0;
    for r in &requests {
        attempts += ledger
            .get(r.request_id.as_ref().unwrap())
            .await
            .unwrap()
            .unwrap()
            .attempts;
    }
    let stats = env.sim.stats();
    let deletes = stats.calls["DELETE /api/jobs/{id}"];
    assert_eq!(attempts as u64, deletes, "{stats:?}");
    assert!(deletes > 50, "some deletes failed and were retried");
    // The attempts reached the events too.
    let from_events: u64 = got.values().map(|e| e[0].1.data.attempts as u64).sum();
    assert_eq!(from_events, deletes);
    env.cleanup().await;
}

#[tokio::test]
async fn a_permanently_failing_endpoint_ends_retries_exhausted_after_exactly_max_attempts() {
    let mut env = TestEnv::new(SimConfig {
        error_ratio: 1.0,
        ..quick()
    })
    .await;
    env.cfg.max_attempts = 3;
    let mut events = env.watcher().await;
    let worker = env.start_worker();
    env.publisher()
        .await
        .publish_all(&[
            job_request("doomed-1", &guid()),
            job_request("doomed-2", &guid()),
        ])
        .await
        .unwrap();
    let got = collect(&mut events, 2, Duration::from_secs(120)).await;
    for id in ["doomed-1", "doomed-2"] {
        let (key, ev) = &got[id][0];
        assert_eq!(key, "delete.failed");
        assert_eq!(ev.data.outcome, Outcome::RetriesExhausted);
        assert_eq!(ev.data.attempts, 3);
        assert!(ev.data.error.is_some(), "the last error is reported");
    }
    assert_eq!(
        env.sim.stats().calls["DELETE /api/jobs/{id}"],
        6,
        "exactly 3 DELETEs each"
    );
    worker.stop().await;
    env.cleanup().await;
}

#[tokio::test]
async fn a_task_that_never_finishes_times_out_and_an_expired_request_is_never_sent() {
    let mut env = TestEnv::new(SimConfig {
        task_duration: (Duration::from_secs(3600), Duration::from_secs(3600)),
        ..SimConfig::default()
    })
    .await;
    env.cfg.task_timeout = Duration::from_secs(1);
    let mut events = env.watcher().await;
    let worker = env.start_worker();
    let expired_job = guid();
    let expired = RequestWire {
        not_after: Some("2020-01-01T00:00:00Z".into()),
        ..job_request("too-late", &expired_job)
    };
    env.publisher()
        .await
        .publish_all(&[job_request("forever", &guid()), expired])
        .await
        .unwrap();
    let got = collect(&mut events, 2, Duration::from_secs(30)).await;
    assert_eq!(got["forever"][0].1.data.outcome, Outcome::TimedOut);
    assert_eq!(
        got["forever"][0]
            .1
            .data
            .task
            .as_ref()
            .unwrap()
            .state
            .as_deref(),
        Some("Running")
    );
    let late = &got["too-late"][0].1.data;
    assert_eq!(late.outcome, Outcome::Expired);
    assert_eq!(late.attempts, 0);
    let stats = env.sim.stats();
    assert_eq!(
        stats.deletes.get(&format!("/api/jobs/{expired_job}")),
        None,
        "no DELETE after not_after"
    );
    worker.stop().await;
    env.cleanup().await;
}

#[tokio::test]
async fn intake_pauses_at_the_backlog_bound_and_resumes_below_it_losing_nothing() {
    let mut env = TestEnv::new(SimConfig {
        task_duration: (Duration::from_millis(300), Duration::from_millis(300)),
        ..SimConfig::default()
    })
    .await;
    env.cfg.backlog_limit = 10;
    env.cfg.prefetch = 5;
    let mut events = env.watcher().await;
    let requests: Vec<_> = (0..80)
        .map(|i| job_request(&format!("bp-{i}"), &guid()))
        .collect();
    env.publisher().await.publish_all(&requests).await.unwrap();
    let worker = env.start_worker();

    let ledger = env.ledger().await;
    let queue = env.cfg.topology.request_queue.clone();
    let mut max_backlog = 0;
    let mut saw_waiting = false;
    let mut received = std::collections::HashMap::new();
    while received.len() < 80 {
        max_backlog = max_backlog.max(ledger.backlog().await.unwrap());
        saw_waiting |= queue_depth(&env.conn, &queue).await > 0 && received.len() > 10;
        if let Ok(Ok((_, ev))) =
            tokio::time::timeout(Duration::from_millis(100), events.next()).await
        {
            received.insert(ev.data.request_id.clone().unwrap(), ev.data.outcome);
        }
    }
    assert!(received.values().all(|o| *o == Outcome::Deleted));
    assert!(
        max_backlog <= 10 + 5,
        "backlog {max_backlog} stayed within bound + prefetch"
    );
    assert!(
        saw_waiting,
        "requests waited in the queue while intake was paused"
    );
    worker.stop().await;
    env.cleanup().await;
}

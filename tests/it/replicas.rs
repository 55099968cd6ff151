//! Replicas (design 1.8, issue 11): RabbitMQ elects one active worker per request queue; the
//! other is a standby that calls nothing, not even for the work in its own ledger, until the
//! active one dies. One worker per ledger file. Real `reaper run` processes (`kill -9` is a
//! real SIGKILL), real RabbitMQ, the simulator over HTTP, SQLite files.

use crate::binary::{Running, get, reaper_run_on, start};
use crate::common::*;
use reaper::event::Outcome;
use reaper::ledger::Ledger;
use reaper::metrics::{BrokerState, Health};
use reaper::sim::SimConfig;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// A `reaper run` on the test's queue with its own ledger, at 20 calls a second + 5.
fn replica(env: &TestEnv, ledger: &Path, metrics: &str) -> Running {
    let mut cmd = reaper_run_on(env, ledger, "em", metrics);
    cmd.env("REAPER_RATE_PER_SEC", "20")
        .env("REAPER_BURST", "5")
        .env("REAPER_MAX_IN_FLIGHT", "8");
    start(&mut cmd)
}

/// `/readyz` of a worker: its status and the broker's state in its body.
async fn broker_state(metrics: &str) -> (u16, String) {
    let (status, body) = get(&format!("http://{metrics}/readyz")).await;
    let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    (status, v["broker"].as_str().unwrap_or_default().to_string())
}

async fn wait_broker(metrics: &str, want: &str) {
    wait_until(
        &format!("{metrics} reports broker {want}"),
        Duration::from_secs(30),
        || async { broker_state(metrics).await.1 == want },
    )
    .await;
}

/// How many requests a ledger file holds.
async fn requests_in(ledger: &Path) -> i64 {
    let l = Ledger::open(ledger).await.unwrap();
    let n = l.counts().await.unwrap().iter().map(|c| c.count).sum();
    l.close().await;
    n
}

/// The job DELETEs the simulator answered, by path.
fn job_deletes(env: &TestEnv) -> Vec<(String, u64)> {
    let stats = env.sim.stats();
    let jobs = stats.deletes.into_iter();
    jobs.filter(|(path, _)| path.starts_with("/api/jobs/"))
        .collect()
}

async fn publish_jobs(env: &TestEnv, prefix: &str, n: usize) {
    let requests: Vec<_> = (0..n)
        .map(|i| job_request(&format!("{prefix}-{i}"), &guid()))
        .collect();
    env.publisher().await.publish_all(&requests).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_share_one_budget_delete_once_and_the_standby_takes_over_after_kill_9() {
    let env = TestEnv::new(quick_sim()).await;
    let (ledger_a, ledger_b) = (env.dir.path().join("a.db"), env.dir.path().join("b.db"));
    let (metrics_a, metrics_b) = (
        format!("127.0.0.1:{}", free_port()),
        format!("127.0.0.1:{}", free_port()),
    );
    let mut events = env.watcher().await;
    let a = replica(&env, &ledger_a, &metrics_a);
    wait_broker(&metrics_a, "consuming").await;
    let b = replica(&env, &ledger_b, &metrics_b);
    wait_broker(&metrics_b, "standby").await;
    assert_eq!(
        broker_state(&metrics_b).await.0,
        503,
        "a standby is not ready"
    );

    publish_jobs(&env, "rep", 120).await;
    let got = collect(&mut events, 120, Duration::from_secs(120)).await;
    assert_each_once(&got, Outcome::Deleted);
    let stats = env.sim.stats();
    assert!(
        stats.max_calls_per_second <= 25,
        "two replicas spent {} calls in one second: over one budget of 20 + 5",
        stats.max_calls_per_second
    );
    let deletes = job_deletes(&env);
    assert_eq!(deletes.len(), 120);
    assert!(deletes.iter().all(|(_, n)| *n == 1), "{deletes:?}");
    assert_eq!(requests_in(&ledger_b).await, 0, "the standby took nothing");

    let killed = a.kill9().await;
    assert!(!killed.status.success());
    wait_broker(&metrics_b, "consuming").await;
    publish_jobs(&env, "after", 20).await;
    let got = collect(&mut events, 20, Duration::from_secs(60)).await;
    assert_each_once(&got, Outcome::Deleted);
    assert_eq!(
        requests_in(&ledger_b).await,
        20,
        "the standby answered them"
    );
    b.kill9().await;
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_worker_on_the_same_ledger_file_is_refused_at_start() {
    let env = TestEnv::new(quick_sim()).await;
    let ledger = env.ledger_path();
    let metrics = format!("127.0.0.1:{}", free_port());
    let first = replica(&env, &ledger, &metrics);
    wait_broker(&metrics, "consuming").await;
    let second = replica(&env, &ledger, &format!("127.0.0.1:{}", free_port()));
    let out = tokio::time::timeout(Duration::from_secs(30), second.output())
        .await
        .expect("the second worker stops by itself");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("in use by another reaper worker"), "{err}");
    assert!(err.contains(&ledger.display().to_string()), "{err}");
    assert_eq!(
        broker_state(&metrics).await.1,
        "consuming",
        "the first runs on"
    );
    first.kill9().await;
    env.cleanup().await;
}

/// An in-process worker on `env`'s queue, with its own ledger and its EM on `sim_url`.
fn in_process(env: &TestEnv, ledger: PathBuf, sim_url: String) -> (Worker, Arc<Health>) {
    let mut cfg = env.cfg.clone();
    cfg.ledger = ledger;
    cfg.em[0].url = sim_url;
    let health = Arc::new(Health::default());
    (Worker::start_with(cfg, Arc::clone(&health)), health)
}

async fn wait_state(health: &Health, want: BrokerState) {
    wait_until(
        &format!("broker {want:?}"),
        Duration::from_secs(30),
        || async { health.broker() == want },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_published_twice_while_two_workers_run_are_deleted_once_each() {
    let env = TestEnv::new(quick_sim()).await;
    let url = env.sim.base_url();
    let (a, ha) = in_process(&env, env.dir.path().join("a.db"), url.clone());
    let (b, hb) = in_process(&env, env.dir.path().join("b.db"), url);
    wait_until(
        "one active, one standby",
        Duration::from_secs(30),
        || async {
            let states = [ha.broker(), hb.broker()];
            states.contains(&BrokerState::Consuming) && states.contains(&BrokerState::Standby)
        },
    )
    .await;
    let mut events = env.watcher().await;
    let requests: Vec<_> = (0..40)
        .map(|i| job_request(&format!("twice-{i}"), &guid()))
        .collect();
    let publisher = env.publisher().await;
    publisher.publish_all(&requests).await.unwrap();
    publisher.publish_all(&requests).await.unwrap();
    let got = collect(&mut events, 40, Duration::from_secs(60)).await;
    // A duplicate of a finished request republishes its one event (same id), nothing else.
    for (id, evs) in &got {
        assert!(
            evs.iter().all(|(_, e)| e.id == evs[0].1.id),
            "{id}: one event id"
        );
        assert!(evs.iter().all(|(_, e)| e.data.outcome == Outcome::Deleted));
    }
    let deletes = job_deletes(&env);
    assert_eq!(deletes.len(), 40, "{deletes:?}");
    assert!(deletes.iter().all(|(_, n)| *n == 1), "{deletes:?}");
    a.stop().await;
    b.stop().await;
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_does_not_even_poll_its_own_running_tasks_until_it_becomes_active() {
    let env = TestEnv::new(quick_sim()).await;
    let slow = SimConfig {
        task_duration: (Duration::from_secs(2), Duration::from_secs(2)),
        ..SimConfig::default()
    };
    let sim_b = reaper::sim::spawn(slow, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let ledger_b = env.dir.path().join("b.db");
    // B alone sends its DELETE and starts following the task, then crashes.
    let (b, _) = in_process(&env, ledger_b.clone(), sim_b.base_url());
    let mut events = env.watcher().await;
    publish_jobs(&env, "own", 1).await;
    let ledger = Ledger::open(&ledger_b).await.unwrap();
    wait_for_state(&ledger, "polling", 1, Duration::from_secs(30)).await;
    b.kill().await;
    // A becomes the active worker; B, back, is its standby with a running task in its ledger.
    let (a, ha) = in_process(&env, env.dir.path().join("a.db"), env.sim.base_url());
    wait_state(&ha, BrokerState::Consuming).await;
    let (b, hb) = in_process(&env, ledger_b.clone(), sim_b.base_url());
    wait_state(&hb, BrokerState::Standby).await;
    let calls = sim_b.stats().total_calls;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(sim_b.stats().total_calls, calls, "a standby calls nothing");
    assert_eq!(ledger.counts().await.unwrap()[0].state, "polling");

    a.kill().await;
    let got = collect(&mut events, 1, Duration::from_secs(60)).await;
    assert_each_once(&got, Outcome::Deleted);
    assert!(
        sim_b.stats().total_calls > calls,
        "active again, it followed its task"
    );
    assert_eq!(hb.broker(), BrokerState::Consuming);
    b.stop().await;
    ledger.close().await;
    sim_b.shutdown().await;
    env.cleanup().await;
}

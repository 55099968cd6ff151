//! Shared test harness: a real RabbitMQ (from `REAPER_AMQP_URL`/`AMQP_URL`, or started with
//! testcontainers when none answers and a Docker engine exists — otherwise the test FAILS with
//! a clear message), the in-process simulator over real HTTP, a ledger file of the test's own,
//! and randomly named queues and exchanges so tests run in parallel.

pub mod em_http;

use reaper::broker::client::{EventWatcher, RequestPublisher};
use reaper::cli::harness::{Sandbox, SandboxSpec};
use reaper::config::{Config, DcsAuth, DcsSettings, Secret};
use reaper::em::codec::Format;
use reaper::event::CloudEvent;
use reaper::http::HttpSettings;
use reaper::ledger::Ledger;
use reaper::limit::Budget;
use reaper::metrics::Health;
use reaper::retry::Backoff;
use reaper::sim::{SimConfig, SimHandle};
use std::collections::HashMap;
use std::future::Future;
use std::ops::{Deref, DerefMut};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::OnceCell;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

static BROKER: OnceCell<String> = OnceCell::const_new();
static CONTAINER: OnceCell<
    Option<testcontainers::ContainerAsync<testcontainers_modules::rabbitmq::RabbitMq>>,
> = OnceCell::const_new();

/// The broker URL every test uses; fails the test when no broker can be had.
pub async fn amqp_url() -> String {
    BROKER
        .get_or_init(|| async {
            let url = std::env::var("REAPER_AMQP_URL")
                .or_else(|_| std::env::var("AMQP_URL"))
                .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into());
            let first = match reaper::broker::connect(&url, "reaper-test-probe").await {
                Ok(c) => {
                    let _ = c.close(200, "probe".into()).await;
                    return url;
                }
                Err(e) => e,
            };
            match start_container().await {
                Ok(url) => url,
                Err(e) => panic!(
                    "no RabbitMQ for the tests: none answers at {url} ({first:#}) and none could be \
                     started with testcontainers ({e:#}). Start one (`rabbitmq-server -detached`) \
                     or set REAPER_AMQP_URL."
                ),
            }
        })
        .await
        .clone()
}

async fn start_container() -> anyhow::Result<String> {
    use testcontainers::runners::AsyncRunner;
    let container = CONTAINER
        .get_or_try_init(|| async {
            testcontainers_modules::rabbitmq::RabbitMq::default()
                .start()
                .await
                .map(Some)
        })
        .await?;
    let c = container.as_ref().expect("initialised above");
    let port = c.get_host_port_ipv4(5672).await?;
    Ok(format!("amqp://guest:guest@127.0.0.1:{port}/%2f"))
}

/// One test's world: the library's [`Sandbox`] (simulator, ledger file, topology names,
/// broker connection, `Config`), reached through `TestEnv` (`env.sim`, `env.cfg`, …), with
/// the tests' conveniences.
pub struct TestEnv(Sandbox);

impl Deref for TestEnv {
    type Target = Sandbox;
    fn deref(&self) -> &Sandbox {
        &self.0
    }
}

impl DerefMut for TestEnv {
    fn deref_mut(&mut self) -> &mut Sandbox {
        &mut self.0
    }
}

impl TestEnv {
    /// A fresh world with a simulator configured by `sim`: quorum queues, EM in XML with no
    /// rate limit, quick polls and retries.
    pub async fn new(sim: SimConfig) -> Self {
        let base = Config {
            amqp_url: Secret::new(amqp_url().await),
            poll: Backoff {
                initial: Duration::from_millis(100),
                max: Duration::from_millis(400),
                ..Backoff::POLL
            },
            retry: Backoff {
                initial: Duration::from_millis(50),
                max: Duration::from_millis(300),
                ..Backoff::RETRY
            },
            ..Config::default()
        };
        let spec = SandboxSpec {
            name: "test",
            sim,
            format: Format::Xml,
            budget: Budget {
                rate_per_sec: 0.0,
                burst: 100,
                max_in_flight: 16,
            },
            quorum: true,
        };
        let sandbox = Sandbox::start(base, spec).await;
        TestEnv(sandbox.expect("the test's sandbox starts (simulator, broker, topology)"))
    }

    /// Also points the worker at the simulator's DCS (and IAM), authenticating with `auth`.
    pub fn with_dcs(mut self, auth: DcsAuth) -> Self {
        self.cfg.dcs = vec![dcs_settings(&self.sim, auth)];
        self
    }

    /// This world with a DCS endpoint on its simulator, authenticated through its IAM.
    pub fn with_iam_dcs(self) -> Self {
        let auth = iam_auth(&self.sim);
        self.with_dcs(auth)
    }

    pub fn start_worker(&self) -> Worker {
        Worker::start(self.cfg.clone())
    }

    pub async fn publisher(&self) -> RequestPublisher {
        self.0.publisher().await.unwrap()
    }

    pub async fn watcher(&self) -> EventWatcher {
        self.0.watcher().await.unwrap()
    }

    /// A second handle on the ledger file (WAL allows readers beside the worker).
    pub async fn ledger(&self) -> Ledger {
        self.0.ledger().await.unwrap()
    }

    pub fn ledger_path(&self) -> PathBuf {
        self.cfg.ledger.clone()
    }

    /// Deletes the test's queues and exchanges and stops its simulator.
    pub async fn cleanup(self) {
        self.0.cleanup().await;
    }
}

/// A worker running in this process.
pub struct Worker {
    cancel: CancellationToken,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Worker {
    pub fn start(cfg: Config) -> Self {
        Self::start_with(cfg, Default::default())
    }

    /// A worker reporting its readiness to `health` (serve it with [`serve_metrics`]).
    pub fn start_with(cfg: Config, health: Arc<Health>) -> Self {
        let cancel = CancellationToken::new();
        let task = tokio::spawn(reaper::worker::run(cfg, cancel.clone(), health));
        Worker { cancel, task }
    }

    /// Whether the worker is still running: it has not ended, by error or panic.
    pub fn is_running(&self) -> bool {
        !self.task.is_finished()
    }

    /// Graceful stop: the worker's own shutdown path.
    pub async fn stop(self) {
        self.cancel.cancel();
        self.task.await.unwrap().expect("the worker stops cleanly");
    }

    /// How the worker ended by itself (within `timeout`): its result.
    pub async fn result(self, timeout: Duration) -> anyhow::Result<()> {
        let ended = tokio::time::timeout(timeout, self.task).await;
        ended.expect("the worker ends by itself").unwrap()
    }

    /// A crash: the worker's future is dropped wherever it is.
    pub async fn kill(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

/// A request body for an `em.job` deletion.
/// A simulator whose EM tasks run 100–200 ms.
pub fn quick_sim() -> SimConfig {
    SimConfig {
        task_duration: (Duration::from_millis(100), Duration::from_millis(200)),
        ..SimConfig::default()
    }
}

pub fn job_request(request_id: &str, job_id: &str) -> reaper::request::RequestWire {
    reaper::request::RequestWire {
        request_id: Some(request_id.into()),
        target: serde_json::json!({"type": "em.job", "job_id": job_id}),
        batch_id: Some("test-batch".into()),
        ..Default::default()
    }
}

/// An inventory job named `name`, with one include.
pub fn named_job(name: &str) -> reaper::sim::InventoryJob {
    reaper::sim::InventoryJob {
        id: uuid::Uuid::new_v4(),
        name: Some(name.into()),
        includes: vec![uuid::Uuid::new_v4()],
        ..Default::default()
    }
}

pub fn guid() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Collects events until `n` distinct request ids have one, or the timeout passes.
pub async fn collect(
    w: &mut EventWatcher,
    n: usize,
    timeout: Duration,
) -> HashMap<String, Vec<(String, CloudEvent)>> {
    let mut by_request: HashMap<String, Vec<(String, CloudEvent)>> = HashMap::new();
    let deadline = tokio::time::Instant::now() + timeout;
    while by_request.len() < n {
        let next = tokio::time::timeout_at(deadline, w.next()).await;
        let Ok(next) = next else {
            panic!(
                "only {} of {n} requests had an event within {timeout:?}",
                by_request.len()
            )
        };
        let (key, ev) = next.unwrap();
        let id = ev.data.request_id.clone().unwrap_or_default();
        by_request.entry(id).or_default().push((key, ev));
    }
    by_request
}

/// Polls `check` until it returns true, or panics after `timeout`.
pub async fn wait_until<F, Fut>(what: &str, timeout: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {timeout:?} waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The simulator's DCS endpoint as the worker sees it: no rate limit of its own, 16 calls in
/// flight, 404 → `already_absent`.
pub fn dcs_settings(sim: &SimHandle, auth: DcsAuth) -> DcsSettings {
    DcsSettings {
        name: "dcs".into(),
        url: sim.base_url(),
        auth,
        http: HttpSettings::default(),
        budget: Budget {
            rate_per_sec: 0.0,
            burst: 100,
            max_in_flight: 16,
        },
        not_found_is_absent: true,
    }
}

/// IAM password auth against the simulator with its default credentials (reaper/reaper/reaper).
pub fn iam_auth(sim: &SimHandle) -> DcsAuth {
    DcsAuth::Iam {
        iam_url: sim.base_url(),
        domain: "reaper".into(),
        username: "reaper".into(),
        password: Secret::new("reaper").into(),
    }
}

/// A request body for a `dcs.background_task` deletion.
pub fn dcs_request(
    request_id: &str,
    project_id: &str,
    instance_id: &str,
    task_id: &str,
) -> reaper::request::RequestWire {
    reaper::request::RequestWire {
        request_id: Some(request_id.into()),
        target: serde_json::json!({"type": "dcs.background_task", "project_id": project_id,
            "instance_id": instance_id, "task_id": task_id}),
        batch_id: Some("test-batch".into()),
        ..Default::default()
    }
}

/// A fresh DCS task id: 32 hex characters.
pub fn task_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// Waits until `n` requests of the ledger are in `state`.
pub async fn wait_for_state(ledger: &Ledger, state: &str, n: i64, timeout: Duration) {
    wait_until(&format!("{n} requests are {state}"), timeout, || async {
        ledger
            .counts()
            .await
            .unwrap()
            .iter()
            .filter(|c| c.state == state)
            .map(|c| c.count)
            .sum::<i64>()
            == n
    })
    .await;
}

/// How many messages wait in a queue.
pub async fn queue_depth(conn: &lapin::Connection, queue: &str) -> u32 {
    let ch = conn.create_channel().await.unwrap();
    let q = ch
        .queue_declare(
            queue.into(),
            lapin::options::QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            Default::default(),
        )
        .await
        .unwrap();
    let _ = ch.close(200, "peeked".into()).await;
    q.message_count()
}

/// Publishes `n` job deletions named `{prefix}-{i}` and waits until all their tasks are
/// recorded and polling. Returns the requests and a handle on the ledger.
pub async fn jobs_polling(
    env: &TestEnv,
    prefix: &str,
    n: usize,
) -> (Vec<reaper::request::RequestWire>, Ledger) {
    let requests: Vec<_> = (0..n)
        .map(|i| job_request(&format!("{prefix}-{i}"), &guid()))
        .collect();
    env.publisher().await.publish_all(&requests).await.unwrap();
    let ledger = env.ledger().await;
    wait_for_state(&ledger, "polling", n as i64, Duration::from_secs(30)).await;
    (requests, ledger)
}

/// Asserts that every request collected has exactly one event, with `outcome`.
pub fn assert_each_once(
    got: &HashMap<String, Vec<(String, CloudEvent)>>,
    outcome: reaper::event::Outcome,
) {
    for (id, evs) in got {
        assert_eq!(evs.len(), 1, "{id} has one event");
        assert_eq!(evs[0].1.data.outcome, outcome, "{id}: {:?}", evs[0].1.data);
    }
}

/// Serves `/metrics`, `/healthz` and `/readyz` of `health` on a free port, as `reaper run`
/// does; returns the base URL. Stops with the test's runtime.
pub async fn serve_metrics(env: &TestEnv, health: Arc<Health>) -> String {
    let listener = reaper::metrics::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let ledger = env.ledger().await;
    tokio::spawn(reaper::metrics::serve(
        listener,
        ledger,
        health,
        CancellationToken::new(),
    ));
    url
}

/// `GET {base}/readyz`: the status and the JSON body.
pub async fn readyz(base: &str) -> (u16, serde_json::Value) {
    let r = reqwest::get(format!("{base}/readyz")).await.unwrap();
    let status = r.status().as_u16();
    let body = r.text().await.unwrap();
    let json = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    (status, json)
}

/// `GET {base}/metrics`: the text.
pub async fn metrics_text(base: &str) -> String {
    let r = reqwest::get(format!("{base}/metrics")).await.unwrap();
    r.text().await.unwrap()
}

/// A free port on 127.0.0.1 where nothing listens (for now).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

//! An in-process world for `reaper demo` and `reaper bench`: the simulator on a free port, a
//! worker with a temporary ledger and randomly named queues on the configured RabbitMQ, and a
//! watcher on the events. Never touches a real deployment's queues.

use crate::broker::client::{EventWatcher, RequestPublisher};
use crate::config::{Config, EmSettings, Secret, Topology};
use crate::em::codec::Format;
use crate::http::HttpSettings;
use crate::limit::Budget;
use crate::request::RequestWire;
use crate::sim::{SimConfig, SimHandle};
use std::path::PathBuf;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// What differs between a demo and a benchmark run.
pub struct HarnessSpec {
    pub name: &'static str,
    pub sim: SimConfig,
    pub budget: Budget,
    pub format: Format,
    pub poll: crate::retry::Backoff,
    pub engine_concurrency: usize,
    pub backlog_limit: u64,
}

/// A running simulator + worker + event watcher.
pub struct Harness {
    pub sim: SimHandle,
    pub cfg: Config,
    pub conn: lapin::Connection,
    pub events: EventWatcher,
    dir: PathBuf,
    cancel: CancellationToken,
    worker: JoinHandle<anyhow::Result<()>>,
}

impl Harness {
    /// Starts everything; `base` supplies the broker URL and the defaults.
    pub async fn start(base: Config, spec: HarnessSpec) -> anyhow::Result<Self> {
        let sim = crate::sim::spawn(spec.sim, "127.0.0.1:0".parse()?).await?;
        let id = uuid::Uuid::new_v4().simple().to_string();
        let dir = std::env::temp_dir().join(format!("reaper-{}-{}", spec.name, &id[..8]));
        std::fs::create_dir_all(&dir)?;
        let cfg = Config {
            topology: Topology {
                quorum: false,
                expires: Some(Duration::from_secs(600)),
                ..Topology::with_prefix(&format!("reaper.{}.{}", spec.name, &id[..8]))
            },
            ledger: dir.join("ledger.db"),
            worker_name: spec.name.into(),
            em: Some(EmSettings {
                name: "em".into(),
                url: sim.base_url(),
                username: "reaper".into(),
                password: Secret::new("reaper").into(),
                format: spec.format,
                http: HttpSettings::default(),
                budget: spec.budget,
            }),
            poll: spec.poll,
            engine_concurrency: spec.engine_concurrency,
            backlog_limit: spec.backlog_limit,
            shutdown_grace: Duration::from_secs(5),
            ..base
        };
        let conn = crate::broker::connect(
            cfg.amqp_url.expose(),
            &format!("reaper/{}-client", spec.name),
        )
        .await?;
        let setup = conn.create_channel().await?;
        crate::broker::declare(&setup, &cfg.topology).await?;
        let events = EventWatcher::new(&conn, &cfg.topology).await?;
        let cancel = CancellationToken::new();
        let worker = tokio::spawn(crate::worker::run(
            cfg.clone(),
            cancel.clone(),
            Default::default(),
        ));
        Ok(Harness {
            sim,
            cfg,
            conn,
            events,
            dir,
            cancel,
            worker,
        })
    }

    /// A crash and a restart: the worker's future is dropped wherever it is (as by kill -9:
    /// nothing is flushed or logged off), and a new worker starts on the same ledger.
    pub async fn crash_and_restart(&mut self) {
        self.worker.abort();
        let _ = (&mut self.worker).await;
        self.worker = tokio::spawn(crate::worker::run(
            self.cfg.clone(),
            self.cancel.clone(),
            Default::default(),
        ));
    }

    /// Publishes requests with confirms, in chunks.
    pub async fn publish(&self, requests: &[RequestWire]) -> anyhow::Result<()> {
        let publisher = RequestPublisher::new(&self.conn, &self.cfg.topology).await?;
        for chunk in requests.chunks(1000) {
            publisher.publish_all(chunk).await?;
        }
        Ok(())
    }

    /// Stops the worker gracefully and removes the queues, exchanges and ledger.
    pub async fn stop(self) {
        self.cancel.cancel();
        if let Ok(Err(e)) = self.worker.await {
            tracing::warn!(error = format!("{e:#}"), "the worker stopped with an error");
        }
        self.events.close().await;
        if let Ok(ch) = self.conn.create_channel().await {
            crate::broker::cleanup_topology(&ch, &self.cfg.topology).await;
            let _ = ch.close(200, "cleaned up".into()).await;
        }
        let _ = self.conn.close(200, "done".into()).await;
        self.sim.shutdown().await;
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A sample batch of `count` job deletions with random GUIDs.
pub fn sample_batch(count: usize, batch_id: &str) -> Vec<RequestWire> {
    (0..count)
        .map(|i| RequestWire {
            request_id: Some(format!("{batch_id}-{i:06}")),
            target: serde_json::json!({"type": "em.job", "job_id": uuid::Uuid::new_v4().to_string()}),
            batch_id: Some(batch_id.to_string()),
            correlation_id: Some(format!("reaper-{batch_id}")),
            ..Default::default()
        })
        .collect()
}

//! In-process worlds, built one way for `reaper demo`, `reaper bench` and the integration
//! tests: a [`Sandbox`] is the simulator on a free port, a temporary ledger, randomly named
//! queues on the configured RabbitMQ and a `Config` pointing a worker at them; a [`Harness`]
//! is a sandbox with a worker running — a task of this process, or a `reaper run` child
//! process ([`Placement`]) — and a watcher on its events. Never touches a real deployment's
//! queues.

use super::worker_process::WorkerProcess;
use crate::broker::client::{EventWatcher, RequestPublisher};
use crate::config::{Config, EmSettings, Secret, Topology};
use crate::em::codec::Format;
use crate::http::HttpSettings;
use crate::ledger::Ledger;
use crate::limit::Budget;
use crate::request::RequestWire;
use crate::sim::{SimConfig, SimHandle};
use std::ops::{Deref, DerefMut};
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// What differs between sandboxes.
pub struct SandboxSpec {
    /// `demo`, `bench`, `test`: names the queues (`reaper.NAME.<random>.…`), the temporary
    /// directory and the worker.
    pub name: &'static str,
    pub sim: SimConfig,
    /// How the worker talks to the simulated EM.
    pub format: Format,
    pub budget: Budget,
    /// Quorum queues, as in production, or classic ones (quicker to declare).
    pub quorum: bool,
}

/// A world of its own: the simulator on a free port of 127.0.0.1, a temporary directory for
/// the ledger (removed when dropped), randomly named queues and exchanges (declared; they
/// expire 10 minutes after their last use should a run die before its clean-up), a broker
/// connection, and a `Config` that points a worker at all of it.
pub struct Sandbox {
    pub sim: SimHandle,
    pub cfg: Config,
    pub conn: lapin::Connection,
    pub dir: tempfile::TempDir,
}

impl Sandbox {
    /// Builds it. `base` supplies the broker URL and every setting the sandbox does not set
    /// (it sets the topology, the ledger, the worker's name, the EM endpoint and a 5 s grace).
    pub async fn start(base: Config, spec: SandboxSpec) -> anyhow::Result<Self> {
        let sim = crate::sim::spawn(spec.sim, "127.0.0.1:0".parse()?).await?;
        let dir = tempfile::Builder::new()
            .prefix(&format!("reaper-{}-", spec.name))
            .tempdir()?;
        let id = uuid::Uuid::new_v4().simple().to_string();
        let cfg = Config {
            topology: Topology {
                quorum: spec.quorum,
                expires: Some(Duration::from_secs(600)),
                ..Topology::with_prefix(&format!("reaper.{}.{}", spec.name, &id[..12]))
            },
            ledger: dir.path().join("ledger.db"),
            worker_name: spec.name.into(),
            em: vec![em_settings(&sim, spec.format, spec.budget)],
            shutdown_grace: Duration::from_secs(5),
            ..base
        };
        let client_name = format!("reaper/{}-client", spec.name);
        let conn = crate::broker::connect(cfg.amqp_url.expose(), &client_name).await?;
        let setup = conn.create_channel().await?;
        let queues = crate::broker::request_queues(&cfg.topology, &cfg.endpoint_names());
        crate::broker::declare(&setup, &cfg.topology, &queues).await?;
        let _ = setup.close(200, "declared".into()).await;
        Ok(Sandbox {
            sim,
            cfg,
            conn,
            dir,
        })
    }

    /// A publisher of requests to the sandbox's queue (with confirms).
    pub async fn publisher(&self) -> anyhow::Result<RequestPublisher> {
        RequestPublisher::new(&self.conn, &self.cfg.topology).await
    }

    /// A watcher of every event the sandbox's worker publishes.
    pub async fn watcher(&self) -> anyhow::Result<EventWatcher> {
        EventWatcher::new(&self.conn, &self.cfg.topology).await
    }

    /// A handle on the ledger file (WAL allows readers beside the worker).
    pub async fn ledger(&self) -> anyhow::Result<Ledger> {
        Ledger::open(&self.cfg.ledger).await
    }

    /// Deletes the queues and exchanges, closes the connection, stops the simulator and
    /// removes the directory.
    pub async fn cleanup(self) {
        if let Ok(ch) = self.conn.create_channel().await {
            crate::broker::cleanup_topology(&ch, &self.cfg.topology).await;
            let _ = ch.close(200, "cleaned up".into()).await;
        }
        let _ = self.conn.close(200, "done".into()).await;
        self.sim.shutdown().await;
    }
}

/// The simulator's EM endpoint as a worker sees it (the simulator's default credentials).
pub fn em_settings(sim: &SimHandle, format: Format, budget: Budget) -> EmSettings {
    EmSettings {
        name: "em".into(),
        url: sim.base_url(),
        username: "reaper".into(),
        password: Secret::new("reaper").into(),
        format,
        http: HttpSettings::default(),
        budget,
    }
}

/// What differs between a demo and a benchmark run.
pub struct HarnessSpec {
    pub name: &'static str,
    pub sim: SimConfig,
    pub budget: Budget,
    pub format: Format,
    pub poll: crate::retry::Backoff,
    pub engine_concurrency: usize,
    pub backlog_limit: u64,
    /// Finished requests put in the ledger before the worker starts (a long-running ledger).
    pub prefill: u64,
    /// Where the worker runs.
    pub placement: Placement,
}

/// Where a harness runs its worker.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Placement {
    /// A task of this process, beside the simulator (the demo; runs that count calls).
    #[default]
    InProcess,
    /// A `reaper run` child process ([`WorkerProcess`]), so that its CPU time, memory and
    /// ledger transactions are its own (`reaper bench`). Killed when the harness is dropped.
    ChildProcess,
}

/// The worker a harness runs.
enum RunningWorker {
    InProcess(JoinHandle<anyhow::Result<()>>),
    Child(WorkerProcess),
}

/// A running simulator + worker + event watcher (the sandbox's fields are reached through it).
pub struct Harness {
    world: Sandbox,
    pub events: EventWatcher,
    cancel: CancellationToken,
    worker: RunningWorker,
}

impl Deref for Harness {
    type Target = Sandbox;
    fn deref(&self) -> &Sandbox {
        &self.world
    }
}

impl DerefMut for Harness {
    fn deref_mut(&mut self) -> &mut Sandbox {
        &mut self.world
    }
}

impl Harness {
    /// Starts everything on classic queues; `base` supplies the broker URL and the defaults.
    pub async fn start(base: Config, spec: HarnessSpec) -> anyhow::Result<Self> {
        let base = Config {
            poll: spec.poll,
            engine_concurrency: spec.engine_concurrency,
            backlog_limit: spec.backlog_limit,
            ..base
        };
        let sandbox = SandboxSpec {
            name: spec.name,
            sim: spec.sim,
            format: spec.format,
            budget: spec.budget,
            quorum: false,
        };
        let world = Sandbox::start(base, sandbox).await?;
        if spec.prefill > 0 {
            let ledger = world.ledger().await?;
            let endpoint = &world.cfg.em[0].name;
            ledger.prefill_finished(spec.prefill, endpoint, 0).await?;
            ledger.close().await;
        }
        let events = world.watcher().await?;
        let cancel = CancellationToken::new();
        let worker = start_worker(&world.cfg, &cancel, spec.placement).await?;
        Ok(Harness {
            world,
            events,
            cancel,
            worker,
        })
    }

    /// A crash and a restart: the worker ends wherever it is — a child by `kill -9`, a task
    /// by dropping its future — so nothing is flushed or logged off, and a new worker starts
    /// on the same ledger, in the same place (a child is ready when this returns).
    pub async fn crash_and_restart(&mut self) -> anyhow::Result<()> {
        let placement = match &mut self.worker {
            RunningWorker::InProcess(task) => {
                task.abort();
                let _ = task.await;
                Placement::InProcess
            }
            RunningWorker::Child(child) => {
                child.kill9();
                Placement::ChildProcess
            }
        };
        self.worker = start_worker(&self.world.cfg, &self.cancel, placement).await?;
        Ok(())
    }

    /// The child worker, when the worker runs as one.
    pub fn worker_process(&mut self) -> Option<&mut WorkerProcess> {
        match &mut self.worker {
            RunningWorker::Child(child) => Some(child),
            RunningWorker::InProcess(_) => None,
        }
    }

    /// Publishes requests with confirms, in chunks.
    pub async fn publish(&self, requests: &[RequestWire]) -> anyhow::Result<()> {
        let publisher = self.world.publisher().await?;
        for chunk in requests.chunks(1000) {
            publisher.publish_all(chunk).await?;
        }
        Ok(())
    }

    /// Stops the worker gracefully and removes the queues, exchanges and ledger.
    pub async fn stop(self) {
        self.cancel.cancel();
        match self.worker {
            RunningWorker::InProcess(task) => {
                if let Ok(Err(e)) = task.await {
                    tracing::warn!(error = format!("{e:#}"), "the worker stopped with an error");
                }
            }
            RunningWorker::Child(child) => child.stop(self.world.cfg.shutdown_grace * 2).await,
        }
        self.events.close().await;
        self.world.cleanup().await;
    }
}

/// Starts a worker on `cfg` where `placement` says (a child process once it is ready).
async fn start_worker(
    cfg: &Config,
    cancel: &CancellationToken,
    placement: Placement,
) -> anyhow::Result<RunningWorker> {
    Ok(match placement {
        Placement::InProcess => RunningWorker::InProcess(tokio::spawn(crate::worker::run(
            cfg.clone(),
            cancel.clone(),
            Default::default(),
        ))),
        Placement::ChildProcess => RunningWorker::Child(WorkerProcess::start(cfg).await?),
    })
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

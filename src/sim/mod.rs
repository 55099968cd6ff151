//! An in-process simulator of Veeam Backup Enterprise Manager's REST API — and, on the same
//! listener, of Huawei Cloud DCS's background-task API with its IAM token service — for
//! `reaper simulate`, `reaper demo` and integration tests that need exact counts of what
//! reached the server.
//!
//! It behaves like a real EM, including the parts that break naive clients: logon sessions
//! with an idle timeout and a token whose cookie beats its header, tasks that belong to the
//! session that created them (`task-N` per session; another session's id answers 500),
//! deletions that take effect only when their task succeeds, XML unless JSON is asked for
//! (a mixed `Accept` is 400), and injected 5xx, throttling (503 + `Retry-After`), capacity
//! limits and latency. It never logs passwords or tokens.
//!
//! Layout (arrows point down; no module imports one that imports it back):
//! - `SimHandle`, `spawn`, `serve` (here): listening, HTTP or HTTPS, shutdown;
//! - `router`: the router — `/_sim/stats`, `/_sim/faults`, DCS and IAM, EM for everything else;
//! - `state`: the shared `Sim` — the counters, the live faults and the two sides below;
//! - `em/`: the simulated EM (`routes`, `wire`, `resource`, `inventory`, pure `world`,
//!   and `handler`, its HTTP front);
//! - `dcs/`: the simulated DCS and IAM (`routes`, pure `world`, and `handler`, its HTTP
//!   front, sharing `crate::dcs::wire`);
//! - `config` (knobs; it names `em::inventory`, a leaf of plain data), `faults` (the fault
//!   ratios a test changes at run time), `stats` (counters), `tls` (optional HTTPS): shared.
//!
//! Test knobs at run time: `POST /_sim/faults` with `{"task_failure_ratio": 0.6, …}` (see
//! `FaultsUpdate`; `SimHandle::set_faults` in process), `GET /_sim/stats` for the counters.
//!
//! Must not touch anything outside `src/sim/`.

mod config;
mod dcs;
mod em;
mod faults;
mod router;
mod state;
mod stats;
mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use config::SimConfig;
pub use em::{Inventory, InventoryJob, TaskSighting};
pub use faults::{Faults, FaultsUpdate};
pub use stats::SimStats;
pub use tls::SimTls;

use state::Sim;

/// A simulator running in the background; see `spawn`.
pub struct SimHandle {
    addr: SocketAddr,
    tls: bool,
    sim: Sim,
    cancel: CancellationToken,
    task: JoinHandle<anyhow::Result<()>>,
}

impl SimHandle {
    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`, or `https://127.0.0.1:PORT` with `SimConfig::tls` (EM's API
    /// lives under `/api`). The host is the bound IP, so a certificate must name it.
    pub fn base_url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// `base_url()` + `/api`.
    pub fn api_url(&self) -> String {
        format!("{}/api", self.base_url())
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> SimStats {
        self.sim.stats.snapshot()
    }

    /// The fault ratios in force now.
    pub fn faults(&self) -> Faults {
        self.sim.faults.get()
    }

    /// Test knob: changes the fault ratios while the simulator runs (as `POST /_sim/faults`
    /// does); a share out of `[0, 1]` changes nothing and says which field.
    pub fn set_faults(&self, update: &FaultsUpdate) -> Result<Faults, String> {
        self.sim.faults.update(update)
    }

    /// The EM tasks whose end a poll saw, oldest first: how long each ran and how late the
    /// first poll to see it ended came.
    pub fn task_sightings(&self) -> Vec<TaskSighting> {
        self.sim.em.sightings()
    }

    /// Test knob: forgets every logon session now (old tokens answer 401).
    pub fn expire_sessions(&self) {
        self.sim.em.expire_sessions();
    }

    /// Test knob: lets every DCS (IAM) token expire now (they answer 401 DCS.1002).
    pub fn expire_dcs_tokens(&self) {
        self.sim.dcs.expire_tokens();
    }

    /// Stops serving: waits up to 5 s for open requests, then aborts.
    pub async fn shutdown(self) {
        self.cancel.cancel();
        let mut task = self.task;
        match tokio::time::timeout(Duration::from_secs(5), &mut task).await {
            Ok(Ok(Err(e))) => tracing::warn!("simulator stopped with an error: {e:#}"),
            Ok(_) => {}
            Err(_) => task.abort(),
        }
    }
}

/// Binds `addr` (use `127.0.0.1:0` in tests) and serves in the background, over HTTPS when
/// `cfg.tls` is set (a bad certificate or key fails here, before binding).
pub async fn spawn(cfg: SimConfig, addr: SocketAddr) -> anyhow::Result<SimHandle> {
    let tls = server_tls(&cfg)?;
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the EM simulator to {addr}"))?;
    let addr = listener.local_addr()?;
    let sim = Sim::new(cfg, addr);
    let cancel = CancellationToken::new();
    let app = router::router(&sim);
    let task = tokio::spawn(run(app, listener, tls.clone(), cancel.clone()));
    Ok(SimHandle {
        addr,
        tls: tls.is_some(),
        sim,
        cancel,
        task,
    })
}

/// Serves on `listener` until `cancel` fires (for the CLI), over HTTPS when `cfg.tls` is set.
///
/// Cancel safety: cancelling `cancel` stops accepting and drains open connections;
/// dropping the future drops every connection at once.
pub async fn serve(
    cfg: SimConfig,
    listener: TcpListener,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    let tls = server_tls(&cfg)?;
    let addr = listener.local_addr()?;
    let app = router::router(&Sim::new(cfg, addr));
    run(app, listener, tls, cancel).await
}

fn server_tls(cfg: &SimConfig) -> anyhow::Result<Option<Arc<rustls::ServerConfig>>> {
    cfg.tls.as_ref().map(SimTls::server_config).transpose()
}

async fn run(
    app: axum::Router,
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    let addr = listener.local_addr()?;
    let Some(tls) = tls else {
        tracing::info!(%addr, "EM simulator listening (HTTP)");
        return axum::serve(listener, app)
            .with_graceful_shutdown(async move { cancel.cancelled().await })
            .await
            .context("EM simulator server");
    };
    tracing::info!(%addr, "EM simulator listening (HTTPS)");
    let handle = axum_server::Handle::new();
    let config = axum_server::tls_rustls::RustlsConfig::from_config(tls);
    let server = axum_server::from_tcp_rustls(listener.into_std()?, config)?
        .handle(handle.clone())
        .serve(app.into_make_service());
    tokio::pin!(server);
    let served = tokio::select! {
        r = &mut server => r,
        _ = cancel.cancelled() => {
            handle.graceful_shutdown(None);
            server.await
        }
    };
    served.context("EM simulator server (HTTPS)")
}

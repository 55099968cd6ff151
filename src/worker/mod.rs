//! The composition root: builds the worker's parts once — ledger, endpoint clients with their
//! health and probers, engine, broker link — supervises them for the life of the process, and
//! stops them in order (design 2.10): stop consuming, let in-flight steps finish within the
//! grace period, log off EM, flush the outbox, close the broker connection.
//!
//! Only the broker link reconnects (with back-off); the engine keeps polling meanwhile and the
//! EM sessions survive, so running tasks stay pollable. The engine itself knows nothing of
//! the broker or the metrics: they meet here.

mod broker_link;
mod endpoints;

pub use endpoints::{Endpoints, endpoint_event};

use crate::broker::{intake::IntakeCtx, publisher::Publisher};
use crate::config::Config;
use crate::engine::Engine;
use crate::ledger::Ledger;
use crate::metrics::Health;
use crate::retry::Backoff;
use broker_link::BrokerLink;
use std::sync::Arc;
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;

/// Runs the worker until `shutdown`, then stops it gracefully, reporting readiness to
/// `health` (for `/readyz`). Returns an error only when it cannot start (ledger, endpoint
/// configuration); a lost broker connection is reconnected, a failing ledger retried.
pub async fn run(
    cfg: Config,
    shutdown: CancellationToken,
    health: Arc<Health>,
) -> anyhow::Result<()> {
    let cfg = Arc::new(cfg);
    let ledger = Ledger::open(&cfg.ledger).await?;
    crate::engine::resume(&ledger, &cfg).await?;
    let (transitions, transitions_rx) = mpsc::unbounded_channel();
    let endpoints = Endpoints::build(&cfg, transitions)?;
    health.set_endpoints(endpoints.health());
    let outbox_wake = Arc::new(Notify::new());
    let engine = Arc::new(Engine::new(
        ledger.clone(),
        Arc::clone(&cfg),
        endpoints.em.clone(),
        endpoints.dcs.clone(),
        Arc::clone(&outbox_wake),
    ));

    let probes_stop = CancellationToken::new();
    let mut probers = endpoints.spawn_probers(&probes_stop);
    let reporter_stop = CancellationToken::new();
    // Every part is aborted when this future is dropped (a crash, in tests): nothing of a
    // dropped worker goes on consuming or calling.
    let reporter = AbortOnDropHandle::new(tokio::spawn(endpoints::report(
        transitions_rx,
        ledger.clone(),
        cfg.worker_name.clone(),
        Arc::clone(&outbox_wake),
        Arc::clone(&engine.wake),
        reporter_stop.clone(),
    )));
    let publisher_stop = CancellationToken::new();
    let link = broker_link(&cfg, &ledger, &engine, outbox_wake, health);
    let link = AbortOnDropHandle::new(tokio::spawn(
        link.run(shutdown.clone(), publisher_stop.clone()),
    ));

    run_engine(&engine, &ledger, &shutdown).await;
    probes_stop.cancel();
    while probers.join_next().await.is_some() {}
    endpoints.log_off().await;
    reporter_stop.cancel();
    let _ = reporter.await;
    publisher_stop.cancel();
    let _ = link.await;
    ledger.close().await;
    Ok(())
}

/// Runs the engine until `shutdown`. When it fails (the ledger failed under it), its steps
/// are gone: their leases are released and it runs again after a back-off.
async fn run_engine(engine: &Arc<Engine>, ledger: &Ledger, shutdown: &CancellationToken) {
    let mut failures = 0;
    loop {
        let Err(e) = Arc::clone(engine).run(shutdown.clone()).await else {
            return;
        };
        failures += 1;
        let delay = Backoff::RECONNECT.delay(failures);
        tracing::error!(error = format!("{e:#}"), retry_in = ?delay, "engine failed; restarting it");
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(delay) => {}
        }
        // The EM sessions live on, so the follow-ups keep their due times: only the leases
        // of the steps the failed engine held are released.
        if let Err(e) = ledger.resume().await {
            tracing::error!(error = format!("{e:#}"), "releasing leases failed");
        }
    }
}

/// The broker side of the worker: intake into the ledger, the outbox publisher.
fn broker_link(
    cfg: &Arc<Config>,
    ledger: &Ledger,
    engine: &Engine,
    outbox_wake: Arc<Notify>,
    health: Arc<Health>,
) -> BrokerLink {
    BrokerLink {
        intake: intake(cfg, ledger, engine, &outbox_wake),
        publisher: Publisher {
            ledger: ledger.clone(),
            exchange: cfg.topology.events_exchange.clone(),
            worker_name: cfg.worker_name.clone(),
            wake: outbox_wake,
        },
        cfg: Arc::clone(cfg),
        health,
    }
}

fn intake(cfg: &Config, ledger: &Ledger, engine: &Engine, outbox_wake: &Arc<Notify>) -> IntakeCtx {
    let name = |n: Option<&String>, default: &str| n.cloned().unwrap_or_else(|| default.into());
    IntakeCtx {
        ledger: ledger.clone(),
        queue: cfg.topology.request_queue.clone(),
        prefetch: cfg.prefetch,
        backlog_limit: cfg.backlog_limit,
        worker_name: cfg.worker_name.clone(),
        em_endpoint: name(cfg.em.as_ref().map(|e| &e.name), "em"),
        dcs_endpoint: name(cfg.dcs.as_ref().map(|d| &d.name), "dcs"),
        engine_wake: Arc::clone(&engine.wake),
        outbox_wake: Arc::clone(outbox_wake),
    }
}

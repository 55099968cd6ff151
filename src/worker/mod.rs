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
mod rate_control;

pub use endpoints::{Endpoints, default_endpoint, endpoint_event, endpoint_of, recorded_endpoint};

use crate::broker::{intake::IntakeCtx, publisher::Publisher};
use crate::config::Config;
use crate::engine::{Active, Engine};
use crate::guard::Protections;
use crate::ledger::PauseScope;
use crate::ledger::{Ledger, WorkerLock};
use crate::metrics::Health;
use crate::request::System;
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
    // One worker per ledger file: a second one is refused before it touches the ledger.
    let _lock = WorkerLock::take(&cfg.ledger, &cfg.worker_name)?;
    // Fail closed: a bad protect file (of any endpoint) stops start-up before anything is
    // consumed or called.
    let protection = Protections::load(&cfg)?;
    let ledger = Ledger::open(&cfg.ledger).await?;
    crate::engine::resume(&ledger, &cfg).await?;
    let (transitions, transitions_rx) = mpsc::unbounded_channel();
    let endpoints = Endpoints::build(&cfg, transitions)?;
    health.set_endpoints(endpoints.health());
    health.set_budgets(endpoints.limiters.clone());
    rate_control::restore(&ledger, &endpoints.limiters).await;
    let names = endpoints.names();
    let queues = crate::broker::request_queues(&cfg.topology, &names);
    anyhow::ensure!(
        !queues.is_empty(),
        "REAPER_ROUTE_BY_ENDPOINT is on but no endpoint is configured: there is no queue to consume"
    );
    // A standby until RabbitMQ elects this worker for a request queue (design 1.8).
    let active = Arc::new(Active::standby());
    let outbox_wake = Arc::new(Notify::new());
    let engine = Engine::new(
        ledger.clone(),
        Arc::clone(&cfg),
        endpoints.em.clone(),
        endpoints.dcs.clone(),
        protection.clone(),
        Arc::clone(&outbox_wake),
    );
    let engine = Arc::new(engine.with_active(Arc::clone(&active)));
    // The worker stops on `shutdown`, or by itself when the broker's topology cannot be used.
    let shutdown = shutdown.child_token();
    let watcher_stop = CancellationToken::new();
    let watcher = AbortOnDropHandle::new(protection.spawn_watcher(watcher_stop.clone()));
    let pauses = AbortOnDropHandle::new(tokio::spawn(show_pauses(
        ledger.clone(),
        Arc::clone(&health),
        watcher_stop.clone(),
    )));

    let budgets_stop = CancellationToken::new();
    let budgets = AbortOnDropHandle::new(tokio::spawn(rate_control::keep(
        ledger.clone(),
        endpoints.limiters.clone(),
        budgets_stop.clone(),
    )));
    let probes_stop = CancellationToken::new();
    let mut probers = endpoints.spawn_probers(&probes_stop, &active);
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
    let link = BrokerLink {
        queues,
        endpoints: names,
        active: Arc::clone(&active),
        engine_wake: Arc::clone(&engine.wake),
        ..broker_link(&cfg, &ledger, &engine, outbox_wake, health)
    };
    let link_stop = (shutdown.clone(), publisher_stop.clone());
    let link = AbortOnDropHandle::new(tokio::spawn(async move {
        let result = link.run(link_stop.0.clone(), link_stop.1).await;
        if result.is_err() {
            link_stop.0.cancel(); // the topology cannot be used: the worker stops
        }
        result
    }));

    run_engine(&engine, &ledger, &shutdown).await;
    watcher_stop.cancel();
    let _ = watcher.await;
    let _ = pauses.await;
    probes_stop.cancel();
    while probers.join_next().await.is_some() {}
    endpoints.log_off(&active).await;
    budgets_stop.cancel();
    let _ = budgets.await;
    reporter_stop.cancel();
    let _ = reporter.await;
    publisher_stop.cancel();
    let link = link.await;
    ledger.close().await;
    link.unwrap_or_else(|e| Err(anyhow::anyhow!("the broker link failed: {e}")))
}

/// Shows the endpoints paused in the ledger (by the breaker, or by `reaper pause` from
/// another process) on `/readyz` and in metrics, looking every second until `stop`.
async fn show_pauses(ledger: Ledger, health: Arc<Health>, stop: CancellationToken) {
    loop {
        match ledger.paused().await {
            Ok(pauses) => health.set_paused(
                pauses
                    .into_iter()
                    .filter(|p| p.scope == PauseScope::Endpoint)
                    .map(|p| (p.name, (crate::event::ms_to_time(p.since), p.reason)))
                    .collect(),
            ),
            Err(e) => tracing::warn!(error = format!("{e:#}"), "cannot read the pauses"),
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
        }
    }
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
        queues: Vec::new(),
        endpoints: Vec::new(),
        active: Arc::new(Active::standby()),
        engine_wake: Arc::clone(&engine.wake),
    }
}

fn intake(cfg: &Config, ledger: &Ledger, engine: &Engine, outbox_wake: &Arc<Notify>) -> IntakeCtx {
    IntakeCtx {
        ledger: ledger.clone(),
        queue: cfg.topology.request_queue.clone(),
        shard: None,
        prefetch: cfg.prefetch,
        backlog_limit: cfg.backlog_limit,
        worker_name: cfg.worker_name.clone(),
        em_endpoint: recorded_endpoint(cfg, System::Em),
        dcs_endpoint: recorded_endpoint(cfg, System::Dcs),
        engine_wake: Arc::clone(&engine.wake),
        outbox_wake: Arc::clone(outbox_wake),
    }
}

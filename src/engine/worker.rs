//! The worker: wires ledger, endpoint clients, intake, engine and publisher together, and
//! stops them in order — stop consuming, let in-flight steps finish within the grace period,
//! flush the outbox, log off EM, close the broker connection (design 2.10).

use super::Engine;
use crate::broker::{self, intake::IntakeCtx, publisher::Publisher};
use crate::config::Config;
use crate::dcs::DcsClient;
use crate::em::EmClient;
use crate::ledger::Ledger;
use crate::limit::Limiter;
use anyhow::Context;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// Builds the EM clients of the configuration, keyed by endpoint name.
pub fn em_clients(cfg: &Config) -> anyhow::Result<HashMap<String, Arc<EmClient>>> {
    let mut map = HashMap::new();
    if let Some(em) = &cfg.em {
        let limiter = Arc::new(Limiter::new(em.budget));
        let client =
            EmClient::new(em, limiter).with_context(|| format!("EM endpoint `{}`", em.name))?;
        map.insert(em.name.clone(), Arc::new(client));
    }
    Ok(map)
}

/// Builds the DCS clients of the configuration, keyed by endpoint name. Each has a budget
/// of its own, separate from EM's.
pub fn dcs_clients(cfg: &Config) -> anyhow::Result<HashMap<String, Arc<DcsClient>>> {
    let mut map = HashMap::new();
    if let Some(dcs) = &cfg.dcs {
        let limiter = Arc::new(Limiter::new(dcs.budget));
        let client =
            DcsClient::new(dcs, limiter).with_context(|| format!("DCS endpoint `{}`", dcs.name))?;
        map.insert(dcs.name.clone(), Arc::new(client));
    }
    Ok(map)
}

/// Runs one worker until `cancel`, then stops it gracefully. Returns an error when a part
/// fails (broker connection lost, ledger unusable); the caller may run it again, and the
/// new run resumes from the ledger.
pub async fn run(cfg: Config, cancel: CancellationToken) -> anyhow::Result<()> {
    run_with_health(cfg, cancel, Arc::default()).await
}

/// [`run`], reporting readiness to `health` (for `/readyz`).
pub async fn run_with_health(
    cfg: Config,
    cancel: CancellationToken,
    health: Arc<crate::metrics::Health>,
) -> anyhow::Result<()> {
    let cfg = Arc::new(cfg);
    let ledger = Ledger::open(&cfg.ledger).await?;
    super::resume(&ledger, &cfg).await?;
    let em = em_clients(&cfg)?;
    let dcs = dcs_clients(&cfg)?;
    let conn = broker::connect(
        cfg.amqp_url.expose(),
        &format!("reaper/{}", cfg.worker_name),
    )
    .await?;
    let setup = conn.create_channel().await?;
    broker::declare(&setup, &cfg.topology).await?;
    let _ = setup.close(200, "topology declared".into()).await;

    let outbox_wake = Arc::new(Notify::new());
    let engine = Arc::new(Engine::new(
        ledger.clone(),
        Arc::clone(&cfg),
        em.clone(),
        dcs,
        Arc::clone(&outbox_wake),
    ));
    let intake = IntakeCtx {
        ledger: ledger.clone(),
        queue: cfg.topology.request_queue.clone(),
        prefetch: cfg.prefetch,
        backlog_limit: cfg.backlog_limit,
        worker_name: cfg.worker_name.clone(),
        em_endpoint: cfg
            .em
            .as_ref()
            .map(|e| e.name.clone())
            .unwrap_or_else(|| "em".into()),
        dcs_endpoint: cfg
            .dcs
            .as_ref()
            .map(|d| d.name.clone())
            .unwrap_or_else(|| "dcs".into()),
        engine_wake: Arc::clone(&engine.wake),
        outbox_wake: Arc::clone(&outbox_wake),
    };
    let publisher = Publisher {
        ledger: ledger.clone(),
        exchange: cfg.topology.events_exchange.clone(),
        worker_name: cfg.worker_name.clone(),
        wake: outbox_wake,
    };

    // The parts stop in order: intake and engine on `stop`, the publisher after them.
    let stop = cancel.child_token();
    let publisher_stop = CancellationToken::new();
    let mut parts: JoinSet<(&'static str, anyhow::Result<()>)> = JoinSet::new();
    let (ch_in, ch_out) = (conn.create_channel().await?, conn.create_channel().await?);
    let s = stop.clone();
    parts.spawn(async move { ("intake", intake.run(ch_in, s).await) });
    let s = stop.clone();
    parts.spawn(async move { ("engine", engine.run(s).await) });
    let s = publisher_stop.clone();
    parts.spawn(async move { ("publisher", publisher.run(ch_out, s).await) });

    health.set_ready(true);
    let mut failure: Option<anyhow::Error> = None;
    let mut running = 3;
    while let Some(joined) = parts.join_next().await {
        health.set_ready(false);
        running -= 1;
        let (name, result) = joined.context("a worker part panicked")?;
        if let Err(e) = result {
            tracing::error!(part = name, error = format!("{e:#}"), "worker part failed");
            failure.get_or_insert(e.context(format!("{name} failed")));
            stop.cancel();
            publisher_stop.cancel();
        }
        if running == 1 && !publisher_stop.is_cancelled() {
            publisher_stop.cancel(); // intake and engine are done: flush and stop
        }
    }
    for (name, client) in &em {
        if let Err(e) = client.log_off().await {
            tracing::warn!(endpoint = %name, error = %e, "EM log-off failed");
        }
    }
    let _ = conn.close(200, "reaper stopping".into()).await;
    ledger.close().await;
    match failure {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

//! The operator's HTTP endpoint (`REAPER_METRICS_ADDR`): `/healthz` (the process answers),
//! `/readyz` (connected to the broker, topology declared, parts running) and `/metrics`
//! (Prometheus text, read from the ledger at scrape time). Reads only; changes nothing.

use crate::ledger::Ledger;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use std::fmt::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio_util::sync::CancellationToken;

/// Whether the worker is ready: set once it consumes, cleared when it stops or fails.
#[derive(Debug, Default)]
pub struct Health {
    ready: AtomicBool,
}

impl Health {
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }
}

#[derive(Clone)]
struct Ctx {
    ledger: Ledger,
    health: Arc<Health>,
}

/// Binds the endpoint's address (at start-up, so that a taken port stops it with a clear error).
pub async fn bind(addr: SocketAddr) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("REAPER_METRICS_ADDR: cannot listen on {addr}: {e}"))
}

/// Serves until `cancel`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    ledger: Ledger,
    health: Arc<Health>,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    tracing::info!(addr = %listener.local_addr()?, "metrics and health on /metrics, /healthz, /readyz");
    let app = axum::Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(Ctx { ledger, health });
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { cancel.cancelled().await })
        .await?;
    Ok(())
}

async fn readyz(State(ctx): State<Ctx>) -> impl IntoResponse {
    if ctx.health.is_ready() {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    }
}

async fn metrics(State(ctx): State<Ctx>) -> impl IntoResponse {
    match render(&ctx).await {
        Ok(text) => (
            StatusCode::OK,
            [("content-type", "text/plain; version=0.0.4")],
            text,
        ),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [("content-type", "text/plain")],
            format!("ledger unreadable: {e:#}\n"),
        ),
    }
}

async fn render(ctx: &Ctx) -> anyhow::Result<String> {
    let mut out = String::new();
    writeln!(
        out,
        "# HELP reaper_requests Requests in the ledger by state and outcome."
    )?;
    writeln!(out, "# TYPE reaper_requests gauge")?;
    for c in ctx.ledger.counts().await? {
        writeln!(
            out,
            "reaper_requests{{state=\"{}\",outcome=\"{}\"}} {}",
            c.state,
            c.outcome.as_deref().unwrap_or(""),
            c.count
        )?;
    }
    writeln!(out, "# HELP reaper_backlog Requests not finished yet.")?;
    writeln!(out, "# TYPE reaper_backlog gauge")?;
    writeln!(out, "reaper_backlog {}", ctx.ledger.backlog().await?)?;
    writeln!(
        out,
        "# HELP reaper_outbox_unpublished Events waiting for the broker's confirm."
    )?;
    writeln!(out, "# TYPE reaper_outbox_unpublished gauge")?;
    writeln!(
        out,
        "reaper_outbox_unpublished {}",
        ctx.ledger.unpublished_count().await?
    )?;
    writeln!(out, "# HELP reaper_ready Whether the worker is consuming.")?;
    writeln!(out, "# TYPE reaper_ready gauge")?;
    writeln!(out, "reaper_ready {}", u8::from(ctx.health.is_ready()))?;
    Ok(out)
}

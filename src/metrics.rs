//! The operator's HTTP endpoint (`REAPER_METRICS_ADDR`): `/healthz` (the process answers),
//! `/readyz` (the broker is consumed and every endpoint is up, design 1.7, with a JSON body
//! saying which part is not) and `/metrics` (Prometheus text, read from the ledger and the
//! endpoints' health at scrape time). Reads only; changes nothing.

use crate::health::{EndpointHealth, State as EndpointState};
use crate::ledger::Ledger;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use std::fmt::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio_util::sync::CancellationToken;

/// Where the worker's broker link is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum BrokerState {
    /// Not connected yet.
    #[default]
    Connecting,
    /// Connected, topology declared, consuming the request queue.
    Consuming,
    /// The connection was lost: reconnecting with back-off.
    Reconnecting,
    /// The worker stopped consuming (it is shutting down).
    Stopped,
}

impl BrokerState {
    pub fn as_str(self) -> &'static str {
        match self {
            BrokerState::Connecting => "connecting",
            BrokerState::Consuming => "consuming",
            BrokerState::Reconnecting => "reconnecting",
            BrokerState::Stopped => "stopped",
        }
    }
}

/// What `/readyz` reports: the broker link's state (set by the worker) and the endpoints'
/// health (registered by the worker at start).
#[derive(Default)]
pub struct Health {
    broker: Mutex<BrokerState>,
    endpoints: Mutex<Vec<Arc<EndpointHealth>>>,
}

impl Health {
    pub fn set_broker(&self, state: BrokerState) {
        *self.broker.lock().unwrap_or_else(|e| e.into_inner()) = state;
    }

    pub fn broker(&self) -> BrokerState {
        *self.broker.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The endpoints whose health `/readyz` reports.
    pub fn set_endpoints(&self, endpoints: Vec<Arc<EndpointHealth>>) {
        *self.endpoints.lock().unwrap_or_else(|e| e.into_inner()) = endpoints;
    }

    fn endpoints(&self) -> Vec<Arc<EndpointHealth>> {
        self.endpoints
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Ready: the broker is consumed and every endpoint is up.
    pub fn is_ready(&self) -> bool {
        self.broker() == BrokerState::Consuming && self.endpoints().iter().all(|e| !e.is_down())
    }

    /// `/readyz`'s body: `{"broker": "consuming", "endpoints": {"em": {"state": "down",
    /// "since": "…", "reason": "…"}}}`.
    pub fn report(&self) -> serde_json::Value {
        let endpoints: serde_json::Map<String, serde_json::Value> = self
            .endpoints()
            .iter()
            .map(|e| {
                let s = e.snapshot();
                let v = serde_json::json!({
                    "state": s.state.as_str(),
                    "since": s.since.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                    "reason": s.reason,
                });
                (s.endpoint, v)
            })
            .collect();
        serde_json::json!({ "broker": self.broker().as_str(), "endpoints": endpoints })
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
    let status = if ctx.health.is_ready() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(ctx.health.report()))
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
    writeln!(
        out,
        "# HELP reaper_ready Whether the worker consumes and every endpoint is up (/readyz)."
    )?;
    writeln!(out, "# TYPE reaper_ready gauge")?;
    writeln!(out, "reaper_ready {}", u8::from(ctx.health.is_ready()))?;
    render_endpoints(&mut out, &ctx.health)?;
    Ok(out)
}

fn render_endpoints(out: &mut String, health: &Health) -> std::fmt::Result {
    let snapshots: Vec<_> = health.endpoints().iter().map(|e| e.snapshot()).collect();
    writeln!(
        out,
        "# HELP reaper_endpoint_up Whether an endpoint is up (1) or down (0)."
    )?;
    writeln!(out, "# TYPE reaper_endpoint_up gauge")?;
    for s in &snapshots {
        let up = u8::from(s.state == EndpointState::Up);
        writeln!(
            out,
            "reaper_endpoint_up{{endpoint=\"{}\"}} {up}",
            s.endpoint
        )?;
    }
    writeln!(
        out,
        "# HELP reaper_endpoint_state_since_seconds When an endpoint entered its state (Unix time)."
    )?;
    writeln!(out, "# TYPE reaper_endpoint_state_since_seconds gauge")?;
    for s in &snapshots {
        writeln!(
            out,
            "reaper_endpoint_state_since_seconds{{endpoint=\"{}\",state=\"{}\"}} {}",
            s.endpoint,
            s.state.as_str(),
            s.since.timestamp()
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_needs_the_broker_consumed_and_every_endpoint_up() {
        let h = Health::default();
        let em = Arc::new(EndpointHealth::detached("em"));
        h.set_endpoints(vec![Arc::clone(&em)]);
        assert!(!h.is_ready(), "connecting");
        h.set_broker(BrokerState::Consuming);
        assert!(h.is_ready());
        em.trouble("EM answered 401: logon refused for user `svc`");
        assert!(!h.is_ready());
        let r = h.report();
        assert_eq!(r["broker"], "consuming");
        assert_eq!(r["endpoints"]["em"]["state"], "down");
        assert!(
            r["endpoints"]["em"]["reason"]
                .as_str()
                .unwrap()
                .contains("logon refused")
        );
        assert!(
            r["endpoints"]["em"]["since"]
                .as_str()
                .unwrap()
                .ends_with('Z')
        );
        let mut text = String::new();
        render_endpoints(&mut text, &h).unwrap();
        assert!(
            text.contains("reaper_endpoint_up{endpoint=\"em\"} 0"),
            "{text}"
        );
        em.probe_succeeded("logged on");
        assert!(h.is_ready());
        let mut text = String::new();
        render_endpoints(&mut text, &h).unwrap();
        assert!(
            text.contains("reaper_endpoint_up{endpoint=\"em\"} 1"),
            "{text}"
        );
        assert!(text.contains("state=\"up\""), "{text}");
    }
}

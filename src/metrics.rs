//! The operator's HTTP endpoint (`REAPER_METRICS_ADDR`): `/healthz` (the process answers),
//! `/readyz` (the broker is consumed and every endpoint is up, design 1.7, with a JSON body
//! saying which part is not) and `/metrics` (Prometheus text: what the process recorded
//! through the `metrics` facade — calls, waits, outcomes, events — and gauges read from the
//! ledger and the endpoints' health at scrape time). Reads only; changes nothing.

use crate::health::{self, EndpointHealth, State as EndpointState};
use crate::ledger::{Ledger, StateCount};
use crate::limit::{Limiter, Limits};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use chrono::{DateTime, Utc};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Where the worker's broker link is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum BrokerState {
    /// Not connected yet.
    #[default]
    Connecting,
    /// Connected, topology declared, consuming the request queue.
    Consuming,
    /// Connected, but another worker holds a request queue's lease: this one is its standby
    /// and calls none of its endpoints (design 1.8).
    Standby,
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
            BrokerState::Standby => "standby",
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
    /// Endpoints paused in the ledger (breaker or operator): name → (since, reason).
    paused: Mutex<BTreeMap<String, (DateTime<Utc>, String)>>,
    /// The endpoints' budgets, whose limits in force `/metrics` shows.
    budgets: Mutex<Vec<Arc<Limiter>>>,
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

    /// The budgets whose limits `/metrics` shows.
    pub fn set_budgets(&self, budgets: Vec<Arc<Limiter>>) {
        *self.budgets.lock().unwrap_or_else(|e| e.into_inner()) = budgets;
    }

    /// Each budget's endpoint, limits in force, and whether they are adapted (below the
    /// ceilings).
    fn budgets(&self) -> Vec<(String, Limits, bool)> {
        let budgets = self.budgets.lock().unwrap_or_else(|e| e.into_inner());
        budgets
            .iter()
            .map(|l| (l.endpoint().to_string(), l.limits(), l.adapted().is_some()))
            .collect()
    }

    /// The endpoints paused now (read from the ledger by the worker): no new DELETE goes to
    /// them, so they are not `up`.
    pub fn set_paused(&self, paused: BTreeMap<String, (DateTime<Utc>, String)>) {
        for name in self.endpoints().iter().map(|e| e.name().to_string()) {
            let value = if paused.contains_key(&name) { 1.0 } else { 0.0 };
            metrics::gauge!("reaper_endpoint_paused", "endpoint" => name).set(value);
        }
        *self.paused.lock().unwrap_or_else(|e| e.into_inner()) = paused;
    }

    fn paused(&self) -> BTreeMap<String, (DateTime<Utc>, String)> {
        self.paused
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn endpoints(&self) -> Vec<Arc<EndpointHealth>> {
        self.endpoints
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Ready: the broker is consumed and every endpoint is up (neither down nor paused).
    pub fn is_ready(&self) -> bool {
        self.broker() == BrokerState::Consuming
            && self.endpoints().iter().all(|e| !e.is_down())
            && self.paused().is_empty()
    }

    /// `/readyz`'s body: `{"broker": "consuming", "endpoints": {"em": {"state": "down",
    /// "since": "…", "reason": "…"}}}`.
    pub fn report(&self) -> serde_json::Value {
        let paused = self.paused();
        let entry = |state: &str, since: DateTime<Utc>, reason: &str| {
            serde_json::json!({
                "state": state,
                "since": since.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                "reason": reason,
            })
        };
        let endpoints: serde_json::Map<String, serde_json::Value> = self
            .endpoints()
            .iter()
            .map(|e| {
                let s = e.snapshot();
                // Down says more (nothing can be sent at all); else a pause shows.
                let v = match paused.get(&s.endpoint) {
                    Some((since, reason)) if !e.is_down() => entry("paused", *since, reason),
                    _ => entry(s.state.as_str(), s.since, &s.reason),
                };
                (s.endpoint, v)
            })
            .collect();
        serde_json::json!({ "broker": self.broker().as_str(), "endpoints": endpoints })
    }
}

/// The buckets (seconds) of the duration histograms: remote calls and budget waits.
const SECONDS_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// How long the per-state request counts (a `GROUP BY` over the whole ledger) are reused
/// between scrapes.
const REQUESTS_REFRESH: Duration = Duration::from_secs(5);

static RECORDER: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process's `metrics` recorder (once; later calls return the same handle).
/// Counters and histograms are recorded where things happen (clients, limiter, engine,
/// broker) and rendered by `/metrics`; the exporter opens no listener of its own. Without a
/// metrics address nothing is installed and recording costs nothing.
pub fn install() -> PrometheusHandle {
    RECORDER
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS);
            match builder.map(PrometheusBuilder::install_recorder) {
                Ok(Ok(handle)) => {
                    describe();
                    handle
                }
                Ok(Err(e)) | Err(e) => {
                    tracing::warn!(error = %e, "cannot install the metrics recorder: \
                        /metrics shows the ledger and the endpoints' health only");
                    PrometheusBuilder::new().build_recorder().handle()
                }
            }
        })
        .clone()
}

/// The metrics recorded where things happen, with their help text (README.md, metrics, has
/// the table).
#[rustfmt::skip]
const RECORDED: &[(&str, &str)] = &[
    ("reaper_remote_calls_total", "Calls to an endpoint by operation and status."),
    ("reaper_remote_call_duration_seconds", "How long an endpoint took to answer."),
    ("reaper_outcomes_total", "Requests finished, by endpoint and outcome."),
    ("reaper_budget_wait_seconds", "How long a call waited for its endpoint's budget."),
    ("reaper_throttle_pauses_total", "Endpoint-wide pauses after a 429/503."),
    ("reaper_rate_decreases_total", "Cuts of an endpoint's budget after 429, 503 or a timeout."),
    ("reaper_logons_total", "EM logons and IAM token requests by result."),
    ("reaper_events_published_total", "Events the broker confirmed, by routing key."),
    ("reaper_events_returned_total", "Events the broker returned (no queue bound)."),
    ("reaper_dead_lettered_total", "Request messages rejected to the dead-letter queue."),
];

fn describe() {
    for &(name, help) in RECORDED {
        if name.ends_with("_seconds") {
            metrics::describe_histogram!(name, metrics::Unit::Seconds, help);
        } else {
            metrics::describe_counter!(name, help);
        }
    }
}

#[derive(Clone)]
struct Ctx {
    ledger: Ledger,
    health: Arc<Health>,
    recorded: PrometheusHandle,
    requests: Arc<tokio::sync::Mutex<Option<CachedCounts>>>,
}

/// The per-state counts and when they were read.
type CachedCounts = (Instant, Vec<StateCount>);

/// Binds the endpoint's address (at start-up, so that a taken port stops it with a clear
/// error) and installs the metrics recorder, so that everything from now on is counted.
pub async fn bind(addr: SocketAddr) -> anyhow::Result<tokio::net::TcpListener> {
    install();
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
    let recorded = install();
    tokio::spawn(upkeep(recorded.clone(), cancel.clone()));
    let ctx = Ctx {
        ledger,
        health,
        recorded,
        requests: Arc::default(),
    };
    let app = axum::Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(ctx);
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { cancel.cancelled().await })
        .await?;
    Ok(())
}

/// Keeps the recorder's histograms drained between scrapes, until `cancel`.
async fn upkeep(handle: PrometheusHandle, cancel: CancellationToken) {
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(5)) => handle.run_upkeep(),
        }
    }
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
    match snapshot(&ctx).await {
        Ok(snapshot) => (
            StatusCode::OK,
            [("content-type", "text/plain; version=0.0.4")],
            ctx.recorded.render() + &snapshot.render(),
        ),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [("content-type", "text/plain")],
            format!("ledger unreadable: {e:#}\n"),
        ),
    }
}

/// What this worker's ledger and health say now: gauges read at scrape time (the per-state
/// counts at most every [`REQUESTS_REFRESH`]; the backlog and the outbox are counted on
/// partial indexes, which stay small).
struct Snapshot {
    requests: Vec<StateCount>,
    backlog: u64,
    unpublished: u64,
    ready: bool,
    endpoints: Vec<health::Snapshot>,
    budgets: Vec<(String, Limits, bool)>,
    /// Ledger transactions this process committed so far (SQLite's commit hook).
    commits: u64,
}

async fn snapshot(ctx: &Ctx) -> anyhow::Result<Snapshot> {
    let requests = {
        let mut cached = ctx.requests.lock().await;
        match &*cached {
            Some((at, counts)) if at.elapsed() < REQUESTS_REFRESH => counts.clone(),
            _ => {
                let counts = ctx.ledger.counts().await?;
                *cached = Some((Instant::now(), counts.clone()));
                counts
            }
        }
    };
    Ok(Snapshot {
        requests,
        backlog: ctx.ledger.backlog().await?,
        unpublished: ctx.ledger.unpublished_count().await?,
        ready: ctx.health.is_ready(),
        endpoints: ctx
            .health
            .endpoints()
            .iter()
            .map(|e| e.snapshot())
            .collect(),
        budgets: ctx.health.budgets(),
        commits: crate::ledger::commits_so_far(),
    })
}

impl Snapshot {
    /// The gauges in Prometheus text, through a recorder of their own: they belong to this
    /// worker, not to the process (tests run several workers in one process). The ledger's
    /// commit count is the process's (one worker a process outside tests).
    fn render(&self) -> String {
        use metrics::gauge;
        let recorder = PrometheusBuilder::new().build_recorder();
        metrics::with_local_recorder(&recorder, || {
            for &(name, help) in GAUGES {
                metrics::describe_gauge!(name, help);
            }
            metrics::describe_counter!(COMMITS.0, COMMITS.1);
            metrics::counter!(COMMITS.0).absolute(self.commits);
            for c in &self.requests {
                let outcome = c.outcome.clone().unwrap_or_default();
                gauge!("reaper_requests", "state" => c.state.clone(), "outcome" => outcome)
                    .set(c.count as f64);
            }
            gauge!("reaper_backlog").set(self.backlog as f64);
            gauge!("reaper_outbox_unpublished").set(self.unpublished as f64);
            gauge!("reaper_ready").set(f64::from(u8::from(self.ready)));
            for s in &self.endpoints {
                let up = u8::from(s.state == EndpointState::Up);
                gauge!("reaper_endpoint_up", "endpoint" => s.endpoint.clone()).set(f64::from(up));
                gauge!("reaper_endpoint_state_since_seconds",
                    "endpoint" => s.endpoint.clone(), "state" => s.state.as_str())
                .set(s.since.timestamp() as f64);
            }
            for (endpoint, limits, adapted) in &self.budgets {
                gauge!("reaper_endpoint_in_flight_limit", "endpoint" => endpoint.clone())
                    .set(limits.in_flight as f64);
                gauge!("reaper_endpoint_rate_limit", "endpoint" => endpoint.clone())
                    .set(limits.rate.unwrap_or(0.0));
                gauge!("reaper_endpoint_budget_adapted", "endpoint" => endpoint.clone())
                    .set(f64::from(u8::from(*adapted)));
            }
        });
        recorder.handle().render()
    }
}

/// The counter read at scrape time from the ledger's commit hook, with its help text.
const COMMITS: (&str, &str) = (
    "reaper_ledger_commits_total",
    "SQLite transactions the process committed to its ledger.",
);

/// The gauges read at scrape time, with their help text.
#[rustfmt::skip]
const GAUGES: &[(&str, &str)] = &[
    ("reaper_requests", "Requests in the ledger by state and outcome."),
    ("reaper_backlog", "Requests not finished yet."),
    ("reaper_outbox_unpublished", "Events waiting for the broker's confirm."),
    ("reaper_ready", "Whether /readyz answers 200 (1) or not (0)."),
    ("reaper_endpoint_up", "Whether an endpoint is up (1) or down (0)."),
    ("reaper_endpoint_state_since_seconds", "When an endpoint entered its state (Unix time)."),
    ("reaper_endpoint_in_flight_limit", "Calls an endpoint may have in flight now (adaptive)."),
    ("reaper_endpoint_rate_limit", "Calls per second an endpoint may get now; 0: no limit."),
    ("reaper_endpoint_budget_adapted", "Whether an endpoint's budget is below its ceilings (1)."),
];

#[cfg(test)]
mod tests;

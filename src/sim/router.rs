//! The simulator's router: `GET /_sim/stats` (not counted), IAM and DCS, and EM for
//! everything else. Only wires paths to the sides; each side answers and counts its own calls.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::state::Sim;
use super::stats::StatsRecorder;
use super::{dcs, em};

/// Every route of `sim`; EM is the fallback.
pub(crate) fn router(sim: &Sim) -> Router {
    Router::new()
        .route("/_sim/stats", get(stats_json))
        .with_state(sim.stats.clone())
        .merge(dcs::router(sim.dcs.clone()))
        .merge(em::router(sim.em.clone()))
}

async fn stats_json(State(stats): State<Arc<StatsRecorder>>) -> Response {
    let json = serde_json::to_string(&stats.snapshot()).unwrap_or_default();
    let media = HeaderValue::from_static("application/json");
    (StatusCode::OK, [(CONTENT_TYPE, media)], json).into_response()
}

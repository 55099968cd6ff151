//! The simulator's router: `GET /_sim/stats` and `GET`/`POST /_sim/faults` (not counted),
//! IAM and DCS, and EM for everything else. Only wires paths to the sides; each side answers
//! and counts its own calls.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::faults::{FaultsUpdate, LiveFaults};
use super::state::Sim;
use super::stats::StatsRecorder;
use super::{dcs, em};

/// Every route of `sim`; EM is the fallback.
pub(crate) fn router(sim: &Sim) -> Router {
    let faults = Router::new()
        .route("/_sim/faults", get(faults_json).post(change_faults))
        .with_state(sim.faults.clone());
    Router::new()
        .route("/_sim/stats", get(stats_json))
        .with_state(sim.stats.clone())
        .merge(faults)
        .merge(dcs::router(sim.dcs.clone()))
        .merge(em::router(sim.em.clone()))
}

async fn stats_json(State(stats): State<Arc<StatsRecorder>>) -> Response {
    json(StatusCode::OK, &stats.snapshot())
}

async fn faults_json(State(faults): State<Arc<LiveFaults>>) -> Response {
    json(StatusCode::OK, &faults.get())
}

/// Applies a JSON `FaultsUpdate` and answers the faults now in force; a body that is not
/// one, or a share out of `[0, 1]`, is 400 `{"error": "…"}` and changes nothing.
async fn change_faults(State(faults): State<Arc<LiveFaults>>, body: Bytes) -> Response {
    let changed = serde_json::from_slice::<FaultsUpdate>(&body)
        .map_err(|e| format!("the body is not a faults update: {e}"))
        .and_then(|update| faults.update(&update));
    match changed {
        Ok(now) => {
            tracing::info!(?now, "simulator: faults changed");
            json(StatusCode::OK, &now)
        }
        Err(error) => json(
            StatusCode::BAD_REQUEST,
            &serde_json::json!({ "error": error }),
        ),
    }
}

fn json(status: StatusCode, value: &impl serde::Serialize) -> Response {
    let body = serde_json::to_string(value).unwrap_or_default();
    let media = HeaderValue::from_static("application/json");
    (status, [(CONTENT_TYPE, media)], body).into_response()
}

//! The simulated Huawei Cloud DCS and its IAM, on the same listener as EM:
//! `POST /v3/auth/tokens` (Keystone-v3 password auth → `X-Subject-Token`), and under `/v2`
//! the background-task listing and DELETE with `X-Auth-Token`, DCS error bodies, the API
//! gateway's 429 APIG.0308, and an `X-Request-Id` on every answer. Counts into the shared
//! `SimStats`; the rules live in `world`. Never logs passwords or tokens. Must not touch
//! the EM side or the shared `Sim` state.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use serde_json::json;

use super::routes::DcsRoute;
use super::world::{DcsRefusal, DcsWorld, TaskView};
use crate::dcs::wire::{
    self, AuthRequest, BackgroundTask, DeleteBody, REQUEST_ID_HEADER, SUBJECT_TOKEN_HEADER,
    TOKEN_HEADER, TaskList,
};
use crate::sim::config::SimConfig;
use crate::sim::stats::StatsRecorder;

/// The DCS side of one simulator.
pub(crate) struct DcsSim {
    world: Mutex<DcsWorld>,
    stats: Arc<StatsRecorder>,
    username: String,
    password: String,
    domain: String,
    ttl: Duration,
    executing_for: Duration,
    latency: Duration,
}

impl DcsSim {
    /// Counts into `stats`.
    pub fn new(cfg: &SimConfig, stats: Arc<StatsRecorder>) -> Self {
        let world = DcsWorld::new(
            cfg.dcs_token_ttl,
            cfg.dcs_task_executing_for,
            cfg.dcs_rate_limit,
            cfg.dcs_static_token.clone(),
            cfg.dcs_forbidden_projects.iter().cloned(),
        );
        DcsSim {
            world: Mutex::new(world),
            stats,
            username: cfg.dcs_username.clone(),
            password: cfg.dcs_password.clone(),
            domain: cfg.dcs_domain.clone(),
            ttl: cfg.dcs_token_ttl,
            executing_for: cfg.dcs_task_executing_for,
            latency: cfg.latency,
        }
    }

    fn world(&self) -> MutexGuard<'_, DcsWorld> {
        self.world.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Lets every IAM token expire now (they answer 401 DCS.1002 from then on).
    pub fn expire_tokens(&self) {
        self.world().expire_tokens(Instant::now());
    }

    fn issue(&self, body: &[u8]) -> Response {
        let Ok(req) = serde_json::from_slice::<AuthRequest>(body) else {
            return keystone_error(400, "The request body is not a valid auth request.");
        };
        let auth = req.auth;
        let user = match auth.identity.password {
            Some(p) if auth.identity.methods.iter().any(|m| m == "password") => p.user,
            _ => return keystone_error(400, "Only the password method is supported."),
        };
        let Some(project) = auth.scope.and_then(|s| s.project).map(|p| p.id) else {
            return keystone_error(400, "A project-scoped token must name scope.project.id.");
        };
        if user.name != self.username
            || user.password != self.password
            || user.domain.name != self.domain
        {
            return keystone_error(401, "The username or password is wrong.");
        }
        let token = format!("MIIsim{}", uuid::Uuid::new_v4().simple());
        self.world()
            .register_token(token.clone(), &project, Instant::now());
        let issued = chrono::Utc::now();
        let expires =
            issued + chrono::Duration::from_std(self.ttl).unwrap_or(chrono::Duration::MAX);
        let body =
            wire::encode_token_body(issued, expires, &project, &user.name, &user.domain.name);
        let mut r = json_body(201, body);
        if let Ok(v) = HeaderValue::from_str(&token) {
            r.headers_mut().insert(SUBJECT_TOKEN_HEADER, v);
        }
        r
    }

    fn api(&self, route: &DcsRoute, method: &Method, headers: &HeaderMap, uri: &Uri) -> Response {
        let now = Instant::now();
        let (project, instance, task) = match route {
            DcsRoute::Tasks { project, instance } => (project, instance, None),
            DcsRoute::Task {
                project,
                instance,
                task,
            } => (project, instance, Some(task)),
            DcsRoute::Unknown => return refusal(404, "DCS.4001", "The URL does not exist."),
        };
        if !self.world().admit(now) {
            return throttled();
        }
        let token = headers.get(TOKEN_HEADER).and_then(|v| v.to_str().ok());
        if let Err(r) = self.world().authorize(token, project, now) {
            return dcs_refusal(r);
        }
        match (task, method.clone()) {
            (None, Method::GET) => {
                let all = self.world().list(project, instance, now);
                list_response(all, uri.query().unwrap_or(""), self.executing_for)
            }
            (Some(task), Method::DELETE) => {
                let deleted = self.world().delete(project, instance, task, now);
                match deleted {
                    Ok(()) => json_body(200, json!(DeleteBody::default()).to_string()),
                    Err(r) => dcs_refusal(r),
                }
            }
            (_, method) => refusal(
                405,
                "DCS.4002",
                &format!("Method {method} is not allowed here."),
            ),
        }
    }
}

/// DCS's and IAM's routes: `/v3/auth/tokens` and everything under `/v2`.
pub(crate) fn router(dcs: Arc<DcsSim>) -> Router {
    Router::new()
        .route("/v3/auth/tokens", any(iam))
        .route("/v2/{*rest}", any(api))
        .with_state(dcs)
}

/// `POST /v3/auth/tokens` (IAM).
async fn iam(State(dcs): State<Arc<DcsSim>>, method: Method, body: Bytes) -> Response {
    dcs.stats
        .call(format!("{method} /v3/auth/tokens"), Instant::now());
    let response = if method == Method::POST {
        let r = dcs.issue(&body);
        if r.status() == StatusCode::CREATED {
            dcs.stats.token_issue();
            tracing::debug!("simulator: IAM token issued");
        }
        r
    } else {
        keystone_error(405, "Method not allowed.")
    };
    finish(&dcs, response).await
}

/// Everything under `/v2` (DCS).
async fn api(
    State(dcs): State<Arc<DcsSim>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let route = DcsRoute::parse(uri.path());
    dcs.stats.call(route.stats_key(&method), Instant::now());
    let response = dcs.api(&route, &method, &headers, &uri);
    let authorised = !matches!(response.status().as_u16(), 401 | 429);
    if method == Method::DELETE && authorised && matches!(route, DcsRoute::Task { .. }) {
        dcs.stats.delete(uri.path());
    }
    finish(&dcs, response).await
}

/// Latency, `X-Request-Id`, and the status count: the same for every DCS and IAM answer.
async fn finish(dcs: &DcsSim, mut response: Response) -> Response {
    if !dcs.latency.is_zero() {
        tokio::time::sleep(dcs.latency).await;
    }
    let id = uuid::Uuid::new_v4().simple().to_string();
    if let Ok(v) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, v);
    }
    dcs.stats.status(response.status().as_u16());
    response
}

fn list_response(all: Vec<TaskView>, query: &str, executing_for: Duration) -> Response {
    let param = |name: &str| {
        query
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| *k == name)
            .and_then(|(_, v)| v.parse::<usize>().ok())
    };
    let total = all.len();
    let offset = param("offset").unwrap_or(0);
    let limit = param("limit").unwrap_or(usize::MAX);
    let now = chrono::Utc::now();
    let time = |d: chrono::DateTime<chrono::Utc>| d.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
    let tasks = all
        .into_iter()
        .skip(offset)
        .take(limit)
        .map(|t| {
            let created = now - chrono::Duration::from_std(t.age).unwrap_or_default();
            let updated = if t.executing {
                created
            } else {
                created + chrono::Duration::from_std(executing_for).unwrap_or_default()
            };
            BackgroundTask {
                id: t.id,
                name: t.name.to_string(),
                status: if t.executing { "EXECUTING" } else { "SUCCESS" }.into(),
                created_at: time(created),
                updated_at: time(updated),
                user_name: "reaper".into(),
                details: json!({}),
                enable_show: Some(true),
            }
        })
        .collect();
    let list = TaskList {
        task_count: total as u64,
        tasks,
    };
    // `task_count` is documented as a string: write it as one.
    let mut v = serde_json::to_value(&list).unwrap_or_default();
    v["task_count"] = json!(total.to_string());
    json_body(200, v.to_string())
}

fn json_body(code: u16, body: String) -> Response {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let media = HeaderValue::from_static("application/json");
    (status, [(CONTENT_TYPE, media)], body).into_response()
}

fn refusal(status: u16, code: &str, message: &str) -> Response {
    json_body(status, wire::encode_error(code, message))
}

fn dcs_refusal(r: DcsRefusal) -> Response {
    refusal(r.status, r.code, &r.message)
}

/// The API gateway's flow control.
fn throttled() -> Response {
    refusal(
        429,
        "APIG.0308",
        "The request is throttled: the flow control limit has been reached.",
    )
}

/// IAM's (Keystone's) error shape: `{"error":{"code":401,"message":…,"title":…}}`.
fn keystone_error(code: u16, message: &str) -> Response {
    let title = StatusCode::from_u16(code)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Error");
    let body = json!({"error": {"code": code, "message": message, "title": title}});
    json_body(code, body.to_string())
}

//! The simulated EM's HTTP front: one fallback handler that counts the call, applies the
//! capacity limit, injected faults and latency, checks the session, and dispatches to the
//! `world`. Every EM answer is built here from a `world` outcome; nothing else writes EM HTTP.
//! Must not touch the DCS side or the shared `Sim` state.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use axum::Router;
use axum::extract::State;
use axum::http::header::{HOST, SET_COOKIE, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, HeaderValue, Method, Uri};
use axum::response::{IntoResponse, Response};

use super::inventory::index;
use super::resource::{ResourceKey, ResourceKind, parse_path_guid};
use super::routes::Route;
use super::wire::{self, SESSION_HEADER};
use super::world::{Refusal, TaskSighting, TaskView, World};
use crate::em::codec::{
    Format, Link, LogonSession, Task, TaskResult, TaskState, encode_job_ref, encode_logon_session,
    encode_task,
};
use crate::sim::config::{SimConfig, chance};
use crate::sim::faults::LiveFaults;
use crate::sim::stats::StatsRecorder;

/// The EM side of one simulator: its configuration, state and counters, shared by every
/// connection.
pub(crate) struct EmSim {
    cfg: SimConfig,
    world: Mutex<World>,
    stats: Arc<StatsRecorder>,
    /// The fault ratios in force (changed at run time through `/_sim/faults`).
    faults: Arc<LiveFaults>,
    /// Requests being answered now (for `capacity`).
    inflight: AtomicU32,
    /// Where the server listens (fallback for `Href`s when a request has no `Host`).
    local: SocketAddr,
    /// `https` when serving TLS, else `http` (for `Href`s).
    scheme: &'static str,
}

/// Holds one `inflight` slot until dropped.
struct Slot<'a>(&'a AtomicU32);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl EmSim {
    /// Counts into `stats`, injects `faults`; `local` is the bound address (for `Href`s
    /// without a `Host`).
    pub fn new(
        mut cfg: SimConfig,
        stats: Arc<StatsRecorder>,
        faults: Arc<LiveFaults>,
        local: SocketAddr,
    ) -> Self {
        let inventory = cfg.inventory.take().map(|inv| index(&inv));
        let cfg_tls = cfg.tls.is_some();
        let world = World::new(cfg.session_idle_timeout, inventory);
        EmSim {
            cfg,
            world: Mutex::new(world),
            stats,
            faults,
            inflight: AtomicU32::new(0),
            local,
            scheme: if cfg_tls { "https" } else { "http" },
        }
    }

    fn world(&self) -> MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Forgets every logon session.
    pub fn expire_sessions(&self) {
        self.world().expire_all();
    }

    /// The tasks polls saw ended, oldest first.
    pub fn sightings(&self) -> Vec<TaskSighting> {
        self.world().sightings()
    }

    /// Takes an `inflight` slot, or `None` when `capacity` is reached.
    fn admit(&self) -> Option<Slot<'_>> {
        let n = self.inflight.fetch_add(1, Ordering::SeqCst) + 1;
        let slot = Slot(&self.inflight);
        match self.cfg.capacity {
            Some(cap) if n > cap => None, // dropping `slot` gives it back
            _ => Some(slot),
        }
    }

    /// An injected fault, decided before anything else is looked at.
    fn fault(&self, format: Format) -> Option<Response> {
        let faults = self.faults.get();
        if chance(faults.error_ratio) {
            return Some(match rand::random_range(0..3u8) {
                0 => wire::error(format, 500, "An unexpected error occurred on the server."),
                1 => wire::bad_gateway(),
                _ => wire::error(format, 503, "The service is unavailable."),
            });
        }
        chance(faults.throttle_ratio).then(|| wire::throttled(format, self.cfg.throttle_status))
    }

    /// Answers one request (everything but latency and counting).
    fn answer(&self, route: Route, method: &Method, path: &str, headers: &HeaderMap) -> Response {
        let negotiated = wire::negotiate(headers);
        if route.is_faultable()
            && let Some(r) = self.fault(negotiated.unwrap_or_default())
        {
            return r;
        }
        let Ok(format) = negotiated else {
            let msg = "The Accept header must name a single media type: application/xml or application/json.";
            return wire::error(Format::Xml, 400, msg);
        };
        let base = base_url(headers, self.scheme, self.local);
        match route {
            Route::Outside | Route::UnknownApi => wire::error(
                format,
                404,
                &format!("The resource [{path}] was not found."),
            ),
            Route::Logon if method == Method::POST => self.logon(format, headers, &base),
            Route::Logon => method_not_allowed(format, method),
            route => {
                let now = Instant::now();
                let token = wire::session_token(headers);
                if let Err(r) = self.world().authorize(token.as_deref(), now) {
                    return refusal(format, r);
                }
                let token = token.unwrap_or_default();
                if method == Method::DELETE {
                    self.stats.delete(path);
                } else if method == Method::GET {
                    self.stats.get(path);
                }
                self.dispatch(route, method, &token, format, &base, now)
                    .unwrap_or_else(|r| refusal(format, r))
            }
        }
    }

    fn logon(&self, format: Format, headers: &HeaderMap, base: &str) -> Response {
        let user = match wire::basic_credentials(headers) {
            Some((u, p)) if u == self.cfg.username && p == self.cfg.password => u,
            _ => {
                self.stats.logon_refused();
                let mut r = wire::error(format, 401, "Unauthorized: wrong user name or password.");
                r.headers_mut().insert(
                    WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic Realm=RestSvc"),
                );
                return r;
            }
        };
        let token = wire::new_token();
        let session_id = self.world().logon(token.clone(), Instant::now());
        self.stats.logon();
        tracing::debug!(%session_id, "simulator: logon");
        let session = LogonSession {
            user_name: user,
            session_id: session_id.to_string(),
        };
        let body = encode_logon_session(format, &session, &format!("{base}/api"));
        let mut r = wire::body(format, 201, body);
        let cookie = format!("{SESSION_HEADER}={token}; path=/; HttpOnly");
        for (name, value) in [(SESSION_HEADER, token), (SET_COOKIE.as_str(), cookie)] {
            if let Ok(v) = HeaderValue::from_str(&value) {
                r.headers_mut().insert(name, v);
            }
        }
        r
    }

    /// An authorised call on `route`.
    fn dispatch(
        &self,
        route: Route,
        method: &Method,
        token: &str,
        format: Format,
        base: &str,
        now: Instant,
    ) -> Result<Response, Refusal> {
        match (route, method.clone()) {
            (Route::LogonSession(id), Method::DELETE) => {
                let id = parse_path_guid(&id).ok_or_else(|| bad_id(&id))?;
                self.world().logoff(id)?;
                self.stats.logoff();
                tracing::debug!(session_id = %id, "simulator: logoff");
                Ok(wire::no_content())
            }
            (Route::LogonSession(id), Method::GET) => {
                let id = parse_path_guid(&id).ok_or_else(|| bad_id(&id))?;
                self.world().find_session(id)?;
                let session = LogonSession {
                    user_name: self.cfg.username.clone(),
                    session_id: id.to_string(),
                };
                let body = encode_logon_session(format, &session, &format!("{base}/api"));
                Ok(wire::body(format, 200, body))
            }
            (Route::Resource { kind, job, item }, Method::GET) => {
                let key = resource_key(kind, &job, item.as_deref())?;
                self.get_resource(key, format, base, now)
            }
            (Route::Resource { kind, job, item }, Method::DELETE) => {
                let key = resource_key(kind, &job, item.as_deref())?;
                self.delete_resource(token, key, format, base, now)
            }
            (Route::Task(id), Method::GET) => {
                let view = self.world().get_task(token, &id, now)?;
                Ok(task_response(format, 200, view, base))
            }
            (Route::Task(id), Method::DELETE) => {
                if self.world().delete_task(token, &id, now)? {
                    self.stats.task_stopped();
                }
                Ok(wire::no_content())
            }
            (_, method) => Ok(method_not_allowed(format, &method)),
        }
    }

    /// `GET` on a resource: a job answers its reference (with its `Name`), a child its entity.
    fn get_resource(
        &self,
        key: ResourceKey,
        format: Format,
        base: &str,
        now: Instant,
    ) -> Result<Response, Refusal> {
        let mut world = self.world();
        world.get_resource(&key, now)?;
        let body = match key.kind {
            ResourceKind::Job => {
                encode_job_ref(format, &key.job_ref(base, world.job_name(key.job)))
            }
            _ => key.encode_entity(format, base),
        };
        Ok(wire::body(format, 200, body))
    }

    /// `DELETE` on a resource: a task drawn with the faults in force now.
    fn delete_resource(
        &self,
        token: &str,
        key: ResourceKey,
        format: Format,
        base: &str,
        now: Instant,
    ) -> Result<Response, Refusal> {
        let faults = self.faults.get();
        let duration = self.cfg.draw_task_duration();
        let success = !chance(faults.task_failure_ratio);
        let view = self
            .world()
            .delete_resource(token, key, now, duration, success)?;
        if chance(faults.unreadable_task_ratio) {
            return Ok(unreadable_accepted());
        }
        Ok(task_response(format, 202, view, base))
    }
}

/// A 202 whose body is no Task: an HTML page from a proxy, or nothing at all.
fn unreadable_accepted() -> Response {
    let body = if rand::random::<bool>() {
        "<html><body><h1>202 Accepted</h1><p>Request forwarded.</p></body></html>"
    } else {
        ""
    };
    let mut r = (axum::http::StatusCode::ACCEPTED, body).into_response();
    r.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/html"),
    );
    r
}

fn refusal(format: Format, r: Refusal) -> Response {
    wire::error(format, r.status, &r.message)
}

fn method_not_allowed(format: Format, method: &Method) -> Response {
    wire::error(
        format,
        405,
        &format!("Method {method} is not allowed on this resource."),
    )
}

fn bad_id(id: &str) -> Refusal {
    Refusal {
        status: 400,
        message: format!("Invalid id [{id}]: a GUID is expected."),
    }
}

fn resource_key(kind: ResourceKind, job: &str, item: Option<&str>) -> Result<ResourceKey, Refusal> {
    let job = parse_path_guid(job).ok_or_else(|| bad_id(job))?;
    match item {
        None => Ok(ResourceKey::job(job)),
        Some(item) => {
            let item = parse_path_guid(item).ok_or_else(|| bad_id(item))?;
            Ok(ResourceKey::child(kind, job, item))
        }
    }
}

/// The server's root URL as the client addressed it.
fn base_url(headers: &HeaderMap, scheme: &str, local: SocketAddr) -> String {
    match headers.get(HOST).and_then(|h| h.to_str().ok()) {
        Some(host) if !host.is_empty() => format!("{scheme}://{host}"),
        _ => format!("{scheme}://{local}"),
    }
}

fn task_response(format: Format, code: u16, view: TaskView, base: &str) -> Response {
    let href = format!("{base}/api/tasks/{}", view.task_id);
    let (state, result) = match view.result {
        None => (TaskState::Running, None),
        Some((success, message)) => (TaskState::Finished, Some(TaskResult { success, message })),
    };
    let task = Task {
        task_id: view.task_id,
        state,
        operation: view.operation.to_string(),
        result,
        href: Some(href.clone()),
        links: vec![Link {
            rel: "Delete".into(),
            href,
            kind: "Task".into(),
        }],
    };
    wire::body(format, code, encode_task(format, &task))
}

/// EM's router: every path, as the fallback (merge it with the DCS and stats routes).
pub(crate) fn router(em: Arc<EmSim>) -> Router {
    Router::new().fallback(handle).with_state(em)
}

async fn handle(
    State(em): State<Arc<EmSim>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let route = Route::parse(uri.path());
    em.stats.call(route.stats_key(&method), Instant::now());
    let slot = em.admit();
    let response = match slot {
        Some(_) => em.answer(route, &method, uri.path(), &headers),
        None => wire::error(
            wire::negotiate(&headers).unwrap_or_default(),
            503,
            "The server is too busy to handle the request.",
        ),
    };
    if !em.cfg.latency.is_zero() {
        tokio::time::sleep(em.cfg.latency).await;
    }
    drop(slot);
    em.stats.status(response.status().as_u16());
    response
}

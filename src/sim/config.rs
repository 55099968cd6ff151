//! The simulator's knobs: one typed `SimConfig`, built once by the caller (CLI, demo, tests).
//! Only the fault ratios change while the server runs (their live copy is `faults`). Knows
//! nothing of HTTP or of the state it drives.

use std::time::Duration;

use super::em::inventory::Inventory;
use super::tls::SimTls;

/// How the simulated Enterprise Manager (and DCS, the `dcs_` fields) behaves. Build it with `..SimConfig::default()`.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// The only accepted user name (HTTP Basic auth on logon). Default `reaper`.
    pub username: String,
    /// The only accepted password. Default `reaper`. Never logged.
    pub password: String,
    /// A task stays `Running` for a random duration in `[min, max]`. Default 2 s.
    pub task_duration: (Duration, Duration),
    /// A logon session not used for this long is gone (401). Default 15 min.
    pub session_idle_timeout: Duration,
    /// Share of tasks that finish with `Success="false"` (the resource stays). Default 0.
    /// This and the other `_ratio` fields are the first values of `Faults`.
    pub task_failure_ratio: f64,
    /// Strict mode: only these resources exist. `None`: every well-formed GUID exists
    /// until it is deleted.
    pub inventory: Option<Inventory>,
    /// Share of API requests (not logon) answered 500/502/503 before doing anything.
    pub error_ratio: f64,
    /// Share of API requests (not logon) answered `throttle_status` with `Retry-After: 1`.
    pub throttle_ratio: f64,
    /// The status of a throttling answer: 503 (EM's documented signal, the default) or 429
    /// (what a gateway in front of EM sends).
    pub throttle_status: u16,
    /// Added to every answer.
    pub latency: Duration,
    /// More concurrent requests than this are answered 503. Default: no limit.
    pub capacity: Option<u32>,
    /// DCS: the IAM user name accepted by `POST /v3/auth/tokens`. Default `reaper`.
    pub dcs_username: String,
    /// DCS: the IAM password. Default `reaper`. Never logged.
    pub dcs_password: String,
    /// DCS: the IAM domain (account) name. Default `reaper`.
    pub dcs_domain: String,
    /// DCS: how long an IAM token is valid (then 401 DCS.1002). Default 24 h, as IAM's.
    pub dcs_token_ttl: Duration,
    /// DCS: a token accepted for every project besides IAM's (a static `REAPER_DCS_TOKEN`).
    pub dcs_static_token: Option<String>,
    /// DCS: how long a background task stays `EXECUTING` after the simulator first sees it;
    /// a DELETE meanwhile answers 400 DCS.4957. Default 0.
    pub dcs_task_executing_for: Duration,
    /// DCS: API-gateway throttling: calls per second above which `/v2` answers 429
    /// APIG.0308. Default: none.
    pub dcs_rate_limit: Option<u32>,
    /// DCS: projects whose background tasks the user may not delete (403 DCS.2003).
    pub dcs_forbidden_projects: Vec<String>,
    /// Serve HTTPS with this certificate (as a real EM on port 9398). Default: plain HTTP.
    pub tls: Option<SimTls>,
    /// Share of 202 answers to resource DELETEs sent without a readable Task (half an HTML
    /// page as a proxy would send, half an empty body); the deletion goes ahead all the same.
    pub unreadable_task_ratio: f64,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            username: "reaper".into(),
            password: "reaper".into(),
            task_duration: (Duration::from_secs(2), Duration::from_secs(2)),
            session_idle_timeout: Duration::from_secs(15 * 60),
            task_failure_ratio: 0.0,
            inventory: None,
            error_ratio: 0.0,
            throttle_ratio: 0.0,
            throttle_status: 503,
            latency: Duration::ZERO,
            capacity: None,
            dcs_username: "reaper".into(),
            dcs_password: "reaper".into(),
            dcs_domain: "reaper".into(),
            dcs_token_ttl: Duration::from_secs(24 * 3600),
            dcs_static_token: None,
            dcs_task_executing_for: Duration::ZERO,
            dcs_rate_limit: None,
            dcs_forbidden_projects: Vec::new(),
            tls: None,
            unreadable_task_ratio: 0.0,
        }
    }
}

impl SimConfig {
    /// Draws one task duration from `task_duration` (bounds may be given in either order).
    pub(crate) fn draw_task_duration(&self) -> Duration {
        let (a, b) = self.task_duration;
        let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
        if lo == hi {
            return lo;
        }
        lo + (hi - lo).mul_f64(rand::random::<f64>())
    }
}

/// True with probability `ratio` (clamped to `[0, 1]`; NaN counts as 0).
pub(crate) fn chance(ratio: f64) -> bool {
    if ratio.is_nan() || ratio <= 0.0 {
        false
    } else if ratio >= 1.0 {
        true
    } else {
        rand::random::<f64>() < ratio
    }
}

//! One typed, validated configuration, built once at start-up from `REAPER_…` environment
//! variables over an optional TOML file (`REAPER_CONFIG`, same keys in lower case without the
//! prefix, and `[[em]]` / `[[dcs]]` tables for several endpoints: `tables`, `endpoints`). A
//! bad value stops start-up with an error that names its key; so does a key reaper does not
//! read (`keys`: a typo is never ignored). `env` turns a `Config` back into the variables, to
//! start a worker as a child process configured the same way.

use crate::retry::{Backoff, Jitter};
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

mod dcs;
mod em;
mod endpoint;
mod endpoints;
mod env;
mod errors;
mod file;
mod format;
mod guard;
mod keys;
mod log;
mod secret;
mod source;
mod tables;

pub use dcs::{DcsAuth, DcsSettings};
pub use em::EmSettings;
pub use env::EnvVars;
pub use errors::ConfigError;
use errors::err;
pub use format::Format;
pub use guard::{GuardOverrides, GuardRails, job_name_pattern};
pub use keys::KNOWN_KEYS;
pub use log::LogFormat;
pub use secret::{FILE_RECHECK, Secret, SecretSource, env_secret};
use source::Source;

/// The broker topology names (design 1.1).
#[derive(Debug, Clone, PartialEq)]
pub struct Topology {
    pub request_queue: String,
    pub dead_letter_exchange: String,
    pub dead_letter_queue: String,
    pub events_exchange: String,
    /// Quorum queue (default) or classic.
    pub quorum: bool,
    /// Let the broker delete the queues after this long unused (`x-expires`): for temporary
    /// environments, tests, `demo` and `bench`; never for a deployment that must keep requests.
    pub expires: Option<Duration>,
    /// `REAPER_ROUTE_BY_ENDPOINT`: requests go through the direct exchange named like the
    /// request queue, with the endpoint's name as routing key, to one queue per endpoint
    /// (`<request queue>.<endpoint>`), and a worker consumes the queues of the endpoints it
    /// serves (design 1.8).
    pub route_by_endpoint: bool,
}

impl Topology {
    /// Topology names all derived from one prefix (tests and the demo use a random one).
    pub fn with_prefix(prefix: &str) -> Self {
        Topology {
            request_queue: format!("{prefix}.requests"),
            dead_letter_exchange: format!("{prefix}.dlx"),
            dead_letter_queue: format!("{prefix}.requests.dead"),
            events_exchange: format!("{prefix}.events"),
            quorum: true,
            expires: None,
            route_by_endpoint: false,
        }
    }
}

/// The whole configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub amqp_url: Secret,
    pub topology: Topology,
    /// Deliveries held unacked at once (they are acked as soon as the ledger has them).
    pub prefetch: u16,
    /// Unfinished requests above which intake stops consuming.
    pub backlog_limit: u64,
    pub ledger: PathBuf,
    pub worker_name: String,
    /// The Enterprise Manager endpoints (`REAPER_EM_*` describes one; `[[em]]` tables more).
    pub em: Vec<EmSettings>,
    /// The Huawei DCS endpoints (`REAPER_DCS_*` describes one; `[[dcs]]` tables more).
    pub dcs: Vec<DcsSettings>,
    pub max_attempts: u32,
    pub task_timeout: Duration,
    pub retry: Backoff,
    pub poll: Backoff,
    /// How late a task's end may be seen, as a share of its duration, once polls have
    /// learned how long its kind of task takes (`REAPER_POLL_LATENESS`; `None`: `off`,
    /// polls always follow `poll`).
    pub poll_lateness: Option<f64>,
    /// Concurrent engine steps (each waits on its endpoint's budget for the remote call).
    pub engine_concurrency: usize,
    pub already_absent_is_success: bool,
    pub publish_submitted: bool,
    pub shutdown_grace: Duration,
    /// Where `/metrics`, `/healthz` and `/readyz` are served (`None`: not served).
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// Dry run, protected objects, the delete cap and the failure breaker (design 1.6): the
    /// top-level settings, every endpoint's unless its table overrides them.
    pub guard: GuardRails,
    /// What the endpoints' `[[em]]` / `[[dcs]]` tables set of the guard rails, by endpoint
    /// name (see [`Config::guard_for`]).
    pub endpoint_guards: HashMap<String, GuardOverrides>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            amqp_url: Secret::new("amqp://guest:guest@127.0.0.1:5672/%2f"),
            topology: Topology {
                request_queue: "reaper.requests".into(),
                dead_letter_exchange: "reaper.dlx".into(),
                dead_letter_queue: "reaper.requests.dead".into(),
                events_exchange: "reaper.events".into(),
                quorum: true,
                expires: None,
                route_by_endpoint: false,
            },
            prefetch: 100,
            backlog_limit: 100_000,
            ledger: PathBuf::from("reaper.db"),
            worker_name: "reaper".into(),
            em: Vec::new(),
            dcs: Vec::new(),
            max_attempts: 8,
            task_timeout: Duration::from_secs(3600),
            retry: Backoff::RETRY,
            poll: Backoff::POLL,
            poll_lateness: Some(0.1),
            engine_concurrency: 64,
            already_absent_is_success: true,
            publish_submitted: false,
            shutdown_grace: Duration::from_secs(30),
            metrics_addr: None,
            guard: GuardRails::default(),
            endpoint_guards: HashMap::new(),
        }
    }
}

impl Config {
    /// The names of every configured endpoint, EM and DCS, sorted.
    pub fn endpoint_names(&self) -> Vec<String> {
        let em = self.em.iter().map(|e| e.name.clone());
        let mut names: Vec<String> = em.chain(self.dcs.iter().map(|d| d.name.clone())).collect();
        names.sort();
        names
    }

    /// Reads the configuration from the process environment (and `REAPER_CONFIG`).
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_vars(source::reaper_vars()?)
    }

    /// Reads the configuration from the given variables (and the TOML file they name).
    pub fn from_vars(
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let source = Source::from_vars(vars)?;
        LogFormat::from_source(&source)?; // used by `main.rs` before; checked with the rest
        Self::from_source(&source)
    }

    fn from_source(s: &Source) -> Result<Self, ConfigError> {
        let d = Config::default();
        let topology = topology(s, &d.topology)?;
        let endpoints = endpoints::endpoints(s, &topology)?;
        let max_attempts = s.positive("REAPER_MAX_ATTEMPTS", d.max_attempts)?;
        let prefetch = s.positive("REAPER_PREFETCH", d.prefetch)?;
        Ok(Config {
            amqp_url: Secret::new(s.string("REAPER_AMQP_URL", d.amqp_url.expose())),
            topology,
            prefetch,
            backlog_limit: s.parse("REAPER_BACKLOG_LIMIT", d.backlog_limit)?,
            ledger: PathBuf::from(s.string("REAPER_LEDGER", "reaper.db")),
            worker_name: s.string("REAPER_WORKER_NAME", &d.worker_name),
            em: endpoints.em,
            dcs: endpoints.dcs,
            max_attempts,
            task_timeout: s.duration("REAPER_TASK_TIMEOUT", d.task_timeout)?,
            retry: backoff(s, "RETRY", d.retry, Jitter::Full)?,
            poll: backoff(s, "POLL", d.poll, Jitter::Equal)?,
            poll_lateness: poll_lateness(s, d.poll_lateness)?,
            engine_concurrency: s
                .parse("REAPER_ENGINE_CONCURRENCY", d.engine_concurrency)?
                .max(1),
            already_absent_is_success: s.bool("REAPER_ALREADY_ABSENT_IS_SUCCESS", true)?,
            publish_submitted: s.bool("REAPER_PUBLISH_SUBMITTED", false)?,
            shutdown_grace: s.duration("REAPER_SHUTDOWN_GRACE", d.shutdown_grace)?,
            metrics_addr: metrics_addr(s)?,
            guard: guard::guard_rails(s)?,
            endpoint_guards: endpoints.guards,
        })
    }
}

/// The broker's queue and exchange names, queue type and expiry.
fn topology(s: &Source, d: &Topology) -> Result<Topology, ConfigError> {
    let request_queue = s.string("REAPER_REQUEST_QUEUE", &d.request_queue);
    let dead_letter_queue = s.string("REAPER_DEAD_LETTER_QUEUE", &format!("{request_queue}.dead"));
    let queue_type = s.string("REAPER_QUEUE_TYPE", "quorum").to_ascii_lowercase();
    let quorum = match queue_type.as_str() {
        "quorum" => true,
        "classic" => false,
        other => {
            return Err(err(
                "REAPER_QUEUE_TYPE",
                format!("`{other}` is not quorum or classic"),
            ));
        }
    };
    Ok(Topology {
        request_queue,
        dead_letter_exchange: s.string("REAPER_DEAD_LETTER_EXCHANGE", &d.dead_letter_exchange),
        dead_letter_queue,
        events_exchange: s.string("REAPER_EVENTS_EXCHANGE", &d.events_exchange),
        quorum,
        expires: match s.get("REAPER_QUEUE_EXPIRES") {
            None => None,
            Some(_) => Some(s.duration("REAPER_QUEUE_EXPIRES", Duration::ZERO)?),
        },
        route_by_endpoint: s.bool("REAPER_ROUTE_BY_ENDPOINT", d.route_by_endpoint)?,
    })
}

/// A backoff policy from `REAPER_{name}_INITIAL`, `_MAX` and `_FACTOR` over `base`.
fn backoff(s: &Source, name: &str, base: Backoff, jitter: Jitter) -> Result<Backoff, ConfigError> {
    Ok(Backoff {
        initial: s.duration(&format!("REAPER_{name}_INITIAL"), base.initial)?,
        max: s.duration(&format!("REAPER_{name}_MAX"), base.max)?,
        factor: s.parse(&format!("REAPER_{name}_FACTOR"), base.factor)?,
        jitter,
    })
}

/// `REAPER_POLL_LATENESS`: a share from 0.01 to 1 (`0.1`, or `10%`), or `off`.
fn poll_lateness(s: &Source, default: Option<f64>) -> Result<Option<f64>, ConfigError> {
    const KEY: &str = "REAPER_POLL_LATENESS";
    let Some(raw) = s.get(KEY).map(str::trim) else {
        return Ok(default);
    };
    if raw.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    let share = match raw.strip_suffix('%') {
        Some(pct) => pct.trim().parse::<f64>().map(|p| p / 100.0),
        None => raw.parse::<f64>(),
    };
    match share {
        Ok(v) if (0.01..=1.0).contains(&v) => Ok(Some(v)),
        _ => Err(err(
            KEY,
            format!("`{raw}` is not a share from 0.01 to 1 (e.g. 0.1 or 10%), or off"),
        )),
    }
}

/// Where `/metrics`, `/healthz` and `/readyz` are served: `REAPER_METRICS_ADDR`, or `off`.
fn metrics_addr(s: &Source) -> Result<Option<std::net::SocketAddr>, ConfigError> {
    match s.string("REAPER_METRICS_ADDR", "127.0.0.1:9464").as_str() {
        "off" | "none" => Ok(None),
        addr => addr.parse().map(Some).map_err(|e| {
            err(
                "REAPER_METRICS_ADDR",
                format!("`{addr}` is not host:port (or `off`): {e}"),
            )
        }),
    }
}

#[cfg(test)]
mod tests;

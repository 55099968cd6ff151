//! One typed, validated configuration, built once at start-up from `REAPER_…` environment
//! variables over an optional TOML file (`REAPER_CONFIG`, same keys in lower case without the
//! prefix). A bad value stops start-up with an error that names its key.

use crate::em::codec::Format;
use crate::http::HttpSettings;
use crate::limit::Budget;
use crate::retry::{Backoff, Jitter};
use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

mod dcs;
mod errors;
mod file;
mod log;
mod secret;

pub use dcs::{DcsAuth, DcsSettings};
pub use errors::ConfigError;
use errors::{bad_value, err, shown};
pub use log::LogFormat;
pub use secret::{FILE_RECHECK, Secret, SecretSource};

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
        }
    }
}

/// One Enterprise Manager endpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct EmSettings {
    pub name: String,
    pub url: String,
    pub username: String,
    /// The password, re-read from its file (if given as one) when EM refuses it or it changes.
    pub password: SecretSource,
    pub format: Format,
    pub http: HttpSettings,
    pub budget: Budget,
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
    pub em: Option<EmSettings>,
    pub dcs: Option<DcsSettings>,
    pub max_attempts: u32,
    pub task_timeout: Duration,
    pub retry: Backoff,
    pub poll: Backoff,
    /// Concurrent engine steps (each waits on its endpoint's budget for the remote call).
    pub engine_concurrency: usize,
    pub already_absent_is_success: bool,
    pub publish_submitted: bool,
    pub shutdown_grace: Duration,
    /// Where `/metrics`, `/healthz` and `/readyz` are served (`None`: not served).
    pub metrics_addr: Option<std::net::SocketAddr>,
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
            },
            prefetch: 100,
            backlog_limit: 100_000,
            ledger: PathBuf::from("reaper.db"),
            worker_name: "reaper".into(),
            em: None,
            dcs: None,
            max_attempts: 8,
            task_timeout: Duration::from_secs(3600),
            retry: Backoff::RETRY,
            poll: Backoff::POLL,
            engine_concurrency: 64,
            already_absent_is_success: true,
            publish_submitted: false,
            shutdown_grace: Duration::from_secs(30),
            metrics_addr: None,
        }
    }
}

/// Raw key → value pairs: the TOML file first, then the environment over it.
struct Source(HashMap<String, String>);

impl Source {
    /// The `REAPER_…` variables over the TOML file that `REAPER_CONFIG` names.
    fn from_vars(vars: impl IntoIterator<Item = (String, String)>) -> Result<Self, ConfigError> {
        let env: HashMap<String, String> = vars
            .into_iter()
            .filter(|(k, _)| k.starts_with("REAPER_"))
            .collect();
        let mut merged = match env.get("REAPER_CONFIG").filter(|p| !p.trim().is_empty()) {
            Some(path) => file::read_toml(path.trim())?,
            None => HashMap::new(),
        };
        merged.extend(env);
        Ok(Source(merged))
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.trim().is_empty())
    }
    fn string(&self, key: &str, default: &str) -> String {
        self.get(key).unwrap_or(default).trim().to_string()
    }
    fn parse<T: std::str::FromStr>(&self, key: &str, default: T) -> Result<T, ConfigError>
    where
        T::Err: fmt::Display,
    {
        match self.get(key) {
            None => Ok(default),
            Some(v) => v
                .trim()
                .parse()
                .map_err(|e| bad_value(key, v, "is not valid", e)),
        }
    }
    fn bool(&self, key: &str, default: bool) -> Result<bool, ConfigError> {
        match self.get(key).map(|v| v.trim().to_ascii_lowercase()) {
            None => Ok(default),
            Some(v) if matches!(v.as_str(), "true" | "1" | "yes" | "on") => Ok(true),
            Some(v) if matches!(v.as_str(), "false" | "0" | "no" | "off") => Ok(false),
            Some(v) => Err(err(key, format!("{} is not true or false", shown(key, &v)))),
        }
    }
    fn duration(&self, key: &str, default: Duration) -> Result<Duration, ConfigError> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => humantime::parse_duration(v.trim())
                .map_err(|e| bad_value(key, v, "is not a duration like 30s or 1h", e)),
        }
    }
    /// A secret from `KEY` or from the file named by `KEY_FILE` (not both). A file is read
    /// now (so a missing one stops start-up) and kept as its path, to be read again later.
    fn secret(&self, key: &str) -> Result<Option<SecretSource>, ConfigError> {
        let file_key = format!("{key}_FILE");
        match (self.get(key), self.get(&file_key)) {
            (Some(_), Some(_)) => Err(err(key, format!("set {key} or {file_key}, not both"))),
            (Some(v), None) => Ok(Some(SecretSource::value(Secret::new(v)))),
            (None, Some(path)) => SecretSource::file(path.trim()).map(Some).map_err(|e| {
                let e = e.kind(); // the kind only: an OS message may quote the path
                err(
                    &file_key,
                    format!("cannot read {}: {e}", shown(&file_key, path)),
                )
            }),
            (None, None) => Ok(None),
        }
    }
}

impl Config {
    /// Reads the configuration from the process environment (and `REAPER_CONFIG`).
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_vars(std::env::vars())
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
        let request_queue = s.string("REAPER_REQUEST_QUEUE", &d.topology.request_queue);
        let dead_letter_queue =
            s.string("REAPER_DEAD_LETTER_QUEUE", &format!("{request_queue}.dead"));
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
        let topology = Topology {
            request_queue,
            dead_letter_exchange: s.string(
                "REAPER_DEAD_LETTER_EXCHANGE",
                &d.topology.dead_letter_exchange,
            ),
            dead_letter_queue,
            events_exchange: s.string("REAPER_EVENTS_EXCHANGE", &d.topology.events_exchange),
            quorum,
            expires: match s.get("REAPER_QUEUE_EXPIRES") {
                None => None,
                Some(_) => Some(s.duration("REAPER_QUEUE_EXPIRES", Duration::ZERO)?),
            },
        };
        let budget = Budget {
            rate_per_sec: s.parse("REAPER_RATE_PER_SEC", 10.0)?,
            burst: s.parse("REAPER_BURST", 10)?,
            max_in_flight: s.parse("REAPER_MAX_IN_FLIGHT", 8)?,
        };
        check_budget("REAPER_", &budget)?;
        let http = HttpSettings {
            ca_file: s.get("REAPER_EM_CA_FILE").map(|p| PathBuf::from(p.trim())),
            insecure_tls: s.bool("REAPER_EM_INSECURE_TLS", false)?,
            connect_timeout: s.duration("REAPER_HTTP_CONNECT_TIMEOUT", Duration::from_secs(10))?,
            request_timeout: s.duration("REAPER_HTTP_TIMEOUT", Duration::from_secs(60))?,
        };
        check_ca_file("REAPER_EM_CA_FILE", http.ca_file.as_deref())?;
        let em = match s.get("REAPER_EM_URL") {
            None => None,
            Some(url) => {
                let url = http_url("REAPER_EM_URL", url)?;
                let username = s
                    .get("REAPER_EM_USERNAME")
                    .ok_or_else(|| err("REAPER_EM_USERNAME", "required when REAPER_EM_URL is set"))?
                    .to_string();
                let password = s.secret("REAPER_EM_PASSWORD")?.ok_or_else(|| {
                    err(
                        "REAPER_EM_PASSWORD",
                        "required (or REAPER_EM_PASSWORD_FILE) when REAPER_EM_URL is set",
                    )
                })?;
                Some(EmSettings {
                    name: s.string("REAPER_EM_NAME", "em"),
                    url,
                    username,
                    password,
                    format: s.parse("REAPER_EM_FORMAT", Format::Xml)?,
                    http: http.clone(),
                    budget,
                })
            }
        };
        let dcs = dcs::dcs_settings(s, budget)?;
        let max_attempts: u32 = s.parse("REAPER_MAX_ATTEMPTS", d.max_attempts)?;
        if max_attempts == 0 {
            return Err(err("REAPER_MAX_ATTEMPTS", "must be at least 1"));
        }
        let prefetch: u16 = s.parse("REAPER_PREFETCH", d.prefetch)?;
        if prefetch == 0 {
            return Err(err("REAPER_PREFETCH", "must be at least 1"));
        }
        let backoff =
            |prefix: &str, base: Backoff, jitter: Jitter| -> Result<Backoff, ConfigError> {
                Ok(Backoff {
                    initial: s.duration(&format!("REAPER_{prefix}_INITIAL"), base.initial)?,
                    max: s.duration(&format!("REAPER_{prefix}_MAX"), base.max)?,
                    factor: s.parse(&format!("REAPER_{prefix}_FACTOR"), base.factor)?,
                    jitter,
                })
            };
        Ok(Config {
            amqp_url: Secret::new(s.string("REAPER_AMQP_URL", d.amqp_url.expose())),
            topology,
            prefetch,
            backlog_limit: s.parse("REAPER_BACKLOG_LIMIT", d.backlog_limit)?,
            ledger: PathBuf::from(s.string("REAPER_LEDGER", "reaper.db")),
            worker_name: s.string("REAPER_WORKER_NAME", &d.worker_name),
            em,
            dcs,
            max_attempts,
            task_timeout: s.duration("REAPER_TASK_TIMEOUT", d.task_timeout)?,
            retry: backoff("RETRY", d.retry, Jitter::Full)?,
            poll: backoff("POLL", d.poll, Jitter::Equal)?,
            engine_concurrency: s
                .parse("REAPER_ENGINE_CONCURRENCY", d.engine_concurrency)?
                .max(1),
            already_absent_is_success: s.bool("REAPER_ALREADY_ABSENT_IS_SUCCESS", true)?,
            publish_submitted: s.bool("REAPER_PUBLISH_SUBMITTED", false)?,
            shutdown_grace: s.duration("REAPER_SHUTDOWN_GRACE", d.shutdown_grace)?,
            metrics_addr: match s.string("REAPER_METRICS_ADDR", "127.0.0.1:9464").as_str() {
                "off" | "none" => None,
                addr => Some(addr.parse().map_err(|e| {
                    err(
                        "REAPER_METRICS_ADDR",
                        format!("`{addr}` is not host:port (or `off`): {e}"),
                    )
                })?),
            },
        })
    }
}

/// A budget the limiter can enforce: a rate of 0 (unlimited) or between one call in 1000 s and
/// a billion a second, and at least one call in flight. `prefix` is `REAPER_` or `REAPER_DCS_`.
fn check_budget(prefix: &str, budget: &Budget) -> Result<(), ConfigError> {
    let rate = budget.rate_per_sec;
    if !(rate == 0.0 || (0.001..=1e9).contains(&rate)) {
        return Err(err(
            &format!("{prefix}RATE_PER_SEC"),
            "must be 0 (unlimited) or a number from 0.001 to 1e9",
        ));
    }
    if budget.max_in_flight == 0 {
        return Err(err(&format!("{prefix}MAX_IN_FLIGHT"), "must be at least 1"));
    }
    Ok(())
}

/// A CA file must be a readable PEM bundle with at least one certificate (what the HTTP
/// client will load), so a wrong path or file stops start-up naming `key`.
fn check_ca_file(key: &str, path: Option<&std::path::Path>) -> Result<(), ConfigError> {
    let Some(p) = path else { return Ok(()) };
    if !p.is_file() {
        return Err(err(
            key,
            format!("`{}` is not a readable file", p.display()),
        ));
    }
    let pem =
        std::fs::read(p).map_err(|e| err(key, format!("cannot read `{}`: {e}", p.display())))?;
    match reqwest::Certificate::from_pem_bundle(&pem) {
        Ok(certs) if !certs.is_empty() => Ok(()),
        Ok(_) => Err(err(
            key,
            format!("`{}` holds no PEM certificate", p.display()),
        )),
        Err(e) => Err(err(
            key,
            format!("`{}` is not a PEM certificate bundle: {e}", p.display()),
        )),
    }
}

fn http_url(key: &str, url: &str) -> Result<String, ConfigError> {
    let url = url.trim().trim_end_matches('/').to_string();
    if url.starts_with("https://") || url.starts_with("http://") {
        Ok(url)
    } else {
        Err(err(
            key,
            format!("{} is not an http(s) URL", shown(key, &url)),
        ))
    }
}

#[cfg(test)]
mod tests;

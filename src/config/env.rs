//! The way back: a [`Config`] as the `REAPER_…` variables that [`Config::from_vars`] reads
//! into the same `Config`, so that a program can start `reaper run` as a child process
//! configured exactly as it would configure a worker of its own (`reaper bench` does).
//! Secrets travel as variables (or as the path of their file) and are never shown: the
//! variables' `Debug` names the keys only.

use super::errors::{ConfigError, err};
use super::secret::SecretSource;
use super::{Config, DcsAuth, DcsSettings, EmSettings};
use crate::http::HttpSettings;
use crate::limit::Budget;
use crate::retry::{Backoff, Jitter};
use std::fmt;
use std::path::Path;
use std::time::Duration;

/// `REAPER_…` variables and their values, in the order they were set. Its `Debug` shows the
/// keys only (values may be credentials).
#[derive(Clone, Default, PartialEq)]
pub struct EnvVars(Vec<(String, String)>);

impl EnvVars {
    fn set(&mut self, key: &str, value: impl Into<String>) {
        self.0.push((key.to_string(), value.into()));
    }

    /// The value set for `key`, if any.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The pairs, for `Command::envs` or [`Config::from_vars`].
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

impl IntoIterator for EnvVars {
    type Item = (String, String);
    type IntoIter = std::vec::IntoIter<(String, String)>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl fmt::Debug for EnvVars {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|(k, _)| k))
            .finish()
    }
}

impl Config {
    /// The variables that [`Config::from_vars`] reads back into this configuration. What
    /// variables cannot say is an error naming the key it would need: more than one endpoint
    /// of a kind or per-endpoint guard rails (`[[em]]` / `[[dcs]]` tables), EM and DCS
    /// endpoints with different HTTP timeouts (one pair of keys for both), a path that is not
    /// Unicode, a backoff jitter other than the one the readers give.
    pub fn to_env(&self) -> Result<EnvVars, ConfigError> {
        let mut v = EnvVars::default();
        broker(&mut v, self)?;
        if self.em.len() > 1 || self.dcs.len() > 1 || !self.endpoint_guards.is_empty() {
            return Err(err(
                "REAPER_CONFIG",
                "several endpoints of a kind, or guard rails per endpoint, need [[em]] / [[dcs]] \
                 tables: variables describe one endpoint of each kind",
            ));
        }
        if let Some(em) = self.em.first() {
            em_vars(&mut v, em)?;
        }
        if let Some(dcs) = self.dcs.first() {
            dcs_vars(&mut v, dcs)?;
        }
        timeouts(&mut v, self)?;
        work(&mut v, self)?;
        guard(&mut v, self)?;
        Ok(v)
    }
}

/// The broker, the topology, the ledger and the worker's name.
fn broker(v: &mut EnvVars, c: &Config) -> Result<(), ConfigError> {
    let t = &c.topology;
    v.set("REAPER_AMQP_URL", c.amqp_url.expose());
    v.set("REAPER_REQUEST_QUEUE", &t.request_queue);
    v.set("REAPER_DEAD_LETTER_QUEUE", &t.dead_letter_queue);
    v.set("REAPER_DEAD_LETTER_EXCHANGE", &t.dead_letter_exchange);
    v.set("REAPER_EVENTS_EXCHANGE", &t.events_exchange);
    v.set(
        "REAPER_QUEUE_TYPE",
        if t.quorum { "quorum" } else { "classic" },
    );
    if let Some(expires) = t.expires {
        v.set("REAPER_QUEUE_EXPIRES", duration(expires));
    }
    v.set("REAPER_ROUTE_BY_ENDPOINT", t.route_by_endpoint.to_string());
    v.set("REAPER_PREFETCH", c.prefetch.to_string());
    v.set("REAPER_BACKLOG_LIMIT", c.backlog_limit.to_string());
    v.set("REAPER_LEDGER", path("REAPER_LEDGER", &c.ledger)?);
    v.set("REAPER_WORKER_NAME", &c.worker_name);
    Ok(())
}

/// The one EM endpoint.
fn em_vars(v: &mut EnvVars, em: &EmSettings) -> Result<(), ConfigError> {
    v.set("REAPER_EM_NAME", &em.name);
    v.set("REAPER_EM_URL", &em.url);
    v.set("REAPER_EM_USERNAME", &em.username);
    secret(v, "REAPER_EM_PASSWORD", &em.password)?;
    v.set(
        "REAPER_EM_FORMAT",
        match em.format {
            super::Format::Xml => "xml",
            super::Format::Json => "json",
        },
    );
    tls(v, "REAPER_EM_", &em.http)?;
    budget(v, "REAPER_", em.budget);
    Ok(())
}

/// The one DCS endpoint.
fn dcs_vars(v: &mut EnvVars, dcs: &DcsSettings) -> Result<(), ConfigError> {
    v.set("REAPER_DCS_NAME", &dcs.name);
    v.set("REAPER_DCS_URL", &dcs.url);
    match &dcs.auth {
        DcsAuth::Static(token) => secret(v, "REAPER_DCS_TOKEN", token)?,
        DcsAuth::Iam {
            iam_url,
            domain,
            username,
            password,
        } => {
            v.set("REAPER_DCS_IAM_URL", iam_url);
            v.set("REAPER_DCS_DOMAIN", domain);
            v.set("REAPER_DCS_USERNAME", username);
            secret(v, "REAPER_DCS_PASSWORD", password)?;
        }
    }
    tls(v, "REAPER_DCS_", &dcs.http)?;
    budget(v, "REAPER_DCS_", dcs.budget);
    let not_found = if dcs.not_found_is_absent {
        "already_absent"
    } else {
        "refused"
    };
    v.set("REAPER_DCS_NOT_FOUND", not_found);
    Ok(())
}

/// A credential as `KEY` (a value given once) or `KEY_FILE` (a file read again when it
/// changes).
fn secret(v: &mut EnvVars, key: &str, s: &SecretSource) -> Result<(), ConfigError> {
    match s.path() {
        Some(p) => {
            let file_key = format!("{key}_FILE");
            let p = path(&file_key, p)?;
            v.set(&file_key, p);
        }
        None => v.set(key, s.current().expose()),
    }
    Ok(())
}

/// An endpoint's TLS trust (`prefix` is `REAPER_EM_` or `REAPER_DCS_`).
fn tls(v: &mut EnvVars, prefix: &str, http: &HttpSettings) -> Result<(), ConfigError> {
    if let Some(ca) = &http.ca_file {
        let key = format!("{prefix}CA_FILE");
        let ca = path(&key, ca)?;
        v.set(&key, ca);
    }
    v.set(
        &format!("{prefix}INSECURE_TLS"),
        http.insecure_tls.to_string(),
    );
    Ok(())
}

/// The HTTP timeouts, one pair for every endpoint.
fn timeouts(v: &mut EnvVars, c: &Config) -> Result<(), ConfigError> {
    let em = c.em.iter().map(|e| &e.http);
    let mut all = em.chain(c.dcs.iter().map(|d| &d.http));
    let Some(first) = all.next() else {
        return Ok(());
    };
    let same = |h: &&HttpSettings| {
        h.connect_timeout == first.connect_timeout && h.request_timeout == first.request_timeout
    };
    if !all.all(|h| same(&h)) {
        return Err(err(
            "REAPER_HTTP_TIMEOUT",
            "the EM and DCS endpoints have different HTTP timeouts: variables set one pair",
        ));
    }
    v.set(
        "REAPER_HTTP_CONNECT_TIMEOUT",
        duration(first.connect_timeout),
    );
    v.set("REAPER_HTTP_TIMEOUT", duration(first.request_timeout));
    Ok(())
}

/// An endpoint's call budget (`prefix` is `REAPER_` or `REAPER_DCS_`).
fn budget(v: &mut EnvVars, prefix: &str, b: Budget) {
    v.set(&format!("{prefix}RATE_PER_SEC"), b.rate_per_sec.to_string());
    v.set(&format!("{prefix}BURST"), b.burst.to_string());
    v.set(
        &format!("{prefix}MAX_IN_FLIGHT"),
        b.max_in_flight.to_string(),
    );
}

/// Attempts, retries, polls, concurrency, outcomes, shutdown and the metrics address.
fn work(v: &mut EnvVars, c: &Config) -> Result<(), ConfigError> {
    v.set("REAPER_MAX_ATTEMPTS", c.max_attempts.to_string());
    v.set("REAPER_TASK_TIMEOUT", duration(c.task_timeout));
    backoff(v, "RETRY", c.retry, Jitter::Full)?;
    backoff(v, "POLL", c.poll, Jitter::Equal)?;
    let lateness = c.poll_lateness.map_or("off".into(), |l| l.to_string());
    v.set("REAPER_POLL_LATENESS", lateness);
    v.set(
        "REAPER_ENGINE_CONCURRENCY",
        c.engine_concurrency.to_string(),
    );
    v.set(
        "REAPER_ALREADY_ABSENT_IS_SUCCESS",
        c.already_absent_is_success.to_string(),
    );
    v.set("REAPER_PUBLISH_SUBMITTED", c.publish_submitted.to_string());
    v.set("REAPER_SHUTDOWN_GRACE", duration(c.shutdown_grace));
    let metrics = c.metrics_addr.map_or("off".into(), |a| a.to_string());
    v.set("REAPER_METRICS_ADDR", metrics);
    Ok(())
}

/// A backoff policy as `REAPER_{name}_INITIAL`, `_MAX`, `_FACTOR`; its jitter must be the one
/// the reader gives (`jitter`), which no variable sets.
fn backoff(v: &mut EnvVars, name: &str, b: Backoff, jitter: Jitter) -> Result<(), ConfigError> {
    let key = |part: &str| format!("REAPER_{name}_{part}");
    if b.jitter != jitter {
        return Err(err(
            &key("INITIAL"),
            format!(
                "a jitter of {:?} cannot be set by a variable ({jitter:?} is read)",
                b.jitter
            ),
        ));
    }
    v.set(&key("INITIAL"), duration(b.initial));
    v.set(&key("MAX"), duration(b.max));
    v.set(&key("FACTOR"), b.factor.to_string());
    Ok(())
}

/// The guard rails (design 1.6).
fn guard(v: &mut EnvVars, c: &Config) -> Result<(), ConfigError> {
    let g = &c.guard;
    v.set("REAPER_DRY_RUN", g.dry_run.to_string());
    if let Some(p) = &g.protect_file {
        let p = path("REAPER_PROTECT_FILE", p)?;
        v.set("REAPER_PROTECT_FILE", p);
    }
    if !g.protect_job_names.is_empty() {
        v.set("REAPER_PROTECT_JOB_NAMES", g.protect_job_names.join(","));
    }
    v.set(
        "REAPER_MAX_DELETES_PER_HOUR",
        g.max_deletes_per_hour.to_string(),
    );
    v.set("REAPER_BREAKER_RATIO", g.breaker_ratio.to_string());
    v.set("REAPER_BREAKER_MIN", g.breaker_min.to_string());
    v.set("REAPER_BREAKER_WINDOW", g.breaker_window.to_string());
    Ok(())
}

/// A duration as `humantime` writes and reads it back exactly (`1h 30m`, `250ms`).
fn duration(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

/// A path as a value: it must be Unicode, as every variable's value is.
fn path(key: &str, p: &Path) -> Result<String, ConfigError> {
    p.to_str()
        .map(str::to_string)
        .ok_or_else(|| err(key, "the path is not valid Unicode"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{GuardOverrides, Secret, Topology};
    use std::path::PathBuf;

    /// A configuration that sets something other than the default almost everywhere.
    fn busy() -> Config {
        let http = HttpSettings {
            connect_timeout: Duration::from_millis(2500),
            request_timeout: Duration::from_secs(90),
            ..HttpSettings::default()
        };
        let budget = Budget {
            rate_per_sec: 0.0,
            burst: 3,
            max_in_flight: 32,
        };
        Config {
            amqp_url: Secret::new("amqp://u:p4ss@broker:5672/%2f"),
            topology: Topology {
                quorum: false,
                expires: Some(Duration::from_secs(600)),
                ..Topology::with_prefix("reaper.bench.abc")
            },
            prefetch: 250,
            backlog_limit: 7,
            ledger: PathBuf::from("/tmp/x/ledger.db"),
            worker_name: "bench".into(),
            em: vec![EmSettings {
                name: "em".into(),
                url: "http://127.0.0.1:4321".into(),
                username: "reaper".into(),
                password: Secret::new("pw-Zq9").into(),
                format: super::super::Format::Json,
                http: http.clone(),
                budget,
            }],
            dcs: vec![DcsSettings {
                name: "dcs-1".into(),
                url: "https://dcs.example.com".into(),
                auth: DcsAuth::Iam {
                    iam_url: "https://iam.example.com".into(),
                    domain: "acct".into(),
                    username: "svc".into(),
                    password: Secret::new("iam-Zq9").into(),
                },
                http,
                budget: Budget {
                    rate_per_sec: 12.5,
                    ..budget
                },
                not_found_is_absent: false,
            }],
            max_attempts: 3,
            task_timeout: Duration::from_secs(5400),
            retry: Backoff {
                initial: Duration::from_millis(50),
                ..Backoff::RETRY
            },
            poll: Backoff {
                factor: 1.5,
                ..Backoff::POLL
            },
            poll_lateness: None,
            engine_concurrency: 9,
            already_absent_is_success: false,
            publish_submitted: true,
            shutdown_grace: Duration::from_secs(5),
            metrics_addr: Some("127.0.0.1:40001".parse().unwrap()),
            guard: crate::config::GuardRails {
                dry_run: true,
                protect_job_names: vec!["prod-*".into(), "db?".into()],
                max_deletes_per_hour: 100,
                breaker_ratio: 0.35,
                ..Default::default()
            },
            endpoint_guards: Default::default(),
        }
    }

    #[test]
    fn the_variables_read_back_into_the_same_configuration() {
        let cfg = busy();
        let vars = cfg.to_env().unwrap();
        assert_eq!(Config::from_vars(vars).unwrap(), cfg);
        let plain = Config {
            em: Vec::new(),
            dcs: Vec::new(),
            metrics_addr: None,
            ..Config::default()
        };
        assert_eq!(Config::from_vars(plain.to_env().unwrap()).unwrap(), plain);
    }

    #[test]
    fn a_secret_file_travels_as_its_path_and_no_secret_shows() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pw");
        std::fs::write(&file, "from-file\n").unwrap();
        let mut cfg = busy();
        cfg.em[0].password = SecretSource::file(&file).unwrap();
        let vars = cfg.to_env().unwrap();
        assert_eq!(vars.get("REAPER_EM_PASSWORD"), None);
        assert_eq!(
            vars.get("REAPER_EM_PASSWORD_FILE"),
            Some(file.to_str().unwrap())
        );
        assert_eq!(Config::from_vars(vars.clone()).unwrap(), cfg);
        let shown = format!("{vars:?}");
        for secret in ["p4ss", "iam-Zq9", "from-file"] {
            assert!(!shown.contains(secret), "{shown}");
        }
        assert!(shown.contains("REAPER_DCS_PASSWORD"), "{shown}");
    }

    #[test]
    fn what_variables_cannot_say_is_refused() {
        let mut two = busy();
        two.em.push(EmSettings {
            name: "em2".into(),
            ..two.em[0].clone()
        });
        assert_eq!(two.to_env().unwrap_err().key, "REAPER_CONFIG");
        let mut tables = busy();
        tables
            .endpoint_guards
            .insert("em".into(), GuardOverrides::default());
        assert_eq!(tables.to_env().unwrap_err().key, "REAPER_CONFIG");
        let mut timeouts = busy();
        timeouts.dcs[0].http.request_timeout = Duration::from_secs(1);
        assert_eq!(timeouts.to_env().unwrap_err().key, "REAPER_HTTP_TIMEOUT");
        let mut jitter = busy();
        jitter.poll.jitter = Jitter::None;
        assert_eq!(jitter.to_env().unwrap_err().key, "REAPER_POLL_INITIAL");
    }
}

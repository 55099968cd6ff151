//! The guard-rail settings (design 1.5, 1.6): dry run, protected objects, the delete cap and
//! the failure breaker, read and checked like every other setting. What they do lives in
//! `crate::guard` and the engine; this file only reads them.

use super::Config;
use super::errors::{ConfigError, err, shown};
use super::source::Source;
use std::path::PathBuf;

/// The guard rails against destructive mistakes.
#[derive(Debug, Clone, PartialEq)]
pub struct GuardRails {
    /// `REAPER_DRY_RUN`: send no DELETE; answer `planned`.
    pub dry_run: bool,
    /// `REAPER_PROTECT_FILE`: ids never to touch, one a line.
    pub protect_file: Option<PathBuf>,
    /// `REAPER_PROTECT_JOB_NAMES`: globs of EM job names never to touch, as written (trimmed).
    pub protect_job_names: Vec<String>,
    /// `REAPER_MAX_DELETES_PER_HOUR`: DELETEs per endpoint in any rolling hour; 0 = no cap.
    pub max_deletes_per_hour: u32,
    /// `REAPER_BREAKER_RATIO`: share of failures (0 to 1) that pauses an endpoint; 0 disables.
    pub breaker_ratio: f64,
    /// `REAPER_BREAKER_MIN`: finished requests needed before the breaker may trip.
    pub breaker_min: u32,
    /// `REAPER_BREAKER_WINDOW`: how many of the last finished requests the breaker counts.
    pub breaker_window: u32,
}

impl Default for GuardRails {
    fn default() -> Self {
        GuardRails {
            dry_run: false,
            protect_file: None,
            protect_job_names: Vec::new(),
            max_deletes_per_hour: 0,
            breaker_ratio: 0.2,
            breaker_min: 20,
            breaker_window: 50,
        }
    }
}

impl GuardRails {
    /// Whether the failure breaker is on (a ratio above 0).
    pub fn breaker_enabled(&self) -> bool {
        self.breaker_ratio > 0.0
    }
}

/// The guard-rail settings of one endpoint's `[[em]]` / `[[dcs]]` table (design 1.8): each
/// one it sets overrides the top-level one (`None`: not set, the top-level one applies). Its
/// protected objects add to the top-level ones: a table can never lift a global protection.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GuardOverrides {
    pub dry_run: Option<bool>,
    pub max_deletes_per_hour: Option<u32>,
    pub breaker_ratio: Option<f64>,
    pub breaker_min: Option<u32>,
    pub breaker_window: Option<u32>,
    /// Its own protect file, in force besides `REAPER_PROTECT_FILE`.
    pub protect_file: Option<PathBuf>,
    /// Its own job-name globs, in force besides `REAPER_PROTECT_JOB_NAMES`.
    pub protect_job_names: Vec<String>,
}

impl Config {
    /// The guard rails of the endpoint named `endpoint`: the top-level ones ([`Config::guard`])
    /// with what its table sets over them. Its `protect_file` and `protect_job_names` stay the
    /// top-level ones: the endpoint's own protected objects come on top of them (see
    /// `crate::guard::Protections`, which loads both).
    pub fn guard_for(&self, endpoint: &str) -> GuardRails {
        let mut g = self.guard.clone();
        if let Some(o) = self.endpoint_guards.get(endpoint) {
            g.dry_run = o.dry_run.unwrap_or(g.dry_run);
            g.max_deletes_per_hour = o.max_deletes_per_hour.unwrap_or(g.max_deletes_per_hour);
            g.breaker_ratio = o.breaker_ratio.unwrap_or(g.breaker_ratio);
            g.breaker_min = o.breaker_min.unwrap_or(g.breaker_min);
            g.breaker_window = o.breaker_window.unwrap_or(g.breaker_window);
        }
        g
    }
}

/// A table's guard-rail settings. `merged` is the table over the top-level settings, so that
/// every value is checked (the breaker with what it inherits); `own` is the table alone: what
/// it sets, and its own protected objects.
pub(super) fn overrides(merged: &Source, own: &Source) -> Result<GuardOverrides, ConfigError> {
    let rails = guard_rails(merged)?;
    let set = |key: &str| own.get(key).is_some();
    Ok(GuardOverrides {
        dry_run: set("REAPER_DRY_RUN").then_some(rails.dry_run),
        max_deletes_per_hour: set("REAPER_MAX_DELETES_PER_HOUR")
            .then_some(rails.max_deletes_per_hour),
        breaker_ratio: set("REAPER_BREAKER_RATIO").then_some(rails.breaker_ratio),
        breaker_min: set("REAPER_BREAKER_MIN").then_some(rails.breaker_min),
        breaker_window: set("REAPER_BREAKER_WINDOW").then_some(rails.breaker_window),
        protect_file: own
            .get("REAPER_PROTECT_FILE")
            .map(|p| PathBuf::from(p.trim())),
        protect_job_names: job_name_globs(own)?,
    })
}

/// The guard rails from their keys, each checked and named when wrong.
pub(super) fn guard_rails(s: &Source) -> Result<GuardRails, ConfigError> {
    let d = GuardRails::default();
    let rails = GuardRails {
        dry_run: s.bool("REAPER_DRY_RUN", d.dry_run)?,
        protect_file: s
            .get("REAPER_PROTECT_FILE")
            .map(|p| PathBuf::from(p.trim())),
        protect_job_names: job_name_globs(s)?,
        max_deletes_per_hour: s.parse("REAPER_MAX_DELETES_PER_HOUR", d.max_deletes_per_hour)?,
        breaker_ratio: s.parse("REAPER_BREAKER_RATIO", d.breaker_ratio)?,
        breaker_min: s.parse("REAPER_BREAKER_MIN", d.breaker_min)?,
        breaker_window: s.parse("REAPER_BREAKER_WINDOW", d.breaker_window)?,
    };
    check_breaker(&rails)?;
    Ok(rails)
}

/// `REAPER_PROTECT_JOB_NAMES`: comma-separated globs, trimmed; an empty entry (`prod-*,,x`
/// or a trailing comma) is refused, since it is more likely a mistake than a wish.
fn job_name_globs(s: &Source) -> Result<Vec<String>, ConfigError> {
    const KEY: &str = "REAPER_PROTECT_JOB_NAMES";
    let Some(list) = s.get(KEY) else {
        return Ok(Vec::new());
    };
    let mut globs = Vec::new();
    for (i, entry) in list.split(',').enumerate() {
        let glob = entry.trim();
        if glob.is_empty() {
            return Err(err(
                KEY,
                format!("entry {} of {} is empty", i + 1, shown(KEY, list)),
            ));
        }
        job_name_pattern(glob)?;
        globs.push(glob.to_string());
    }
    Ok(globs)
}

/// A job-name glob (`*`, `?`, `[…]`) as it is matched: case-insensitively, so the pattern is
/// compiled in lower case and matched against lower-cased names. An error names
/// `REAPER_PROTECT_JOB_NAMES` and the glob.
pub fn job_name_pattern(glob: &str) -> Result<glob::Pattern, ConfigError> {
    glob::Pattern::new(&glob.to_lowercase()).map_err(|e| {
        err(
            "REAPER_PROTECT_JOB_NAMES",
            format!("`{glob}` is not a glob: {e}"),
        )
    })
}

/// A breaker that can work: a ratio in [0, 1]; when on, a minimum of at least 1 and a window
/// that can hold the minimum.
fn check_breaker(g: &GuardRails) -> Result<(), ConfigError> {
    if !(0.0..=1.0).contains(&g.breaker_ratio) {
        return Err(err(
            "REAPER_BREAKER_RATIO",
            format!(
                "`{}` is not a share from 0 to 1 (0 disables the breaker)",
                g.breaker_ratio
            ),
        ));
    }
    if !g.breaker_enabled() {
        return Ok(());
    }
    if g.breaker_min == 0 {
        return Err(err(
            "REAPER_BREAKER_MIN",
            "must be at least 1 (set REAPER_BREAKER_RATIO=0 to disable the breaker)",
        ));
    }
    if g.breaker_window < g.breaker_min {
        return Err(err(
            "REAPER_BREAKER_WINDOW",
            format!(
                "{} is smaller than REAPER_BREAKER_MIN ({}): the breaker could never trip",
                g.breaker_window, g.breaker_min
            ),
        ));
    }
    Ok(())
}

//! The `[[em]]` and `[[dcs]]` tables of the TOML file (design 1.8), read into the variables'
//! key space so that the readers every endpoint setting goes through read them too: `url` of
//! an `[[em]]` table is `REAPER_EM_URL`, its `rate_per_sec` is `REAPER_RATE_PER_SEC`, `dry_run`
//! is `REAPER_DRY_RUN`. Which keys a table takes, and how errors name a table and its keys.
//! Turning the tables into endpoints is `endpoints`' business.

use super::errors::{ConfigError, err};
use super::keys::{KNOWN_KEYS, SUGGEST_FROM};
use crate::request::printable;
use std::collections::HashMap;
use std::fmt;

/// The two kinds of endpoint table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Em,
    Dcs,
}

/// The keys of an `[[em]]` table of its own: the `REAPER_EM_…` names without the prefix.
const EM_KEYS: &[&str] = &[
    "name",
    "url",
    "username",
    "password",
    "password_file",
    "format",
    "ca_file",
    "insecure_tls",
];

/// The keys of a `[[dcs]]` table of its own: the `REAPER_DCS_…` names without the prefix.
const DCS_KEYS: &[&str] = &[
    "name",
    "url",
    "token",
    "token_file",
    "iam_url",
    "domain",
    "username",
    "password",
    "password_file",
    "ca_file",
    "insecure_tls",
    "not_found",
];

/// The budget keys both take (`REAPER_RATE_PER_SEC`, … for EM; `REAPER_DCS_…` for DCS).
const BUDGET_KEYS: &[&str] = &["rate_per_sec", "burst", "max_in_flight"];

/// The guard-rail keys both take: the `REAPER_…` names without the prefix.
const GUARD_KEYS: &[&str] = &[
    "dry_run",
    "max_deletes_per_hour",
    "protect_file",
    "protect_job_names",
    "breaker_ratio",
    "breaker_min",
    "breaker_window",
];

impl Kind {
    /// How the file writes such a table: `[[em]]`.
    pub(super) fn table(self) -> &'static str {
        match self {
            Kind::Em => "[[em]]",
            Kind::Dcs => "[[dcs]]",
        }
    }

    /// The file's key for the tables of this kind: `em`.
    pub(super) fn key(self) -> &'static str {
        match self {
            Kind::Em => "em",
            Kind::Dcs => "dcs",
        }
    }

    /// The prefix of the variables that describe the one endpoint of this kind.
    pub(super) fn prefix(self) -> &'static str {
        match self {
            Kind::Em => "REAPER_EM_",
            Kind::Dcs => "REAPER_DCS_",
        }
    }

    fn own_keys(self) -> &'static [&'static str] {
        match self {
            Kind::Em => EM_KEYS,
            Kind::Dcs => DCS_KEYS,
        }
    }

    /// The variable a table's `key` stands for, or why such a table has no such key (naming
    /// the closest one it has).
    pub(super) fn variable(self, key: &str) -> Result<String, String> {
        let upper = key.to_ascii_uppercase();
        if self.own_keys().contains(&key) {
            return Ok(format!("{}{upper}", self.prefix()));
        }
        if BUDGET_KEYS.contains(&key) {
            let prefix = if self == Kind::Em {
                "REAPER_"
            } else {
                "REAPER_DCS_"
            };
            return Ok(format!("{prefix}{upper}"));
        }
        if GUARD_KEYS.contains(&key) {
            return Ok(format!("REAPER_{upper}"));
        }
        let all = self.own_keys().iter().chain(BUDGET_KEYS).chain(GUARD_KEYS);
        let closest = all
            .map(|known| (strsim::jaro_winkler(key, known), known))
            .filter(|(score, _)| *score >= SUGGEST_FROM)
            .max_by(|a, b| a.0.total_cmp(&b.0))
            .map(|(_, known)| format!(" (did you mean `{known}`?)"))
            .unwrap_or_default();
        Err(format!("unknown key `{}`{closest}", printable(key)))
    }
}

/// One table as the file wrote it, its keys already variables.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct RawTable {
    /// How errors name it: ``[[em]] #2 (`em-b`)`` (the name only when it is a valid one).
    pub(super) label: String,
    /// Its keys as variables (`REAPER_EM_URL`, `REAPER_RATE_PER_SEC`, …) and their values.
    pub(super) vars: HashMap<String, String>,
}

/// The endpoint tables of the TOML file.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct Tables {
    /// The file, as errors name it.
    pub(super) path: String,
    pub(super) em: Vec<RawTable>,
    pub(super) dcs: Vec<RawTable>,
}

impl Tables {
    /// The tables of `kind`, in the file's order.
    pub(super) fn of(&self, kind: Kind) -> &[RawTable] {
        match kind {
            Kind::Em => &self.em,
            Kind::Dcs => &self.dcs,
        }
    }

    /// An error about the table `label`: it names `REAPER_CONFIG`, the file and the table.
    pub(super) fn error(&self, label: &str, reason: impl fmt::Display) -> ConfigError {
        err(
            "REAPER_CONFIG",
            format!("in `{}`: {label}: {reason}", self.path),
        )
    }

    /// `e`, raised while reading the table `label`, as the file writes it: the key as the
    /// table's (`url`, not `REAPER_EM_URL`), and so every variable its reason names.
    pub(super) fn key_error(&self, label: &str, e: ConfigError) -> ConfigError {
        let reason = in_table_words(&e.reason);
        self.error(label, format!("{}: {reason}", table_name(&e.key)))
    }
}

/// The tables of `kind` under their key in the file at `path`: an array of tables.
pub(super) fn read(
    path: &str,
    kind: Kind,
    value: toml::Value,
) -> Result<Vec<RawTable>, ConfigError> {
    let not_tables = |what: &str| {
        err(
            "REAPER_CONFIG",
            format!(
                "in `{path}`: `{}` holds {what}: write each endpoint as a {} table",
                kind.key(),
                kind.table()
            ),
        )
    };
    let toml::Value::Array(items) = value else {
        return Err(not_tables("a single value or table"));
    };
    let mut tables = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let toml::Value::Table(t) = item else {
            return Err(not_tables("an array of plain values"));
        };
        tables.push(raw_table(path, kind, i + 1, t)?);
    }
    Ok(tables)
}

/// The `number`th table of `kind`: every key known and holding a plain value (or, for
/// `protect_job_names`, an array of strings), or an error listing each one that is not.
fn raw_table(
    path: &str,
    kind: Kind,
    number: usize,
    table: toml::Table,
) -> Result<RawTable, ConfigError> {
    let name = table.get("name").and_then(toml::Value::as_str);
    let label = match name.filter(|n| super::endpoint::valid_name(n).is_ok()) {
        Some(n) => format!("{} #{number} (`{n}`)", kind.table()),
        None => format!("{} #{number}", kind.table()),
    };
    let mut vars = HashMap::new();
    let mut problems = Vec::new();
    for (key, value) in table {
        let lower = key.to_ascii_lowercase();
        let var = match kind.variable(&lower) {
            Ok(var) => var,
            Err(why) => {
                problems.push(why);
                continue;
            }
        };
        match super::file::plain(value, var == "REAPER_PROTECT_JOB_NAMES") {
            Ok(v) => {
                if vars.insert(var, v).is_some() {
                    problems.push(format!("`{lower}` is given twice (keys ignore case)"));
                }
            }
            Err(what) => problems.push(format!("`{lower}` holds {what}")),
        }
    }
    problems.sort();
    if !problems.is_empty() {
        let reason = format!("in `{path}`: {label}: {}", problems.join("; "));
        return Err(err("REAPER_CONFIG", reason));
    }
    Ok(RawTable { label, vars })
}

/// `reason` as a table's error says it: each variable it names written as the table's key
/// (`REAPER_EM_PASSWORD_FILE` as `` `password_file` ``).
fn in_table_words(reason: &str) -> String {
    let mut keys: Vec<&str> = KNOWN_KEYS.to_vec();
    keys.sort_by_key(|k| std::cmp::Reverse(k.len())); // REAPER_EM_PASSWORD_FILE first
    keys.into_iter().fold(reason.to_string(), |text, key| {
        if text.contains(key) {
            text.replace(key, &format!("`{}`", table_name(key)))
        } else {
            text
        }
    })
}

/// A variable as a table writes it: `REAPER_EM_URL` as `url`, `REAPER_DRY_RUN` as `dry_run`.
fn table_name(key: &str) -> String {
    let bare = ["REAPER_EM_", "REAPER_DCS_", "REAPER_"]
        .iter()
        .find_map(|p| key.strip_prefix(p))
        .unwrap_or(key);
    bare.to_ascii_lowercase()
}

//! The raw settings — the TOML file's keys with the environment's over them — and the typed
//! readers every setting goes through, each failing with an error that names its key.

use super::errors::{ConfigError, bad_value, err, shown};
use super::keys;
use super::secret::{SecretSource, secret_from};
use super::tables::Tables;
use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

/// Raw key → value pairs: the TOML file first, then the environment over it; and the file's
/// endpoint tables.
#[derive(Default)]
pub(super) struct Source {
    pub(super) vars: HashMap<String, String>,
    pub(super) tables: Tables,
}

/// The process's `REAPER_…` variables (the prefix in any case: `reaper_dry_run` is caught as
/// a typo, not passed over). Variables that are not Unicode are passed over, except a
/// `REAPER_…` one, which is an error naming it (`std::env::vars` would panic).
pub(super) fn reaper_vars() -> Result<Vec<(String, String)>, ConfigError> {
    let mut vars = Vec::new();
    for (k, v) in std::env::vars_os() {
        let Some(k) = k.to_str().filter(|k| keys::has_prefix(k)) else {
            continue;
        };
        let v = v
            .into_string()
            .map_err(|_| err(k, "the value is not valid Unicode"))?;
        vars.push((k.to_string(), v));
    }
    Ok(vars)
}

impl Source {
    /// The `REAPER_…` variables over the TOML file that `REAPER_CONFIG` names. A key reaper
    /// does not read, in either, is an error naming it (see [`keys`]).
    pub(super) fn from_vars(
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let env: HashMap<String, String> = vars
            .into_iter()
            .filter(|(k, _)| keys::has_prefix(k))
            .collect();
        keys::check_env(env.keys().map(String::as_str))?;
        let mut source = match env.get("REAPER_CONFIG").filter(|p| !p.trim().is_empty()) {
            Some(path) => {
                let file = super::file::read_toml(path.trim())?;
                Source {
                    vars: file.vars,
                    tables: file.tables,
                }
            }
            None => Source::default(),
        };
        source.vars.extend(env);
        Ok(source)
    }

    /// The settings of one endpoint table: `vars` (the table's, in the variables' key space)
    /// over these, less the variables of its kind (`prefix`: `REAPER_EM_`), which describe
    /// the one endpoint tables replace. Without tables of its own.
    pub(super) fn under(&self, prefix: &str, vars: &HashMap<String, String>) -> Source {
        let mut merged: HashMap<String, String> = self
            .vars
            .iter()
            .filter(|(k, _)| !k.starts_with(prefix))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        merged.extend(vars.iter().map(|(k, v)| (k.clone(), v.clone())));
        Source {
            vars: merged,
            tables: Tables::default(),
        }
    }

    /// Only `vars`: what a table itself sets.
    pub(super) fn only(vars: &HashMap<String, String>) -> Source {
        Source {
            vars: vars.clone(),
            tables: Tables::default(),
        }
    }

    /// The value of `key`, unless unset or blank.
    pub(super) fn get(&self, key: &str) -> Option<&str> {
        debug_assert!(keys::is_known(key), "{key} is read but not in KNOWN_KEYS");
        self.vars
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.trim().is_empty())
    }
    /// The value of `key`, which must be set: else an error giving `reason`.
    pub(super) fn required(&self, key: &str, reason: &str) -> Result<&str, ConfigError> {
        self.get(key).ok_or_else(|| err(key, reason))
    }
    pub(super) fn string(&self, key: &str, default: &str) -> String {
        self.get(key).unwrap_or(default).trim().to_string()
    }
    pub(super) fn parse<T: std::str::FromStr>(
        &self,
        key: &str,
        default: T,
    ) -> Result<T, ConfigError>
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
    /// A count that must be at least 1.
    pub(super) fn positive<T>(&self, key: &str, default: T) -> Result<T, ConfigError>
    where
        T: std::str::FromStr + PartialEq + From<u8>,
        T::Err: fmt::Display,
    {
        let v = self.parse(key, default)?;
        if v == T::from(0) {
            return Err(err(key, "must be at least 1"));
        }
        Ok(v)
    }
    pub(super) fn bool(&self, key: &str, default: bool) -> Result<bool, ConfigError> {
        match self.get(key).map(|v| v.trim().to_ascii_lowercase()) {
            None => Ok(default),
            Some(v) if matches!(v.as_str(), "true" | "1" | "yes" | "on") => Ok(true),
            Some(v) if matches!(v.as_str(), "false" | "0" | "no" | "off") => Ok(false),
            Some(v) => Err(err(key, format!("{} is not true or false", shown(key, &v)))),
        }
    }
    pub(super) fn duration(&self, key: &str, default: Duration) -> Result<Duration, ConfigError> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => humantime::parse_duration(v.trim())
                .map_err(|e| bad_value(key, v, "is not a duration like 30s or 1h", e)),
        }
    }
    /// A secret from `KEY` or from the file named by `KEY_FILE` (see [`secret_from`]).
    pub(super) fn secret(&self, key: &str) -> Result<Option<SecretSource>, ConfigError> {
        secret_from(key, |k| self.get(k).map(str::to_string))
    }
}

//! The optional TOML file (`REAPER_CONFIG`): its `key = value` pairs, mapped into the
//! environment's key space, and its `[[em]]` / `[[dcs]]` tables (see `tables`). Its errors
//! never quote the file's lines: one may hold a password.

use super::tables::{self, Kind, Tables};
use super::{ConfigError, err};
use std::collections::HashMap;

/// What the file holds: its plain keys as variables, and its endpoint tables.
pub(super) struct FileSettings {
    pub(super) vars: HashMap<String, String>,
    pub(super) tables: Tables,
}

/// Reads a TOML file of `key = value` pairs (lower case, no `REAPER_` prefix) into the
/// environment's key space, and its `[[em]]` / `[[dcs]]` tables. A key reaper does not read
/// is an error naming it.
pub(super) fn read_toml(path: &str) -> Result<FileSettings, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| err("REAPER_CONFIG", format!("cannot read `{path}`: {e}")))?;
    // toml's own message quotes the offending line, which may hold a password: only its
    // description and the line number are shown.
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        let line = e
            .span()
            .and_then(|span| text.get(..span.start))
            .map(|before| before.matches('\n').count() + 1);
        let at = line.map(|l| format!(" at line {l}")).unwrap_or_default();
        let what = e.message().lines().next().unwrap_or("syntax error");
        err(
            "REAPER_CONFIG",
            format!("`{path}` is not valid TOML{at}: {what}"),
        )
    })?;
    let mut vars = HashMap::new();
    let mut tables = Tables {
        path: path.to_string(),
        ..Tables::default()
    };
    for (k, v) in table {
        if let Some(kind) = [Kind::Em, Kind::Dcs]
            .into_iter()
            .find(|kind| k.eq_ignore_ascii_case(kind.key()))
        {
            let read = tables::read(path, kind, v)?;
            match kind {
                Kind::Em => tables.em = read,
                Kind::Dcs => tables.dcs = read,
            }
            continue;
        }
        let key = format!("REAPER_{}", k.to_ascii_uppercase());
        let value = plain(v, key == "REAPER_PROTECT_JOB_NAMES")
            .map_err(|what| err(&key, format!("in `{path}`: `{k}` holds {what}")))?;
        vars.insert(key, value);
    }
    super::keys::check_toml(path, vars.keys().map(String::as_str))?;
    Ok(FileSettings { vars, tables })
}

/// A TOML value as a variable would hold it; where `list` (the job-name globs), also an array
/// of strings, joined by commas. Else what the value holds instead, never the value itself:
/// a table or an array may hold anything, passwords too.
pub(super) fn plain(value: toml::Value, list: bool) -> Result<String, String> {
    const PLAIN: &str = "not a plain value (string, number or boolean)";
    match value {
        toml::Value::String(s) => Ok(s),
        toml::Value::Integer(i) => Ok(i.to_string()),
        toml::Value::Float(f) => Ok(f.to_string()),
        toml::Value::Boolean(b) => Ok(b.to_string()),
        toml::Value::Array(items) if list => {
            let mut entries = Vec::with_capacity(items.len());
            for (i, item) in items.into_iter().enumerate() {
                match item {
                    toml::Value::String(s) if s.contains(',') => {
                        return Err(format!(
                            "an array whose entry {} holds a comma (a glob cannot: use `?`)",
                            i + 1
                        ));
                    }
                    toml::Value::String(s) => entries.push(s),
                    _ => return Err(format!("an array whose entry {} is not a string", i + 1)),
                }
            }
            Ok(entries.join(","))
        }
        toml::Value::Array(_) => Err(format!("an array, {PLAIN}")),
        toml::Value::Table(_) => Err(format!("a table, {PLAIN}")),
        toml::Value::Datetime(_) => Err(format!("a date-time, {PLAIN}")),
    }
}

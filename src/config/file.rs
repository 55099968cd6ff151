//! The optional TOML file (`REAPER_CONFIG`): its `key = value` pairs, mapped into the
//! environment's key space. Its errors never quote the file's lines: one may hold a password.

use super::{ConfigError, err};
use std::collections::HashMap;

/// Reads a TOML file of `key = value` pairs (lower case, no `REAPER_` prefix) into the
/// environment's key space. A key reaper does not read is an error naming it.
pub(super) fn read_toml(path: &str) -> Result<HashMap<String, String>, ConfigError> {
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
    let mut out = HashMap::new();
    for (k, v) in table {
        let key = format!("REAPER_{}", k.to_ascii_uppercase());
        let value = match v {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Float(f) => f.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            other => {
                // Never the value itself: a table or an array may hold anything, passwords too.
                return Err(err(
                    &key,
                    format!(
                        "in `{path}`: `{k}` holds {}, not a plain value (string, number or \
                         boolean)",
                        match other {
                            toml::Value::Array(_) => "an array",
                            toml::Value::Table(_) => "a table",
                            _ => "a date-time",
                        }
                    ),
                ));
            }
        };
        out.insert(key, value);
    }
    super::keys::check_toml(path, out.keys().map(String::as_str))?;
    Ok(out)
}

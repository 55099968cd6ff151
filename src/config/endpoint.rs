//! What every endpoint's settings are made of, read the same way for EM and DCS: its URL, its
//! HTTP settings (TLS trust, timeouts) and its call budget.

use super::errors::{ConfigError, err, shown};
use super::source::Source;
use crate::http::HttpSettings;
use crate::limit::Budget;
use std::path::{Path, PathBuf};

/// The longest endpoint name: a name becomes a routing key, part of a queue's name and a
/// metric label.
const NAME_MAX: usize = 64;

/// The budget an endpoint has when nothing is configured (`REAPER_RATE_PER_SEC`, …).
pub(super) const DEFAULT_BUDGET: Budget = Budget {
    rate_per_sec: 10.0,
    burst: 10,
    max_in_flight: 8,
};

/// Whether `name` can name an endpoint: 1–64 characters of `[A-Za-z0-9._-]`, not `.` or `..`
/// (what a request's `endpoint` may hold); else why not.
pub(super) fn valid_name(name: &str) -> Result<(), String> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if name.is_empty()
        || name.len() > NAME_MAX
        || name == "."
        || name == ".."
        || !name.chars().all(ok_char)
    {
        return Err(format!(
            "`{}` is not an endpoint name: 1-{NAME_MAX} characters of [A-Za-z0-9._-], not . or \
             .. (a name becomes a routing key, a queue name and a metric label)",
            crate::request::printable(name)
        ));
    }
    Ok(())
}

/// An endpoint's name from `key`, `default` when unset; checked by [`valid_name`].
pub(super) fn name(s: &Source, key: &str, default: &str) -> Result<String, ConfigError> {
    let name = s.string(key, default);
    valid_name(&name).map_err(|why| err(key, why))?;
    Ok(name)
}

/// An endpoint's base URL from `key`: http(s), without a trailing `/`.
pub(super) fn http_url(key: &str, url: &str) -> Result<String, ConfigError> {
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

/// An endpoint's TLS trust (`{prefix}CA_FILE`, `{prefix}INSECURE_TLS`, where `prefix` is
/// `REAPER_EM_` or `REAPER_DCS_`) and the timeouts all endpoints share.
pub(super) fn http_settings(s: &Source, prefix: &str) -> Result<HttpSettings, ConfigError> {
    let d = HttpSettings::default();
    let ca_key = format!("{prefix}CA_FILE");
    let http = HttpSettings {
        ca_file: s.get(&ca_key).map(|p| PathBuf::from(p.trim())),
        insecure_tls: s.bool(&format!("{prefix}INSECURE_TLS"), d.insecure_tls)?,
        connect_timeout: s.duration("REAPER_HTTP_CONNECT_TIMEOUT", d.connect_timeout)?,
        request_timeout: s.duration("REAPER_HTTP_TIMEOUT", d.request_timeout)?,
    };
    check_ca_file(&ca_key, http.ca_file.as_deref())?;
    Ok(http)
}

/// An endpoint's budget from `{prefix}RATE_PER_SEC`, `{prefix}BURST` and
/// `{prefix}MAX_IN_FLIGHT` (`prefix` is `REAPER_` or `REAPER_DCS_`), each `default` when unset.
pub(super) fn budget(s: &Source, prefix: &str, default: Budget) -> Result<Budget, ConfigError> {
    let budget = Budget {
        rate_per_sec: s.parse(&format!("{prefix}RATE_PER_SEC"), default.rate_per_sec)?,
        burst: s.parse(&format!("{prefix}BURST"), default.burst)?,
        max_in_flight: s.parse(&format!("{prefix}MAX_IN_FLIGHT"), default.max_in_flight)?,
    };
    check_budget(prefix, &budget)?;
    Ok(budget)
}

/// A budget the limiter can enforce: a rate of 0 (unlimited) or between one call in 1000 s and
/// a billion a second, and at least one call in flight.
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
fn check_ca_file(key: &str, path: Option<&Path>) -> Result<(), ConfigError> {
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

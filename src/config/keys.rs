//! Every `REAPER_…` setting the program reads, in one list, and the check that refuses any
//! other (issue 10 item 7): a misspelt key must stop start-up, never be ignored, so that a
//! typo in `REAPER_DRY_RUN` can never mean a real run. A key read anywhere (the configuration,
//! the simulator's credentials, a clap `env =` attribute) belongs in [`KNOWN_KEYS`]; a unit
//! test scans the sources for `"REAPER_…"` literals and the readers assert it in debug builds.

use super::errors::{ConfigError, err};

/// Every `REAPER_…` variable reaper reads. `RUST_LOG` is not one of them (not `REAPER_`).
pub const KNOWN_KEYS: &[&str] = &[
    "REAPER_CONFIG",
    // Broker and ledger.
    "REAPER_AMQP_URL",
    "REAPER_REQUEST_QUEUE",
    "REAPER_EVENTS_EXCHANGE",
    "REAPER_DEAD_LETTER_EXCHANGE",
    "REAPER_DEAD_LETTER_QUEUE",
    "REAPER_QUEUE_TYPE",
    "REAPER_QUEUE_EXPIRES",
    "REAPER_ROUTE_BY_ENDPOINT",
    "REAPER_PREFETCH",
    "REAPER_BACKLOG_LIMIT",
    "REAPER_LEDGER",
    "REAPER_WORKER_NAME",
    // Enterprise Manager.
    "REAPER_EM_URL",
    "REAPER_EM_NAME",
    "REAPER_EM_USERNAME",
    "REAPER_EM_PASSWORD",
    "REAPER_EM_PASSWORD_FILE",
    "REAPER_EM_FORMAT",
    "REAPER_EM_CA_FILE",
    "REAPER_EM_INSECURE_TLS",
    // Huawei Cloud DCS and IAM.
    "REAPER_DCS_URL",
    "REAPER_DCS_NAME",
    "REAPER_DCS_TOKEN",
    "REAPER_DCS_TOKEN_FILE",
    "REAPER_DCS_IAM_URL",
    "REAPER_DCS_DOMAIN",
    "REAPER_DCS_USERNAME",
    "REAPER_DCS_PASSWORD",
    "REAPER_DCS_PASSWORD_FILE",
    "REAPER_DCS_CA_FILE",
    "REAPER_DCS_INSECURE_TLS",
    "REAPER_DCS_RATE_PER_SEC",
    "REAPER_DCS_BURST",
    "REAPER_DCS_MAX_IN_FLIGHT",
    "REAPER_DCS_NOT_FOUND",
    // HTTP, budget, retries and polls.
    "REAPER_HTTP_CONNECT_TIMEOUT",
    "REAPER_HTTP_TIMEOUT",
    "REAPER_RATE_PER_SEC",
    "REAPER_BURST",
    "REAPER_MAX_IN_FLIGHT",
    "REAPER_MAX_ATTEMPTS",
    "REAPER_TASK_TIMEOUT",
    "REAPER_RETRY_INITIAL",
    "REAPER_RETRY_MAX",
    "REAPER_RETRY_FACTOR",
    "REAPER_POLL_INITIAL",
    "REAPER_POLL_MAX",
    "REAPER_POLL_FACTOR",
    "REAPER_POLL_LATENESS",
    "REAPER_ENGINE_CONCURRENCY",
    "REAPER_ALREADY_ABSENT_IS_SUCCESS",
    "REAPER_PUBLISH_SUBMITTED",
    "REAPER_SHUTDOWN_GRACE",
    // Operations.
    "REAPER_METRICS_ADDR",
    "REAPER_LOG_FORMAT",
    // Guard rails (design 1.6).
    "REAPER_DRY_RUN",
    "REAPER_PROTECT_FILE",
    "REAPER_PROTECT_JOB_NAMES",
    "REAPER_MAX_DELETES_PER_HOUR",
    "REAPER_BREAKER_RATIO",
    "REAPER_BREAKER_MIN",
    "REAPER_BREAKER_WINDOW",
    // `reaper simulate --listen` (a clap `env =` attribute).
    "REAPER_SIM_LISTEN",
];

/// Keys read from the environment only: in the TOML file they would be ignored, so they are
/// refused there.
const ENV_ONLY: &[&str] = &["REAPER_CONFIG", "REAPER_SIM_LISTEN"];

/// How alike (Jaro-Winkler, 0 to 1) a known key must be to be offered as "did you mean".
pub(super) const SUGGEST_FROM: f64 = 0.8;

/// Whether `key` starts with `REAPER_` in any case: a variable meant for reaper.
pub(super) fn has_prefix(key: &str) -> bool {
    key.get(..7)
        .is_some_and(|p| p.eq_ignore_ascii_case("REAPER_"))
}

/// Whether reaper reads `key`.
pub(super) fn is_known(key: &str) -> bool {
    KNOWN_KEYS.contains(&key)
}

/// Refuses the environment's `REAPER_…` variables (the prefix in any case) that reaper does
/// not read, naming the first and listing the others, each with the closest known key.
pub(super) fn check_env<'a>(keys: impl IntoIterator<Item = &'a str>) -> Result<(), ConfigError> {
    let mut unknown: Vec<&str> = keys.into_iter().filter(|k| !is_known(k)).collect();
    unknown.sort_unstable();
    let Some((first, rest)) = unknown.split_first() else {
        return Ok(());
    };
    let mut reason = format!("unknown setting{}", hint(first, str::to_string));
    for other in rest {
        reason.push_str(&format!(
            "; also unknown: {other}{}",
            hint(other, str::to_string)
        ));
    }
    reason.push_str(" (a key reaper does not read is refused, never ignored)");
    Err(err(first, reason))
}

/// Refuses the keys of the TOML file at `path` (already in the environment's form,
/// `REAPER_…`) that reaper does not read or reads from the environment only. The message
/// names them as the file writes them: lower case, without `REAPER_`.
pub(super) fn check_toml<'a>(
    path: &str,
    keys: impl IntoIterator<Item = &'a str>,
) -> Result<(), ConfigError> {
    let mut problems: Vec<String> = Vec::new();
    for key in keys {
        let name = toml_name(key);
        if ENV_ONLY.contains(&key) {
            problems.push(format!(
                "`{name}` is read from the environment only ({key})"
            ));
        } else if !is_known(key) {
            let show = |k: &str| format!("`{}`", toml_name(k));
            problems.push(format!("unknown setting `{name}`{}", hint(key, show)));
        }
    }
    problems.sort();
    if problems.is_empty() {
        return Ok(());
    }
    Err(err(
        "REAPER_CONFIG",
        format!("in `{path}`: {}", problems.join("; ")),
    ))
}

/// ` (did you mean KEY?)` for the known key closest to `key`, written by `show`; empty when
/// none is close.
fn hint(key: &str, show: impl Fn(&str) -> String) -> String {
    match closest(key) {
        Some(known) => format!(" (did you mean {}?)", show(known)),
        None => String::new(),
    }
}

/// The known key most like `key`, if any is alike enough: compared in upper case and without
/// the `REAPER_` prefix that all share (so `reaper_dry_run` finds `REAPER_DRY_RUN`).
fn closest(key: &str) -> Option<&'static str> {
    let upper = key.to_ascii_uppercase();
    let key = bare(&upper);
    KNOWN_KEYS
        .iter()
        .map(|known| (strsim::jaro_winkler(key, bare(known)), *known))
        .filter(|(score, _)| *score >= SUGGEST_FROM)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, known)| known)
}

/// A key without its `REAPER_` prefix.
fn bare(key: &str) -> &str {
    key.strip_prefix("REAPER_").unwrap_or(key)
}

/// `REAPER_DRY_RUN` as a TOML file writes it: `dry_run`.
fn toml_name(key: &str) -> String {
    bare(key).to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_misspelt_key_names_the_closest_known_one() {
        let e = check_env(["REAPER_DRY_RUNN"]).unwrap_err();
        assert_eq!(e.key, "REAPER_DRY_RUNN");
        assert!(
            e.reason
                .starts_with("unknown setting (did you mean REAPER_DRY_RUN?)"),
            "{e}"
        );
        for (typo, meant) in [
            ("reaper_dry_run", "REAPER_DRY_RUN"),
            ("REAPER_PROTECT_JOBNAMES", "REAPER_PROTECT_JOB_NAMES"),
            ("REAPER_EM_PASSWD", "REAPER_EM_PASSWORD"),
            ("REAPER_MAX_DELETE_PER_HOUR", "REAPER_MAX_DELETES_PER_HOUR"),
            ("REAPER_BREAKER_RATE", "REAPER_BREAKER_RATIO"),
        ] {
            assert_eq!(closest(typo), Some(meant), "{typo}");
        }
        assert_eq!(closest("REAPER_ZZZZZZZZZZZZZZZZZZZZ"), None);
    }

    #[test]
    fn every_unknown_key_is_listed_and_known_ones_pass() {
        assert!(check_env(KNOWN_KEYS.iter().copied()).is_ok());
        let e = check_env(["REAPER_LEDGER", "REAPER_LEDGR", "REAPER_BURTS"]).unwrap_err();
        assert_eq!(e.key, "REAPER_BURTS", "the first in order");
        assert!(e.reason.contains("did you mean REAPER_BURST?"), "{e}");
        assert!(
            e.reason
                .contains("also unknown: REAPER_LEDGR (did you mean REAPER_LEDGER?)"),
            "{e}"
        );
    }

    #[test]
    fn a_toml_key_is_named_as_the_file_writes_it() {
        let e = check_toml("r.toml", ["REAPER_DRY_RUNN", "REAPER_LEDGER"]).unwrap_err();
        assert_eq!(e.key, "REAPER_CONFIG");
        assert!(
            e.reason
                .contains("in `r.toml`: unknown setting `dry_runn` (did you mean `dry_run`?)"),
            "{e}"
        );
        let e = check_toml("r.toml", ["REAPER_CONFIG"]).unwrap_err();
        assert!(
            e.reason
                .contains("`config` is read from the environment only"),
            "{e}"
        );
        assert!(check_toml("r.toml", ["REAPER_DRY_RUN", "REAPER_PROTECT_FILE"]).is_ok());
    }

    /// Every `"REAPER_…"` string literal in the program's own code (not its tests) names a
    /// known key, so a key read anywhere cannot be refused at start-up.
    #[test]
    fn every_key_the_sources_name_is_known() {
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut seen = 0;
        for text in rust_sources(&src) {
            let code = text.split("#[cfg(test)]").next().unwrap_or_default();
            for literal in code.split("\"REAPER_").skip(1) {
                let name: String = literal
                    .chars()
                    .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                    .collect();
                let closed = literal[name.len()..].starts_with('"');
                if closed && !name.is_empty() && !name.ends_with('_') {
                    let key = format!("REAPER_{name}");
                    assert!(is_known(&key), "{key} is read but not in KNOWN_KEYS");
                    seen += 1;
                }
            }
        }
        assert!(seen > 40, "the scan found the keys ({seen})");
    }

    /// The text of every `.rs` file under `dir` but the `tests.rs` ones.
    fn rust_sources(dir: &std::path::Path) -> Vec<String> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                out.extend(rust_sources(&path));
            } else if path.extension().is_some_and(|e| e == "rs")
                && path.file_name().is_some_and(|n| n != "tests.rs")
            {
                out.push(std::fs::read_to_string(&path).unwrap());
            }
        }
        out
    }
}

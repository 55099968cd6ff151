//! `REAPER_LOG_FORMAT` (design 1.5): how the logs are written. Read before the rest of the
//! configuration, since logging starts first; checked with it too.

use super::Source;
use super::errors::{ConfigError, err, shown};

/// How log lines are written to stderr.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines (the default).
    #[default]
    Text,
    /// One JSON object a line.
    Json,
}

impl LogFormat {
    /// From `REAPER_LOG_FORMAT` in the process environment (or in `REAPER_CONFIG`).
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_source(&Source::from_vars(super::source::reaper_vars()?)?)
    }

    pub(super) fn from_source(s: &Source) -> Result<Self, ConfigError> {
        const KEY: &str = "REAPER_LOG_FORMAT";
        match s.string(KEY, "text").to_ascii_lowercase().as_str() {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(err(
                KEY,
                format!("{} is not text or json", shown(KEY, other)),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn format(value: &str) -> Result<LogFormat, ConfigError> {
        let vars = [("REAPER_LOG_FORMAT".to_string(), value.to_string())];
        LogFormat::from_source(&Source::from_vars(vars)?)
    }

    #[test]
    fn text_is_the_default_json_is_asked_for_and_anything_else_names_the_key() {
        assert_eq!(format("").unwrap(), LogFormat::Text);
        assert_eq!(format("text").unwrap(), LogFormat::Text);
        assert_eq!(format(" JSON ").unwrap(), LogFormat::Json);
        let e = format("yaml").unwrap_err();
        assert_eq!(e.key, "REAPER_LOG_FORMAT");
        assert!(e.to_string().contains("`yaml` is not text or json"), "{e}");
        let vars = [("REAPER_LOG_FORMAT".to_string(), "xml".to_string())];
        let e = Config::from_vars(vars).unwrap_err();
        assert_eq!(
            e.key, "REAPER_LOG_FORMAT",
            "checked with the configuration too"
        );
    }
}

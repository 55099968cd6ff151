//! The Veeam Enterprise Manager endpoint's settings: its URL, logon credentials, body format,
//! TLS trust and call budget.

use super::endpoint::{http_settings, http_url, name};
use super::errors::{ConfigError, err};
use super::format::Format;
use super::secret::SecretSource;
use super::source::Source;
use crate::http::HttpSettings;
use crate::limit::Budget;

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

/// The EM endpoint, when `REAPER_EM_URL` is set, with the given budget. Its HTTP settings are
/// checked even when it is not (a bad `REAPER_EM_INSECURE_TLS` is an error all the same).
pub(super) fn em_settings(s: &Source, budget: Budget) -> Result<Option<EmSettings>, ConfigError> {
    let http = http_settings(s, "REAPER_EM_")?;
    let Some(url) = s.get("REAPER_EM_URL") else {
        return Ok(None);
    };
    let url = http_url("REAPER_EM_URL", url)?;
    let username = s
        .required("REAPER_EM_USERNAME", "required when REAPER_EM_URL is set")?
        .to_string();
    let password = s.secret("REAPER_EM_PASSWORD")?.ok_or_else(|| {
        err(
            "REAPER_EM_PASSWORD",
            "required (or REAPER_EM_PASSWORD_FILE) when REAPER_EM_URL is set",
        )
    })?;
    Ok(Some(EmSettings {
        name: name(s, "REAPER_EM_NAME", "em")?,
        url,
        username,
        password,
        format: s.parse("REAPER_EM_FORMAT", Format::Xml)?,
        http,
        budget,
    }))
}

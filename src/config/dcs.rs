//! The Huawei Cloud DCS endpoint's settings: its URL, how it authenticates (a static token or
//! IAM password credentials), TLS trust and its own call budget.

use super::endpoint::{budget, http_settings, http_url, name};
use super::errors::{ConfigError, err};
use super::secret::SecretSource;
use super::source::Source;
use crate::http::HttpSettings;
use crate::limit::Budget;

/// How reaper authenticates to Huawei Cloud DCS.
#[derive(Debug, Clone, PartialEq)]
pub enum DcsAuth {
    /// A fixed IAM token (`REAPER_DCS_TOKEN` / `REAPER_DCS_TOKEN_FILE`), sent as is; a file
    /// is read again when DCS refuses the token and when it changes.
    Static(SecretSource),
    /// Password credentials exchanged at IAM (`POST {iam_url}/v3/auth/tokens`) for
    /// project-scoped tokens, cached and refreshed before expiry.
    Iam {
        iam_url: String,
        domain: String,
        username: String,
        /// Re-read from its file (if given as one) when IAM refuses it or it changes.
        password: SecretSource,
    },
}

/// One Huawei Cloud DCS endpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct DcsSettings {
    pub name: String,
    pub url: String,
    pub auth: DcsAuth,
    pub http: HttpSettings,
    pub budget: Budget,
    /// Whether a 404 on delete means `already_absent` (default) or `refused`.
    pub not_found_is_absent: bool,
}

/// The DCS endpoint, when `REAPER_DCS_URL` is set. Its budget defaults to the EM one's
/// values but is a budget of its own (`REAPER_DCS_RATE_PER_SEC`, …).
pub(super) fn dcs_settings(
    s: &Source,
    em_budget: Budget,
) -> Result<Option<DcsSettings>, ConfigError> {
    let Some(url) = s.get("REAPER_DCS_URL") else {
        return Ok(None);
    };
    let url = http_url("REAPER_DCS_URL", url)?;
    let auth = dcs_auth(s)?;
    let http = http_settings(s, "REAPER_DCS_")?;
    let budget = budget(s, "REAPER_DCS_", em_budget)?;
    let not_found_is_absent = match s.string("REAPER_DCS_NOT_FOUND", "already_absent").as_str() {
        "already_absent" => true,
        "refused" => false,
        other => {
            return Err(err(
                "REAPER_DCS_NOT_FOUND",
                format!("`{other}` is not already_absent or refused"),
            ));
        }
    };
    Ok(Some(DcsSettings {
        name: name(s, "REAPER_DCS_NAME", "dcs")?,
        url,
        auth,
        http,
        budget,
        not_found_is_absent,
    }))
}

/// A static token, or IAM password credentials (exactly one of them).
fn dcs_auth(s: &Source) -> Result<DcsAuth, ConfigError> {
    match (s.secret("REAPER_DCS_TOKEN")?, s.get("REAPER_DCS_IAM_URL")) {
        (Some(_), Some(_)) => Err(err(
            "REAPER_DCS_TOKEN",
            "set a static token or REAPER_DCS_IAM_URL, not both",
        )),
        (Some(token), None) => Ok(DcsAuth::Static(token)),
        (None, Some(iam)) => iam_auth(s, iam),
        (None, None) => Err(err(
            "REAPER_DCS_TOKEN",
            "REAPER_DCS_URL needs REAPER_DCS_TOKEN, REAPER_DCS_TOKEN_FILE or REAPER_DCS_IAM_URL",
        )),
    }
}

/// IAM password credentials, exchanged at `iam_url` for tokens.
fn iam_auth(s: &Source, iam_url: &str) -> Result<DcsAuth, ConfigError> {
    Ok(DcsAuth::Iam {
        iam_url: http_url("REAPER_DCS_IAM_URL", iam_url)?,
        domain: s
            .required(
                "REAPER_DCS_DOMAIN",
                "required with REAPER_DCS_IAM_URL (the account name)",
            )?
            .trim()
            .to_string(),
        username: s
            .required("REAPER_DCS_USERNAME", "required with REAPER_DCS_IAM_URL")?
            .trim()
            .to_string(),
        password: s.secret("REAPER_DCS_PASSWORD")?.ok_or_else(|| {
            err(
                "REAPER_DCS_PASSWORD",
                "required (or REAPER_DCS_PASSWORD_FILE) with REAPER_DCS_IAM_URL",
            )
        })?,
    })
}

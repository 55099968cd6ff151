//! The Huawei Cloud DCS endpoint's settings: its URL, how it authenticates (a static token or
//! IAM password credentials), TLS trust and its own call budget.

use super::{ConfigError, SecretSource, Source, check_budget, check_ca_file, err, http_url};
use crate::http::HttpSettings;
use crate::limit::Budget;
use std::path::PathBuf;
use std::time::Duration;

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
    let auth = match (s.secret("REAPER_DCS_TOKEN")?, s.get("REAPER_DCS_IAM_URL")) {
        (Some(_), Some(_)) => {
            return Err(err(
                "REAPER_DCS_TOKEN",
                "set a static token or REAPER_DCS_IAM_URL, not both",
            ));
        }
        (Some(token), None) => DcsAuth::Static(token),
        (None, Some(iam)) => DcsAuth::Iam {
            iam_url: http_url("REAPER_DCS_IAM_URL", iam)?,
            domain: s
                .get("REAPER_DCS_DOMAIN")
                .ok_or_else(|| {
                    err(
                        "REAPER_DCS_DOMAIN",
                        "required with REAPER_DCS_IAM_URL (the account name)",
                    )
                })?
                .trim()
                .to_string(),
            username: s
                .get("REAPER_DCS_USERNAME")
                .ok_or_else(|| err("REAPER_DCS_USERNAME", "required with REAPER_DCS_IAM_URL"))?
                .trim()
                .to_string(),
            password: s.secret("REAPER_DCS_PASSWORD")?.ok_or_else(|| {
                err(
                    "REAPER_DCS_PASSWORD",
                    "required (or REAPER_DCS_PASSWORD_FILE) with REAPER_DCS_IAM_URL",
                )
            })?,
        },
        (None, None) => {
            return Err(err(
                "REAPER_DCS_TOKEN",
                "REAPER_DCS_URL needs REAPER_DCS_TOKEN, REAPER_DCS_TOKEN_FILE or REAPER_DCS_IAM_URL",
            ));
        }
    };
    let http = HttpSettings {
        ca_file: s.get("REAPER_DCS_CA_FILE").map(|p| PathBuf::from(p.trim())),
        insecure_tls: s.bool("REAPER_DCS_INSECURE_TLS", false)?,
        connect_timeout: s.duration("REAPER_HTTP_CONNECT_TIMEOUT", Duration::from_secs(10))?,
        request_timeout: s.duration("REAPER_HTTP_TIMEOUT", Duration::from_secs(60))?,
    };
    check_ca_file("REAPER_DCS_CA_FILE", http.ca_file.as_deref())?;
    let budget = Budget {
        rate_per_sec: s.parse("REAPER_DCS_RATE_PER_SEC", em_budget.rate_per_sec)?,
        burst: s.parse("REAPER_DCS_BURST", em_budget.burst)?,
        max_in_flight: s.parse("REAPER_DCS_MAX_IN_FLIGHT", em_budget.max_in_flight)?,
    };
    check_budget("REAPER_DCS_", &budget)?;
    let not_found = s.string("REAPER_DCS_NOT_FOUND", "already_absent");
    let not_found_is_absent = match not_found.as_str() {
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
        name: s.string("REAPER_DCS_NAME", "dcs"),
        url,
        auth,
        http,
        budget,
        not_found_is_absent,
    }))
}

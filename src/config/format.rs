//! The body format reaper speaks with Enterprise Manager (`REAPER_EM_FORMAT`): a setting here,
//! and the codecs' and the simulator's choice of XML or JSON (re-exported by `em::codec`).

use serde::{Deserialize, Serialize};

/// The body format negotiated with EM: exactly one `Accept` value is ever sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// `application/xml` (EM's default).
    #[default]
    Xml,
    /// `application/json`.
    Json,
}

impl Format {
    /// The media type sent as the single `Accept` value and answered as `Content-Type`.
    pub fn media_type(self) -> &'static str {
        match self {
            Format::Xml => "application/xml",
            Format::Json => "application/json",
        }
    }
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "xml" => Ok(Format::Xml),
            "json" => Ok(Format::Json),
            other => Err(format!("expected `xml` or `json`, got `{other}`")),
        }
    }
}

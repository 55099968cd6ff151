//! EM's JSON wire shapes (PascalCase keys mirroring the XML; attributes become plain keys).
//! Unknown keys are tolerated.

use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct JsonLink {
    #[serde(default)]
    pub(super) rel: String,
    #[serde(default)]
    pub(super) href: String,
    #[serde(default, rename = "Type")]
    pub(super) kind: String,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct JsonResult {
    pub(super) success: bool,
    #[serde(default)]
    pub(super) message: Option<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct JsonTask {
    pub(super) task_id: String,
    pub(super) state: String,
    #[serde(default)]
    pub(super) operation: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) result: Option<JsonResult>,
    #[serde(default)]
    pub(super) links: Vec<JsonLink>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) href: Option<String>,
    #[serde(default, rename = "Type")]
    pub(super) kind: Option<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct JsonError {
    #[serde(default)]
    pub(super) first_chance_exception_message: Option<String>,
    #[serde(default)]
    pub(super) message: String,
    #[serde(default)]
    pub(super) stack_trace: Option<String>,
    #[serde(default)]
    pub(super) status: Option<String>,
    #[serde(default)]
    pub(super) status_code: Option<u16>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct JsonLogonSession {
    #[serde(default)]
    pub(super) user_name: String,
    pub(super) session_id: String,
    #[serde(default)]
    pub(super) links: Vec<JsonLink>,
    #[serde(default, rename = "Type")]
    pub(super) kind: Option<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct JsonJobRef {
    pub(super) name: String,
    #[serde(default, rename = "UID")]
    pub(super) uid: String,
    #[serde(default)]
    pub(super) href: String,
    #[serde(default)]
    pub(super) links: Vec<JsonLink>,
    #[serde(default, rename = "Type")]
    pub(super) kind: Option<String>,
}

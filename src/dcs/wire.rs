//! The DCS and IAM wire shapes reaper reads and the simulator writes: error bodies (v2
//! `error_code`/`error_msg` and the legacy `{"error":{"code","message"}}`), the delete answer,
//! the background-task listing, and the Keystone-v3 password-auth request and token answer.
//! Unknown fields are ignored everywhere: DCS adds fields over time.
//!
//! Pure: no HTTP, no credentials kept (the auth body is built and sent at once).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Value, json};

/// The header carrying a DCS token (on requests) and its name for IAM's answer.
pub const TOKEN_HEADER: &str = "X-Auth-Token";
/// The header in which IAM returns a new token.
pub const SUBJECT_TOKEN_HEADER: &str = "X-Subject-Token";
/// The header naming one answer, for support tickets.
pub const REQUEST_ID_HEADER: &str = "X-Request-Id";

/// A decoded error body, whichever shape it came in.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ErrorBody {
    pub code: Option<String>,
    pub message: Option<String>,
    /// Some gateways put the request id into the body as well.
    pub request_id: Option<String>,
}

/// Reads an error body: `{"error_code","error_msg","error_ext_msg"}` (v2, also the API
/// gateway's) or `{"error":{"code","message"}}` (legacy v1 and Keystone, `code` string or
/// number). `None` when the body is neither (e.g. a proxy's HTML page).
pub fn decode_error(body: &str) -> Option<ErrorBody> {
    let v: Value = serde_json::from_str(body).ok()?;
    let text = |v: Option<&Value>| match v? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    let request_id = text(v.get("request_id"));
    if v.get("error_code").is_some() || v.get("error_msg").is_some() {
        return Some(ErrorBody {
            code: text(v.get("error_code")),
            message: text(v.get("error_msg")),
            request_id,
        });
    }
    let legacy = v.get("error").filter(|e| e.is_object())?;
    Some(ErrorBody {
        code: text(legacy.get("code")),
        message: text(legacy.get("message")),
        request_id,
    })
}

/// A v2 error body (`error_ext_msg` is documented as unused and `null`).
pub fn encode_error(code: &str, message: &str) -> String {
    json!({"error_code": code, "error_msg": message, "error_ext_msg": null}).to_string()
}

/// The body of a successful DELETE: `{"message": ""}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct DeleteBody {
    #[serde(default)]
    pub message: String,
}

/// `GET /v2/{project_id}/instances/{instance_id}/tasks`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct TaskList {
    /// Documented as a string, shown as a number in the examples: both are read.
    #[serde(deserialize_with = "count_from_string_or_number", default)]
    pub task_count: u64,
    #[serde(default)]
    pub tasks: Vec<BackgroundTask>,
}

/// One background task of an instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct BackgroundTask {
    /// 32 hex characters.
    pub id: String,
    #[serde(default)]
    pub name: String,
    /// `SUCCESS`, `EXECUTING`, `FAILED`, … (kept as text: sibling services add values).
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub created_at: String,
    #[serde(default)]
    pub updated_at: String,
    #[serde(default)]
    pub user_name: String,
    /// Operation details; their shape varies by task type.
    #[serde(default)]
    pub details: Value,
    #[serde(default)]
    pub enable_show: Option<bool>,
}

fn count_from_string_or_number<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    match Value::deserialize(d)? {
        Value::Number(n) => n
            .as_u64()
            .ok_or_else(|| serde::de::Error::custom("task_count is not a count")),
        Value::String(s) => s.trim().parse().map_err(serde::de::Error::custom),
        Value::Null => Ok(0),
        other => Err(serde::de::Error::custom(format!(
            "task_count is neither a string nor a number: {other}"
        ))),
    }
}

/// The Keystone-v3 password-auth body for a project-scoped token. Built and sent at once;
/// the value holds the password, so it is never logged or kept.
pub fn auth_request(domain: &str, username: &str, password: &str, project_id: &str) -> Value {
    json!({
        "auth": {
            "identity": {
                "methods": ["password"],
                "password": {
                    "user": {
                        "name": username,
                        "password": password,
                        "domain": {"name": domain}
                    }
                }
            },
            "scope": {"project": {"id": project_id}}
        }
    })
}

/// The parts of a password-auth request the simulator checks.
#[derive(Deserialize)]
pub struct AuthRequest {
    pub auth: Auth,
}

#[derive(Deserialize)]
pub struct Auth {
    pub identity: Identity,
    pub scope: Option<Scope>,
}

#[derive(Deserialize)]
pub struct Identity {
    #[serde(default)]
    pub methods: Vec<String>,
    pub password: Option<PasswordMethod>,
}

#[derive(Deserialize)]
pub struct PasswordMethod {
    pub user: AuthUser,
}

#[derive(Deserialize)]
pub struct AuthUser {
    pub name: String,
    pub password: String,
    pub domain: Named,
}

#[derive(Deserialize)]
pub struct Named {
    pub name: String,
}

#[derive(Deserialize)]
pub struct Scope {
    pub project: Option<ProjectRef>,
}

#[derive(Deserialize)]
pub struct ProjectRef {
    pub id: String,
}

/// IAM's token answer body (the token itself is in `X-Subject-Token`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct TokenBody {
    pub token: TokenInfo,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct TokenInfo {
    pub expires_at: DateTime<Utc>,
    #[serde(default)]
    pub issued_at: Option<DateTime<Utc>>,
}

/// IAM's token answer body as the simulator writes it (like IAM: microsecond timestamps).
pub fn encode_token_body(
    issued_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    project_id: &str,
    username: &str,
    domain: &str,
) -> String {
    let t = |d: DateTime<Utc>| d.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string();
    json!({
        "token": {
            "methods": ["password"],
            "expires_at": t(expires_at),
            "issued_at": t(issued_at),
            "project": {"id": project_id, "name": project_id},
            "user": {"name": username, "domain": {"name": domain}},
            "catalog": []
        }
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_error_shapes_decode() {
        let table: [(&str, Option<(&str, &str)>); 6] = [
            (
                r#"{"error_code":"DCS.4070","error_msg":"Invalid task ID format.","error_ext_msg":null}"#,
                Some(("DCS.4070", "Invalid task ID format.")),
            ),
            (
                r#"{"error":{"code":"111404022","message":"Instance not found."}}"#,
                Some(("111404022", "Instance not found.")),
            ),
            (
                r#"{"error":{"code":401,"message":"The username or password is wrong.","title":"Unauthorized"}}"#,
                Some(("401", "The username or password is wrong.")),
            ),
            (
                r#"{"error_code":"APIG.0308","error_msg":"The request is throttled.","request_id":"abc","new":1}"#,
                Some(("APIG.0308", "The request is throttled.")),
            ),
            ("<html>502 Bad Gateway</html>", None),
            (r#"{"message":""}"#, None),
        ];
        for (body, want) in table {
            let got = decode_error(body);
            let got = got
                .as_ref()
                .map(|e| (e.code.as_deref().unwrap(), e.message.as_deref().unwrap()));
            assert_eq!(got, want, "{body}");
        }
        assert_eq!(
            decode_error(r#"{"error_code":"APIG.0308","error_msg":"x","request_id":"abc"}"#)
                .unwrap()
                .request_id
                .as_deref(),
            Some("abc")
        );
        let round = decode_error(&encode_error("DCS.4001", "gone")).unwrap();
        assert_eq!(round.code.as_deref(), Some("DCS.4001"));
    }

    #[test]
    fn task_count_reads_strings_and_numbers_and_extra_fields_are_ignored() {
        for count in ["1", "\"1\""] {
            let body = format!(
                r#"{{"task_count":{count},"tasks":[{{"id":"8abf6e1e72c12e7c0172c15b508500aa",
                "name":"modify","status":"SUCCESS","created_at":"2020-07-03T02:53:44.478Z",
                "updated_at":"2020-07-03T02:53:45.478Z","user_name":"admin",
                "details":{{"old_capacity":"0.125"}},"enable_show":true,"brand_new":[1]}}],
                "also_new":{{}}}}"#
            );
            let list: TaskList = serde_json::from_str(&body).unwrap();
            assert_eq!(list.task_count, 1);
            assert_eq!(list.tasks[0].status, "SUCCESS");
            assert_eq!(list.tasks[0].enable_show, Some(true));
        }
    }

    #[test]
    fn the_token_body_round_trips_with_microseconds() {
        let at = "2020-01-05T08:42:38Z".parse::<DateTime<Utc>>().unwrap();
        let body = encode_token_body(at, at, "p", "u", "d");
        assert!(body.contains("2020-01-05T08:42:38.000000Z"), "{body}");
        let t: TokenBody = serde_json::from_str(&body).unwrap();
        assert_eq!(t.token.expires_at, at);
        let req: AuthRequest =
            serde_json::from_value(auth_request("dom", "user", "pw", "proj")).unwrap();
        assert_eq!(req.auth.identity.methods, ["password"]);
        let user = req.auth.identity.password.unwrap().user;
        assert_eq!(
            (user.name.as_str(), user.domain.name.as_str()),
            ("user", "dom")
        );
        assert_eq!(req.auth.scope.unwrap().project.unwrap().id, "proj");
    }
}

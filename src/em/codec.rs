//! Wire codecs for Enterprise Manager bodies: `Task`, `Error`, `LogonSession` and the job
//! reference (`job`), in XML (namespace aware) and JSON (PascalCase). Shared by the client
//! and the simulator; knows nothing of HTTP.
//!
//! Decoding is tolerant (unknown elements, attributes and keys are skipped, entity
//! references are resolved), except for ids that go into a URL path (`TaskId`, `SessionId`):
//! those must be safe path segments. Encoding produces the exact shapes of the seed pages.

mod job;
mod json;
mod xml;

use crate::request::Segment;
use json::{JsonError, JsonLink, JsonLogonSession, JsonResult, JsonTask};
use quick_xml::escape::escape;
use xml::{parse_bool, parse_xml, xml_links};

pub use job::{JobRef, decode_job_ref, encode_job_ref};

/// The body format (XML or JSON); a setting, so it lives in `config`.
pub use crate::config::Format;

/// The XML namespace of every EM entity.
pub const VEEAM_NS: &str = "http://www.veeam.com/ent/v1.0";

/// A body EM sent that could not be decoded.
#[derive(Debug, thiserror::Error)]
#[error("undecodable EM {what} body: {reason}")]
pub struct CodecError {
    what: &'static str,
    reason: String,
}

impl CodecError {
    fn new(what: &'static str, reason: impl ToString) -> Self {
        CodecError {
            what,
            reason: reason.to_string(),
        }
    }
}

/// A task's `State`. Unknown values are kept and treated as still running.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskState {
    Running,
    /// Done on the backup server; EM has not collected the data yet. Carries a `Result`.
    OperationFinished,
    Finished,
    Other(String),
}

impl TaskState {
    pub fn parse(s: &str) -> Self {
        match s.trim() {
            "Running" => TaskState::Running,
            "OperationFinished" => TaskState::OperationFinished,
            "Finished" => TaskState::Finished,
            other => TaskState::Other(other.to_string()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            TaskState::Running => "Running",
            TaskState::OperationFinished => "OperationFinished",
            TaskState::Finished => "Finished",
            TaskState::Other(s) => s,
        }
    }

    /// `Finished`, or `OperationFinished` (which EM only reports once the work is done).
    pub fn is_terminal(&self) -> bool {
        matches!(self, TaskState::Finished | TaskState::OperationFinished)
    }
}

/// A task's `Result`: present once the task has finished.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskResult {
    pub success: bool,
    pub message: String,
}

/// A `Link` of an entity.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Link {
    pub rel: String,
    pub href: String,
    pub kind: String,
}

/// An EM `Task` entity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Task {
    pub task_id: String,
    pub state: TaskState,
    pub operation: String,
    pub result: Option<TaskResult>,
    pub href: Option<String>,
    pub links: Vec<Link>,
}

impl Task {
    /// The outcome of a terminal task: `Some(result)` when finished with a `Result`.
    pub fn finished_result(&self) -> Option<&TaskResult> {
        if self.state.is_terminal() {
            self.result.as_ref()
        } else {
            None
        }
    }
}

/// An EM `Error` body.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ErrorBody {
    pub message: String,
    pub status_code: Option<u16>,
    pub first_chance_exception_message: Option<String>,
}

/// The `LogonSession` returned by `POST /api/sessionMngr/`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LogonSession {
    pub user_name: String,
    /// The session GUID (used to log off). Not the token: that travels in a header.
    pub session_id: String,
}

/// An id EM returned that the client will put into a URL path (`/api/tasks/{TaskId}`,
/// `/api/logonSessions/{SessionId}`): it must be one safe path segment, else the body is
/// undecodable rather than the source of a bad URL.
fn path_id(what: &'static str, field: &str, id: String) -> Result<String, CodecError> {
    match Segment::parse(&id) {
        Ok(_) => Ok(id),
        Err(reason) => Err(CodecError::new(what, format!("{field}: {reason}"))),
    }
}

// ---------------------------------------------------------------- Task

/// Decodes a `Task` body in the given format.
pub fn decode_task(format: Format, body: &str) -> Result<Task, CodecError> {
    match format {
        Format::Json => {
            let t: JsonTask = serde_json::from_str(body).map_err(|e| CodecError::new("Task", e))?;
            task_from_json(t)
        }
        Format::Xml => task_from_xml(&parse_xml(body, "Task")?),
    }
}

fn task_from_json(t: JsonTask) -> Result<Task, CodecError> {
    Ok(Task {
        task_id: path_id("Task", "TaskId", t.task_id)?,
        state: TaskState::parse(&t.state),
        operation: t.operation,
        result: t.result.map(|r| TaskResult {
            success: r.success,
            message: r.message.unwrap_or_default(),
        }),
        href: t.href,
        links: t
            .links
            .into_iter()
            .map(|l| Link {
                rel: l.rel,
                href: l.href,
                kind: l.kind,
            })
            .collect(),
    })
}

fn task_from_xml(root: &xml::Node) -> Result<Task, CodecError> {
    if root.name != "Task" {
        return Err(CodecError::new(
            "Task",
            format!("root element is <{}>", root.name),
        ));
    }
    let task_id = root
        .child_text("TaskId")
        .filter(|s| !s.is_empty())
        .ok_or_else(|| CodecError::new("Task", "missing <TaskId>"))?;
    let state = root
        .child_text("State")
        .ok_or_else(|| CodecError::new("Task", "missing <State>"))?;
    Ok(Task {
        task_id: path_id("Task", "TaskId", task_id)?,
        state: TaskState::parse(&state),
        operation: root.child_text("Operation").unwrap_or_default(),
        result: root.child("Result").map(xml_result).transpose()?,
        href: root.attr("Href").map(str::to_string),
        links: xml_links(root),
    })
}

/// A `<Result Success="…"><Message>…</Message></Result>` element.
fn xml_result(r: &xml::Node) -> Result<TaskResult, CodecError> {
    let success = r
        .attr("Success")
        .and_then(parse_bool)
        .ok_or_else(|| CodecError::new("Task", "Result without Success"))?;
    Ok(TaskResult {
        success,
        message: r.child_text("Message").unwrap_or_default(),
    })
}

/// Encodes a `Task` exactly as EM answers it (XML shape of the seed pages, or EM's JSON).
pub fn encode_task(format: Format, task: &Task) -> String {
    match format {
        Format::Json => {
            let t = JsonTask {
                task_id: task.task_id.clone(),
                state: task.state.as_str().to_string(),
                operation: task.operation.clone(),
                result: task.result.as_ref().map(|r| JsonResult {
                    success: r.success,
                    message: Some(r.message.clone()),
                }),
                links: task
                    .links
                    .iter()
                    .map(|l| JsonLink {
                        rel: l.rel.clone(),
                        href: l.href.clone(),
                        kind: l.kind.clone(),
                    })
                    .collect(),
                href: task.href.clone(),
                kind: Some("Task".into()),
            };
            serde_json::to_string(&t).expect("a Task always serialises")
        }
        Format::Xml => {
            let mut s = format!(
                "<Task xmlns=\"{VEEAM_NS}\" Type=\"Task\" Href=\"{}\">\n <Links>\n",
                escape(task.href.as_deref().unwrap_or_default())
            );
            for l in &task.links {
                s.push_str(&format!(
                    "   <Link Rel=\"{}\" Type=\"{}\" Href=\"{}\" />\n",
                    escape(l.rel.as_str()),
                    escape(l.kind.as_str()),
                    escape(l.href.as_str())
                ));
            }
            s.push_str(&format!(
                " </Links>\n <TaskId>{}</TaskId>\n <State>{}</State>\n <Operation>{}</Operation>\n",
                escape(task.task_id.as_str()),
                escape(task.state.as_str()),
                escape(task.operation.as_str())
            ));
            if let Some(r) = &task.result {
                s.push_str(&format!(
                    " <Result Success=\"{}\">\n   <Message>{}</Message>\n </Result>\n",
                    r.success,
                    escape(r.message.as_str())
                ));
            }
            s.push_str("</Task>");
            s
        }
    }
}

// ---------------------------------------------------------------- Error

/// Decodes an `Error` body; `None` when the body is not one (e.g. an HTML proxy page).
pub fn decode_error(format: Format, body: &str) -> Option<ErrorBody> {
    // EM answers errors in the requested format, but a proxy in front of it may not:
    // try the requested format first, then the other one.
    let try_json = || -> Option<ErrorBody> {
        let e: JsonError = serde_json::from_str(body).ok()?;
        Some(ErrorBody {
            message: e.message,
            status_code: e.status_code,
            first_chance_exception_message: e.first_chance_exception_message,
        })
    };
    let try_xml = || -> Option<ErrorBody> {
        let root = parse_xml(body, "Error").ok()?;
        if root.name != "Error" {
            return None;
        }
        Some(ErrorBody {
            message: root.attr("Message").unwrap_or_default().to_string(),
            status_code: root.attr("StatusCode").and_then(|s| s.trim().parse().ok()),
            first_chance_exception_message: root.child_text("FirstChanceExceptionMessage"),
        })
    };
    match format {
        Format::Json => try_json().or_else(try_xml),
        Format::Xml => try_xml().or_else(try_json),
    }
}

/// Encodes an `Error` body as EM does.
pub fn encode_error(format: Format, status: u16, message: &str) -> String {
    match format {
        Format::Json => serde_json::to_string(&JsonError {
            first_chance_exception_message: None,
            message: message.to_string(),
            stack_trace: None,
            status: None,
            status_code: Some(status),
        })
        .expect("an Error always serialises"),
        Format::Xml => format!(
            "<Error xmlns=\"{VEEAM_NS}\" Message=\"{}\" StatusCode=\"{status}\">\
             <FirstChanceExceptionMessage>{}</FirstChanceExceptionMessage>\
             <StackTrace /></Error>",
            escape(message),
            escape(message)
        ),
    }
}

// ---------------------------------------------------------------- LogonSession

/// Decodes the `LogonSession` answered by a logon.
pub fn decode_logon_session(format: Format, body: &str) -> Result<LogonSession, CodecError> {
    match format {
        Format::Json => {
            let s: JsonLogonSession =
                serde_json::from_str(body).map_err(|e| CodecError::new("LogonSession", e))?;
            Ok(LogonSession {
                user_name: s.user_name,
                session_id: path_id("LogonSession", "SessionId", s.session_id)?,
            })
        }
        Format::Xml => {
            let root = parse_xml(body, "LogonSession")?;
            let session_id = root
                .child_text("SessionId")
                .filter(|s| !s.is_empty())
                .ok_or_else(|| CodecError::new("LogonSession", "missing <SessionId>"))?;
            Ok(LogonSession {
                user_name: root.child_text("UserName").unwrap_or_default(),
                session_id: path_id("LogonSession", "SessionId", session_id)?,
            })
        }
    }
}

/// Encodes a `LogonSession` as EM does; `base` is the server's `/api` URL.
pub fn encode_logon_session(format: Format, session: &LogonSession, base: &str) -> String {
    let href = format!("{base}/logonSessions/{}", session.session_id);
    match format {
        Format::Json => serde_json::to_string(&JsonLogonSession {
            user_name: session.user_name.clone(),
            session_id: session.session_id.clone(),
            links: vec![JsonLink {
                rel: "Delete".into(),
                href: href.clone(),
                kind: "LogonSession".into(),
            }],
            kind: Some("LogonSession".into()),
        })
        .expect("a LogonSession always serialises"),
        Format::Xml => format!(
            "<LogonSession xmlns=\"{VEEAM_NS}\" Type=\"LogonSession\" Href=\"{h}\">\
             <Links><Link Rel=\"Delete\" Type=\"LogonSession\" Href=\"{h}\" /></Links>\
             <UserName>{}</UserName><SessionId>{}</SessionId></LogonSession>",
            escape(session.user_name.as_str()),
            escape(session.session_id.as_str()),
            h = escape(href.as_str()),
        ),
    }
}

#[cfg(test)]
mod tests;

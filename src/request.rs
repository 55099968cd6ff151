//! The delete request contract (design 1.2): the wire schema, and its decoding and validation
//! into domain types. Everything past this module trusts a [`DeleteRequest`]: a [`Target`]
//! that exists is valid, and every id in it is safe to put into a URL path.
//!
//! Knows nothing of AMQP, HTTP or the ledger.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

mod ids;
mod strict;

pub(crate) use ids::printable;
pub use ids::{EntityType, Guid, RequestId, Segment};

/// Largest accepted message body.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Why a message could not become a [`DeleteRequest`]. Carries the request id when one could
/// be read, so that an `invalid` event can be published for it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct Rejection {
    pub request_id: Option<RequestId>,
    pub reason: String,
}

impl Rejection {
    fn new(request_id: Option<RequestId>, reason: String) -> Self {
        Rejection { request_id, reason }
    }
}

/// What to delete. Serialises back to the wire shape (`{"type": "em.job", "job_id": …}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type")]
pub enum Target {
    #[serde(rename = "em.job")]
    EmJob { job_id: Guid },
    #[serde(rename = "em.job_include")]
    EmJobInclude { job_id: Guid, include_id: Guid },
    #[serde(rename = "em.job_linked_repository")]
    EmJobLinkedRepository { job_id: Guid, repository_id: Guid },
    #[serde(rename = "em.job_linked_job")]
    EmJobLinkedJob { job_id: Guid, linked_job_id: Guid },
    #[serde(rename = "em.task")]
    EmTask { task_id: Segment },
    #[serde(rename = "dcs.background_task")]
    DcsBackgroundTask {
        project_id: Segment,
        instance_id: Segment,
        task_id: Segment,
    },
}

/// Which kind of remote system a target lives on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum System {
    Em,
    Dcs,
}

/// The DCS path of an instance's background tasks, or of one of them (each id is one safe
/// path segment, so the URL's shape cannot change).
pub fn dcs_tasks_path(
    project_id: &Segment,
    instance_id: &Segment,
    task: Option<&Segment>,
) -> String {
    let base = format!(
        "/v2/{}/instances/{}/tasks",
        project_id.as_str(),
        instance_id.as_str()
    );
    match task {
        Some(t) => format!("{base}/{}", t.as_str()),
        None => base,
    }
}

impl Target {
    /// The wire name of the target type, e.g. `em.job`.
    pub fn type_name(&self) -> &'static str {
        match self {
            Target::EmJob { .. } => "em.job",
            Target::EmJobInclude { .. } => "em.job_include",
            Target::EmJobLinkedRepository { .. } => "em.job_linked_repository",
            Target::EmJobLinkedJob { .. } => "em.job_linked_job",
            Target::EmTask { .. } => "em.task",
            Target::DcsBackgroundTask { .. } => "dcs.background_task",
        }
    }

    /// The job the target belongs to: the job itself, or the job of an include or a link.
    pub fn job_id(&self) -> Option<&str> {
        match self {
            Target::EmJob { job_id }
            | Target::EmJobInclude { job_id, .. }
            | Target::EmJobLinkedRepository { job_id, .. }
            | Target::EmJobLinkedJob { job_id, .. } => Some(job_id.as_str()),
            Target::EmTask { .. } | Target::DcsBackgroundTask { .. } => None,
        }
    }

    pub fn system(&self) -> System {
        match self {
            Target::DcsBackgroundTask { .. } => System::Dcs,
            _ => System::Em,
        }
    }

    /// The resource path the DELETE goes to, below the endpoint's base URL.
    pub fn path(&self) -> String {
        match self {
            Target::EmJob { job_id } => format!("/api/jobs/{}", job_id.as_str()),
            Target::EmJobInclude { job_id, include_id } => format!(
                "/api/jobs/{}/includes/{}",
                job_id.as_str(),
                include_id.as_str()
            ),
            Target::EmJobLinkedRepository {
                job_id,
                repository_id,
            } => format!(
                "/api/jobs/{}/linkedBackupRepositories/{}",
                job_id.as_str(),
                repository_id.as_str()
            ),
            Target::EmJobLinkedJob {
                job_id,
                linked_job_id,
            } => format!(
                "/api/jobs/{}/linkedJobs/{}",
                job_id.as_str(),
                linked_job_id.as_str()
            ),
            Target::EmTask { task_id } => format!("/api/tasks/{}", task_id.as_str()),
            Target::DcsBackgroundTask {
                project_id,
                instance_id,
                task_id,
            } => dcs_tasks_path(project_id, instance_id, Some(task_id)),
        }
    }

    /// Builds a target from its wire object (`{"type": …, fields…}`).
    pub fn from_wire(v: &serde_json::Value) -> Result<Self, String> {
        let obj = v
            .as_object()
            .ok_or("`target` must be an object with a `type`")?;
        let field = |name: &str| -> Result<&str, String> {
            obj.get(name)
                .and_then(|f| f.as_str())
                .ok_or_else(|| format!("target field `{name}` is missing or not a string"))
        };
        let guid = |name: &str, kind: EntityType| -> Result<Guid, String> {
            Guid::parse_as(field(name)?, kind).map_err(|e| format!("target field `{name}`: {e}"))
        };
        let segment = |name: &str| -> Result<Segment, String> {
            Segment::parse(field(name)?).map_err(|e| format!("target field `{name}`: {e}"))
        };
        let kind = field("type")?;
        Ok(match kind {
            "em.job" => Target::EmJob {
                job_id: guid("job_id", EntityType::Job)?,
            },
            "em.job_include" => Target::EmJobInclude {
                job_id: guid("job_id", EntityType::Job)?,
                include_id: guid("include_id", EntityType::ObjectInJob)?,
            },
            "em.job_linked_repository" => Target::EmJobLinkedRepository {
                job_id: guid("job_id", EntityType::Job)?,
                repository_id: guid("repository_id", EntityType::Repository)?,
            },
            "em.job_linked_job" => Target::EmJobLinkedJob {
                job_id: guid("job_id", EntityType::Job)?,
                linked_job_id: guid("linked_job_id", EntityType::Job)?,
            },
            "em.task" => Target::EmTask {
                task_id: segment("task_id")?,
            },
            "dcs.background_task" => Target::DcsBackgroundTask {
                project_id: segment("project_id")?,
                instance_id: segment("instance_id")?,
                task_id: segment("task_id")?,
            },
            other => return Err(format!("unknown target type `{}`", printable(other))),
        })
    }

    /// The wire object of this target (as echoed in events and stored in the ledger).
    pub fn to_wire(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("a Target always serialises")
    }
}

/// A validated delete request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteRequest {
    pub request_id: RequestId,
    pub target: Target,
    pub endpoint: Option<String>,
    pub correlation_id: Option<String>,
    pub batch_id: Option<String>,
    pub not_after: Option<DateTime<Utc>>,
}

/// The wire schema of a request. Unknown fields are tolerated.
#[derive(Debug, Deserialize, Serialize, Default)]
pub struct RequestWire {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    pub target: serde_json::Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_after: Option<String>,
}

const MAX_LABEL: usize = 256;

fn label(name: &str, v: Option<String>) -> Result<Option<String>, String> {
    match v {
        Some(s) if s.len() > MAX_LABEL => Err(format!("`{name}` is longer than {MAX_LABEL}")),
        Some(s) if s.chars().any(char::is_control) => {
            Err(format!("`{name}` contains control characters"))
        }
        other => Ok(other),
    }
}

/// The body's `request_id` (a string), else the message_id property's. An id given twice
/// cannot be read: which one would it be?
fn read_request_id(
    value: &serde_json::Value,
    duplicates: &[String],
    fallback: Option<RequestId>,
) -> Result<Option<RequestId>, Rejection> {
    match value.get("request_id") {
        _ if duplicates.iter().any(|d| d == "request_id") => Ok(None),
        Some(serde_json::Value::String(s)) => RequestId::parse(s)
            .map(Some)
            .map_err(|e| Rejection::new(None, e)),
        Some(serde_json::Value::Null) | None => Ok(fallback),
        Some(_) => Err(Rejection::new(None, "`request_id` must be a string".into())),
    }
}

/// Refuses a body with a key given twice at any level (`duplicates` names them).
fn refuse_duplicates(duplicates: &[String]) -> Result<(), String> {
    let Some(first) = duplicates.first() else {
        return Ok(());
    };
    let more = match duplicates.len() {
        1 => String::new(),
        n => format!(" (and {} more)", n - 1),
    };
    Err(format!(
        "the key `{}` appears more than once{more}: an ambiguous body is refused",
        printable(first)
    ))
}

impl DeleteRequest {
    /// Decodes and validates a message body. `message_id` is the AMQP property, used as the
    /// request id when the body has none.
    pub fn decode(body: &[u8], message_id: Option<&str>) -> Result<Self, Rejection> {
        let fallback_id = message_id.and_then(|m| RequestId::parse(m).ok());
        if body.len() > MAX_BODY_BYTES {
            let reason = format!(
                "body is {} bytes, over the {MAX_BODY_BYTES} limit",
                body.len()
            );
            return Err(Rejection::new(fallback_id, reason));
        }
        let strict::Parsed { value, duplicates } = strict::parse(body)
            .map_err(|e| Rejection::new(fallback_id.clone(), format!("body is not JSON: {e}")))?;
        // Read the id first, so that every later rejection can name it.
        let request_id = read_request_id(&value, &duplicates, fallback_id)?;
        refuse_duplicates(&duplicates).map_err(|r| Rejection::new(request_id.clone(), r))?;
        let wire: RequestWire = serde_json::from_value(value)
            .map_err(|e| Rejection::new(request_id.clone(), format!("bad request schema: {e}")))?;
        let request_id = request_id.ok_or_else(|| {
            let reason = "no `request_id` in the body and no message_id property";
            Rejection::new(None, reason.into())
        })?;
        Self::validate(request_id, wire)
    }

    /// Validates the fields of a request whose id is known (every rejection names it).
    fn validate(request_id: RequestId, wire: RequestWire) -> Result<Self, Rejection> {
        let fail = |reason: String| Rejection::new(Some(request_id.clone()), reason);
        let target = Target::from_wire(&wire.target).map_err(fail)?;
        let not_after = wire
            .not_after
            .as_deref()
            .map(|s| {
                DateTime::parse_from_rfc3339(s)
                    .map(|d| d.with_timezone(&Utc))
                    .map_err(|e| fail(format!("`not_after` is not an RFC 3339 time: {e}")))
            })
            .transpose()?;
        let endpoint = match wire.endpoint {
            Some(e) => Some(
                Segment::parse(&e)
                    .map_err(|err| fail(format!("`endpoint`: {err}")))?
                    .as_str()
                    .to_string(),
            ),
            None => None,
        };
        Ok(DeleteRequest {
            target,
            endpoint,
            correlation_id: label("correlation_id", wire.correlation_id).map_err(fail)?,
            batch_id: label("batch_id", wire.batch_id).map_err(fail)?,
            not_after,
            request_id,
        })
    }

    /// The wire form of this request (what `reaper enqueue` and the demo publish).
    pub fn to_wire(&self) -> RequestWire {
        RequestWire {
            request_id: Some(self.request_id.as_str().to_string()),
            target: self.target.to_wire(),
            endpoint: self.endpoint.clone(),
            correlation_id: self.correlation_id.clone(),
            batch_id: self.batch_id.clone(),
            not_after: self.not_after.map(|t| t.to_rfc3339()),
        }
    }
}

#[cfg(test)]
mod tests;

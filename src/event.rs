//! The event contracts (design 1.3): CloudEvents 1.0 JSON on the events exchange — a
//! request's outcome event and an endpoint's `endpoint.*` events. Pure data: built by the
//! engine (or the worker, for endpoints), stored in the outbox, published as is.

use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The remote confirmed the deletion.
    Deleted,
    /// The resource was not there (404 on delete or on verification).
    AlreadyAbsent,
    /// The remote task finished with `Success=false`.
    TaskFailed,
    /// A permanent HTTP error (400/403/405/…), or a target type not supported.
    Refused,
    /// Transient errors until `max_attempts`.
    RetriesExhausted,
    /// The remote task ran past its limit.
    TimedOut,
    /// `not_after` passed before the request was sent.
    Expired,
    /// The request could not be accepted.
    Invalid,
    /// Dry run: nothing was deleted; the target exists, or could not be checked
    /// (`data.checked` says which).
    Planned,
    /// An operator cancelled it before its DELETE was sent, or stopped its remote task.
    Cancelled,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Deleted => "deleted",
            Outcome::AlreadyAbsent => "already_absent",
            Outcome::TaskFailed => "task_failed",
            Outcome::Refused => "refused",
            Outcome::RetriesExhausted => "retries_exhausted",
            Outcome::TimedOut => "timed_out",
            Outcome::Expired => "expired",
            Outcome::Invalid => "invalid",
            Outcome::Planned => "planned",
            Outcome::Cancelled => "cancelled",
        }
    }

    /// The routing key of its outcome event (design 1.3).
    pub fn routing_key(self, already_absent_is_success: bool) -> &'static str {
        match self {
            Outcome::Planned => "delete.planned",
            Outcome::Cancelled => "delete.cancelled",
            o if o.is_success(already_absent_is_success) => "delete.succeeded",
            _ => "delete.failed",
        }
    }

    /// Whether it counts against an endpoint's failure breaker (design 1.6): the remote
    /// refused or failed the work. A guard rail's refusal (`protected`) does not count.
    pub fn is_breaker_failure(self, error_kind: Option<&str>) -> bool {
        match self {
            Outcome::TaskFailed | Outcome::RetriesExhausted | Outcome::TimedOut => true,
            Outcome::Refused => error_kind != Some("protected"),
            _ => false,
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        serde_json::from_value(serde_json::Value::String(s.to_string())).ok()
    }

    /// Whether this outcome counts as success. `already_absent` does unless the operator
    /// configured otherwise.
    pub fn is_success(self, already_absent_is_success: bool) -> bool {
        match self {
            Outcome::Deleted => true,
            Outcome::AlreadyAbsent => already_absent_is_success,
            _ => false,
        }
    }
}

/// The remote task as last seen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct TaskInfo {
    pub id: String,
    pub state: Option<String>,
    pub operation: Option<String>,
    pub success: Option<bool>,
    pub message: Option<String>,
}

/// What the remote (or reaper) said went wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ErrorInfo {
    /// `http`, `task`, `transport`, `unsupported`, `expired`, `timeout`, `invalid`, …
    pub kind: String,
    pub http_status: Option<u16>,
    /// EM has none; DCS `error_code` (e.g. `DCS.4957`).
    pub code: Option<String>,
    pub message: String,
    /// DCS `X-Request-Id` of the failed answer, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

impl ErrorInfo {
    /// A remote's failure: `http` when it answered with a status, `transport` when it did not.
    pub fn remote(
        status: Option<u16>,
        code: Option<String>,
        message: String,
        request_id: Option<String>,
    ) -> Self {
        ErrorInfo {
            kind: if status.is_some() {
                "http"
            } else {
                "transport"
            }
            .into(),
            http_status: status,
            code,
            message,
            request_id,
        }
    }
}

/// The `data` of an outcome event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventData {
    pub request_id: Option<String>,
    pub correlation_id: Option<String>,
    pub batch_id: Option<String>,
    pub target: Option<serde_json::Value>,
    pub outcome: Outcome,
    pub task: Option<TaskInfo>,
    pub http_status: Option<u16>,
    pub attempts: u32,
    pub error: Option<ErrorInfo>,
    pub received_at: Option<DateTime<Utc>>,
    pub submitted_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    /// `planned` only: whether the target was seen to exist (EM) or could not be checked
    /// (DCS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checked: Option<bool>,
}

/// The `data` of an endpoint event (`endpoint.down`, `endpoint.up`, `endpoint.paused`,
/// `endpoint.resumed`): no secrets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointData {
    /// The endpoint's name (`em`, `dcs`, or its configured name).
    pub endpoint: String,
    /// `up`, `down`, `paused` or `resumed`.
    pub state: String,
    /// What failed (down), or how the probe that brought it back was answered (up).
    pub reason: String,
    /// When it entered this state.
    pub since: DateTime<Utc>,
    /// A breaker's pause: the failures among the `finished` requests it counted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failures: Option<u64>,
    /// A breaker's pause: the finished requests its window held.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished: Option<u64>,
}

impl EndpointData {
    /// An endpoint's change of state to `state`, at `since`, without breaker figures.
    pub fn new(endpoint: &str, state: &str, reason: &str, since: DateTime<Utc>) -> Self {
        EndpointData {
            endpoint: endpoint.to_string(),
            state: state.to_string(),
            reason: reason.to_string(),
            since,
            failures: None,
            finished: None,
        }
    }
}

/// A CloudEvents 1.0 envelope; `data` is a request's outcome unless said otherwise.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CloudEvent<D = EventData> {
    pub specversion: String,
    pub id: String,
    pub source: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub subject: Option<String>,
    pub time: DateTime<Utc>,
    pub datacontenttype: String,
    pub data: D,
}

/// An endpoint event.
pub type EndpointEvent = CloudEvent<EndpointData>;

/// The AMQP content type of a structured-mode CloudEvent.
pub const CONTENT_TYPE: &str = "application/cloudevents+json";

/// The stable id of a request's outcome event: one per request and run, so a re-sent copy
/// and a duplicate request's re-published event are recognised as the same. `generation`
/// counts the operator's replays (0 for the first run), so a replayed request's new outcome
/// has an id of its own.
pub fn outcome_event_id(request_id: &str, generation: u32) -> String {
    match generation {
        0 => stable_id(format!("outcome:{request_id}")),
        g => stable_id(format!("outcome:{request_id}:{g}")),
    }
}

/// A name-based (v5) UUID: the same seed always gives the same id.
fn stable_id(seed: impl AsRef<[u8]>) -> String {
    uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, seed.as_ref()).to_string()
}

impl<D> CloudEvent<D> {
    /// The CloudEvents 1.0 envelope every reaper event shares.
    fn envelope(
        id: String,
        worker: &str,
        kind: String,
        subject: Option<String>,
        time: DateTime<Utc>,
        data: D,
    ) -> Self {
        CloudEvent {
            specversion: "1.0".into(),
            id,
            source: format!("reaper/{worker}"),
            kind,
            subject,
            time,
            datacontenttype: "application/json".into(),
            data,
        }
    }
}

impl CloudEvent {
    /// A request's outcome event, with the stable id of that request's outcome. Its type
    /// says success or failure (`already_absent` counts as success unless configured not to).
    pub fn outcome(
        worker: &str,
        data: EventData,
        generation: u32,
        already_absent_is_success: bool,
    ) -> Self {
        let kind = format!(
            "reaper.{}",
            data.outcome.routing_key(already_absent_is_success)
        );
        let id = outcome_event_id(data.request_id.as_deref().unwrap_or_default(), generation);
        let time = data.finished_at.unwrap_or_else(Utc::now);
        Self::envelope(id, worker, kind, data.request_id.clone(), time, data)
    }

    /// The optional `delete.submitted` notice: the remote task is recorded. One per request.
    pub fn submitted(worker: &str, data: EventData) -> Self {
        let request_id = data.request_id.clone().unwrap_or_default();
        let id = stable_id(format!("submitted:{request_id}"));
        let time = data.submitted_at.unwrap_or_else(Utc::now);
        let kind = "reaper.delete.submitted".to_string();
        Self::envelope(id, worker, kind, Some(request_id), time, data)
    }

    /// The `invalid` outcome of a message that could not be accepted (it is dead-lettered):
    /// `reason` says why. Its id is stable for this request id and body, so a redelivered
    /// copy of the same message gets the same id.
    pub fn invalid(worker: &str, request_id: Option<&str>, reason: &str, body: &[u8]) -> Self {
        let mut seed = format!("invalid:{}:", request_id.unwrap_or_default()).into_bytes();
        seed.extend_from_slice(body);
        let now = Utc::now();
        let data = EventData {
            request_id: request_id.map(str::to_string),
            correlation_id: None,
            batch_id: None,
            target: None,
            outcome: Outcome::Invalid,
            task: None,
            http_status: None,
            attempts: 0,
            error: Some(ErrorInfo {
                kind: "invalid".into(),
                message: reason.to_string(),
                ..Default::default()
            }),
            received_at: Some(now),
            submitted_at: None,
            finished_at: Some(now),
            checked: None,
        };
        let kind = "reaper.delete.failed".to_string();
        Self::envelope(
            stable_id(seed),
            worker,
            kind,
            data.request_id.clone(),
            now,
            data,
        )
    }
}

impl EndpointEvent {
    /// The event of an endpoint's change of state: type `reaper.endpoint.<state>`, subject the
    /// endpoint's name, time and `data.since` the moment of the change. Its id is stable for
    /// this change (endpoint, state, moment), so a re-sent copy is recognised as the same.
    pub fn endpoint(worker: &str, data: EndpointData) -> Self {
        let seed = format!(
            "endpoint:{worker}:{}:{}:{}",
            data.endpoint,
            data.state,
            data.since.timestamp_millis()
        );
        let kind = format!("reaper.endpoint.{}", data.state);
        let (subject, time) = (Some(data.endpoint.clone()), data.since);
        Self::envelope(stable_id(seed), worker, kind, subject, time, data)
    }
}

impl<D: Serialize> CloudEvent<D> {
    /// The routing key: the type without its `reaper.` prefix (`delete.succeeded`,
    /// `endpoint.down`, …).
    pub fn routing_key(&self) -> &str {
        self.kind.strip_prefix("reaper.").unwrap_or(&self.kind)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("an event always serialises")
    }
}

/// Converts ledger milliseconds to a UTC time.
pub fn ms_to_time(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

#[cfg(test)]
mod tests;

//! The SQLite ledger: one row per request, its transitions, and the outbox of events not yet
//! confirmed by the broker. The source of truth: after a crash everything resumes from here.
//!
//! One logical step is one transaction. Knows nothing of HTTP, AMQP or event formats: it
//! stores what the engine hands it. Times are Unix milliseconds.

#[macro_use]
mod sql;

mod cancel;
mod claim;
mod controls;
mod durations;
mod file;
mod group;
mod guard;
mod lock;
mod outbox;
mod prune;
mod rate_control;
mod replay;
mod report;
mod schedule;
mod wait;

pub use cancel::{CancelDone, Seen, Selection};
pub use claim::Skip;
pub use controls::{Pause, PauseDone, PauseScope, ResumeDone};
pub use durations::{DurationSample, KEPT_SAMPLES, TaskDuration};
pub use file::commits_so_far;
pub use guard::{BreakerFigures, BreakerRule, CAP_WINDOW_MS, DeleteStart};
pub use lock::WorkerLock;
pub use outbox::{OutboxRow, RetryAt};
pub use prune::Pruned;
pub use rate_control::RateControl;
pub use replay::{REPLAYABLE, Refusal, ReplayDone, Replayed, refusal_reason};
pub use report::{ReportRow, StateCount, Transition};

use crate::event::{CloudEvent, EndpointEvent};
use crate::request::DeleteRequest;
use sqlx::sqlite::SqlitePool;
use sqlx::{Row, Sqlite, Transaction};

/// A request's state (design 1.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Accepted,
    Submitting,
    RetryWait,
    Polling,
    Verifying,
    Succeeded,
    Failed,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Accepted => "accepted",
            State::Submitting => "submitting",
            State::RetryWait => "retry_wait",
            State::Polling => "polling",
            State::Verifying => "verifying",
            State::Succeeded => "succeeded",
            State::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "accepted" => State::Accepted,
            "submitting" => State::Submitting,
            "retry_wait" => State::RetryWait,
            "polling" => State::Polling,
            "verifying" => State::Verifying,
            "succeeded" => State::Succeeded,
            "failed" => State::Failed,
            _ => return None,
        })
    }

    pub fn is_final(self) -> bool {
        matches!(self, State::Succeeded | State::Failed)
    }
}

/// A request row as stored.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct RequestRow {
    pub request_id: String,
    pub target_type: String,
    pub target: String,
    pub endpoint: String,
    pub correlation_id: Option<String>,
    pub batch_id: Option<String>,
    pub not_after: Option<i64>,
    pub state: String,
    pub due_at: Option<i64>,
    pub attempts: i64,
    pub poll_count: i64,
    pub task_id: Option<String>,
    pub task_session: Option<String>,
    pub task_state: Option<String>,
    pub task_operation: Option<String>,
    pub task_success: Option<bool>,
    pub task_message: Option<String>,
    pub http_status: Option<i64>,
    pub last_error: Option<String>,
    pub outcome: Option<String>,
    pub event_id: Option<String>,
    pub received_at: i64,
    pub submitted_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub updated_at: i64,
    /// How many times an operator replayed it (`reaper replay`); 0 for the first run.
    pub generation: i64,
    /// When an operator asked to cancel it (`reaper cancel`).
    pub cancel_requested_at: Option<i64>,
    /// With the cancel: stop its running remote task too (`--stop-running`).
    pub stop_running: bool,
    /// When a poll last saw its remote task still running.
    pub task_running_at: Option<i64>,
}

impl RequestRow {
    pub fn state(&self) -> State {
        State::parse(&self.state).unwrap_or(State::Failed)
    }
}

/// The remote task as last seen, to record on a row.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TaskRecord {
    pub id: String,
    pub session: Option<String>,
    pub state: Option<String>,
    pub operation: Option<String>,
    pub success: Option<bool>,
    pub message: Option<String>,
}

/// One step of a request: its new state and what changed. `None` fields keep their value.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub state: State,
    /// When the engine next acts on it; ignored (cleared) for final states.
    pub due_at: Option<i64>,
    pub task: Option<TaskRecord>,
    pub http_status: Option<u16>,
    /// JSON of the last error.
    pub last_error: Option<String>,
    /// Set once, when the DELETE was answered with a task or a final answer.
    pub submitted_at: Option<i64>,
    /// Count one more poll (or verification).
    pub count_poll: bool,
    /// When a poll saw the task still running (this one).
    pub task_running_at: Option<i64>,
    /// How long the task took, when this step saw it end: written with the step.
    pub duration: Option<DurationSample>,
    /// A short human note for the history.
    pub note: String,
}

impl Change {
    pub fn to(state: State, note: impl Into<String>) -> Self {
        Change {
            state,
            due_at: None,
            task: None,
            http_status: None,
            last_error: None,
            submitted_at: None,
            count_poll: false,
            task_running_at: None,
            duration: None,
            note: note.into(),
        }
    }
    pub fn due(mut self, at: i64) -> Self {
        self.due_at = Some(at);
        self
    }
}

/// A final step: the outcome, recorded with its event in the same transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct Finish {
    pub outcome: String,
    pub finished_at: i64,
}

/// An event to put in the outbox.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub event_id: String,
    pub request_id: Option<String>,
    pub routing_key: String,
    pub payload: String,
}

impl NewEvent {
    /// The outbox row of a request's event (outcome, notice or `invalid`).
    pub fn of_request(event: &CloudEvent) -> Self {
        Self::of(event, event.data.request_id.clone())
    }

    /// The outbox row of an endpoint's event.
    pub fn of_endpoint(event: &EndpointEvent) -> Self {
        Self::of(event, None)
    }

    fn of<D: serde::Serialize>(event: &CloudEvent<D>, request_id: Option<String>) -> Self {
        NewEvent {
            event_id: event.id.clone(),
            request_id,
            routing_key: event.routing_key().to_string(),
            payload: event.to_json(),
        }
    }
}

/// What intake found when recording a request.
#[derive(Debug, Clone, PartialEq)]
pub enum Intake {
    /// A new request, now `accepted`.
    New,
    /// The same request again. When it had already ended, its event was queued again.
    Duplicate { republished: bool },
    /// The same id with a different target: refused, the first request is untouched.
    Conflict { existing_target: String },
}

/// The ledger. Cheap to clone.
#[derive(Clone)]
pub struct Ledger {
    pool: SqlitePool,
    /// The write transaction open now, shared by the writes that arrive while it is.
    group: group::Group,
    /// When this process last deleted counted DELETEs older than the cap's window.
    deletes_pruned_at: std::sync::Arc<std::sync::atomic::AtomicI64>,
}

/// Current time in Unix milliseconds.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl Ledger {
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Records a request (idempotent on `request_id`). Committed before the delivery is acked.
    pub async fn accept(
        &self,
        req: &DeleteRequest,
        endpoint: &str,
        now: i64,
    ) -> anyhow::Result<Intake> {
        let mut intakes = self.accept_batch(&[(req, endpoint)], now).await?;
        Ok(intakes.remove(0))
    }

    /// Records requests in one transaction, each as [`Ledger::accept`] does. The commit is
    /// durable (synchronous=FULL): once it returns, the deliveries may be acked.
    pub async fn accept_batch(
        &self,
        items: &[(&DeleteRequest, &str)],
        now: i64,
    ) -> anyhow::Result<Vec<Intake>> {
        self.durably(async |tx| {
            let mut intakes = Vec::with_capacity(items.len());
            for (req, endpoint) in items {
                intakes.push(accept_in(tx, req, endpoint, now).await?);
            }
            Ok(intakes)
        })
        .await
    }

    /// Puts an event in the outbox on its own: an `invalid` event (no request row), or a
    /// `delete.submitted` notice.
    pub async fn add_event(&self, event: &NewEvent, now: i64) -> anyhow::Result<()> {
        self.add_events(std::slice::from_ref(event), now).await
    }

    /// Puts several events in the outbox in one durable transaction (intake writes the
    /// `invalid` events of rejected deliveries with it before it rejects them).
    pub async fn add_events(&self, events: &[NewEvent], now: i64) -> anyhow::Result<()> {
        self.durably(async |tx| {
            for e in events {
                outbox::insert(tx, e, now).await?;
            }
            Ok(())
        })
        .await
    }

    /// One request as stored.
    pub async fn get(&self, request_id: &str) -> anyhow::Result<Option<RequestRow>> {
        Ok(
            sqlx::query_as::<_, RequestRow>("SELECT * FROM requests WHERE request_id = ?")
                .bind(request_id)
                .fetch_optional(&self.pool)
                .await?,
        )
    }
}

/// Records one request inside a transaction.
async fn accept_in(
    tx: &mut Transaction<'_, Sqlite>,
    req: &DeleteRequest,
    endpoint: &str,
    now: i64,
) -> anyhow::Result<Intake> {
    let target = req.target.to_wire().to_string();
    let inserted = sqlx::query(
        "INSERT INTO requests (request_id, target_type, target, endpoint, correlation_id,
             batch_id, not_after, state, due_at, received_at, updated_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, 'accepted', ?, ?, ?)
         ON CONFLICT (request_id) DO NOTHING",
    )
    .bind(req.request_id.as_str())
    .bind(req.target.type_name())
    .bind(&target)
    .bind(endpoint)
    .bind(&req.correlation_id)
    .bind(&req.batch_id)
    .bind(req.not_after.map(|t| t.timestamp_millis()))
    .bind(now)
    .bind(now)
    .bind(now)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    if inserted == 1 {
        log_transition(
            tx,
            req.request_id.as_str(),
            now,
            State::Accepted,
            "received",
        )
        .await?;
        return Ok(Intake::New);
    }
    let row = sqlx::query("SELECT target, event_id FROM requests WHERE request_id = ?")
        .bind(req.request_id.as_str())
        .fetch_one(&mut **tx)
        .await?;
    let existing: String = row.get("target");
    let same = serde_json::from_str::<serde_json::Value>(&existing)
        .map(|v| v == req.target.to_wire())
        .unwrap_or(false);
    if !same {
        return Ok(Intake::Conflict {
            existing_target: existing,
        });
    }
    let event_id: Option<String> = row.get("event_id");
    let republished = match event_id {
        Some(id) => outbox::requeue(tx, &id, now).await?,
        None => false,
    };
    Ok(Intake::Duplicate { republished })
}

pub(super) async fn log_transition(
    tx: &mut Transaction<'_, Sqlite>,
    request_id: &str,
    at: i64,
    state: State,
    note: &str,
) -> anyhow::Result<()> {
    sqlx::query("INSERT INTO transitions (request_id, at, state, note) VALUES (?, ?, ?, ?)")
        .bind(request_id)
        .bind(at)
        .bind(state.as_str())
        .bind(note)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests;

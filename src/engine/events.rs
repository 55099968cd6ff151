//! A request's events — its one outcome event and the optional `delete.submitted` notice —
//! read from its ledger row as the step has just left it (the ledger owns how a step's
//! changes merge into the row; `event` owns the envelopes and their ids).

use super::Engine;
use crate::event::{CloudEvent, ErrorInfo, EventData, Outcome, TaskInfo, ms_to_time};
use crate::ledger::{NewEvent, RequestRow};

/// The `data` of a request's event, as its row says. `error` is what this step reports
/// (a row keeps its last error even when a later attempt succeeded).
fn event_data(row: &RequestRow, outcome: Outcome, error: Option<ErrorInfo>) -> EventData {
    EventData {
        request_id: Some(row.request_id.clone()),
        correlation_id: row.correlation_id.clone(),
        batch_id: row.batch_id.clone(),
        target: serde_json::from_str(&row.target).ok(),
        outcome,
        task: row.task_id.clone().map(|id| TaskInfo {
            id,
            state: row.task_state.clone(),
            operation: row.task_operation.clone(),
            success: row.task_success,
            message: row.task_message.clone(),
        }),
        http_status: row.http_status.and_then(|s| u16::try_from(s).ok()),
        attempts: u32::try_from(row.attempts).unwrap_or_default(),
        error,
        received_at: Some(ms_to_time(row.received_at)),
        submitted_at: row.submitted_at.map(ms_to_time),
        finished_at: row.finished_at.map(ms_to_time),
        checked: None,
    }
}

impl Engine {
    /// The outcome event of a request that has just ended (`row` is its final row).
    /// `checked` is a dry run's: whether the target was seen to exist.
    pub(super) fn outcome_event(
        &self,
        row: &RequestRow,
        outcome: Outcome,
        error: Option<ErrorInfo>,
        checked: Option<bool>,
    ) -> NewEvent {
        let data = EventData {
            checked,
            ..event_data(row, outcome, error)
        };
        let generation = u32::try_from(row.generation).unwrap_or_default();
        let event = CloudEvent::outcome(
            &self.cfg.worker_name,
            data,
            generation,
            self.cfg.already_absent_is_success,
        );
        NewEvent::of_request(&event)
    }

    /// The `delete.submitted` notice of a request whose remote task was just recorded.
    pub(super) fn submitted_event(&self, row: &RequestRow) -> NewEvent {
        let data = event_data(row, Outcome::Deleted, None);
        NewEvent::of_request(&CloudEvent::submitted(&self.cfg.worker_name, data))
    }
}

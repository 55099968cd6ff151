//! The events a request's steps produce: its one outcome event (with a stable id) and the
//! optional `delete.submitted` notice. Pure: builds payloads from a ledger row.

use super::{Ending, Engine};
use crate::event::{CloudEvent, EventData, Outcome, TaskInfo, ms_to_time};
use crate::ledger::{NewEvent, RequestRow, TaskRecord};

/// The stable id of a request's outcome event.
pub fn outcome_event_id(request_id: &str) -> String {
    uuid::Uuid::new_v5(
        &uuid::Uuid::NAMESPACE_OID,
        format!("outcome:{request_id}").as_bytes(),
    )
    .to_string()
}

impl Engine {
    pub(super) fn event_data(
        &self,
        row: &RequestRow,
        outcome: Outcome,
        task: Option<TaskRecord>,
        now: i64,
    ) -> EventData {
        let task = task.map(|t| TaskInfo {
            id: t.id,
            state: t.state.or_else(|| row.task_state.clone()),
            operation: t.operation.or_else(|| row.task_operation.clone()),
            success: t.success.or(row.task_success),
            message: t.message.or_else(|| row.task_message.clone()),
        });
        let task = task.or_else(|| {
            row.task_id.clone().map(|id| TaskInfo {
                id,
                state: row.task_state.clone(),
                operation: row.task_operation.clone(),
                success: row.task_success,
                message: row.task_message.clone(),
            })
        });
        EventData {
            request_id: Some(row.request_id.clone()),
            correlation_id: row.correlation_id.clone(),
            batch_id: row.batch_id.clone(),
            target: serde_json::from_str(&row.target).ok(),
            outcome,
            task,
            http_status: row.http_status.map(|s| s as u16),
            attempts: row.attempts as u32,
            error: None,
            received_at: Some(ms_to_time(row.received_at)),
            submitted_at: row.submitted_at.map(ms_to_time),
            finished_at: Some(ms_to_time(now)),
        }
    }

    /// The outcome event of a request that ends as `ending`.
    pub(super) fn outcome_event(&self, row: &RequestRow, ending: &Ending, now: i64) -> CloudEvent {
        let mut data = self.event_data(row, ending.outcome, ending.task.clone(), now);
        data.error = ending.error.clone();
        data.http_status = ending.http_status.or(data.http_status);
        if data.submitted_at.is_none() && data.http_status.is_some() {
            data.submitted_at = Some(ms_to_time(now));
        }
        CloudEvent::outcome(
            outcome_event_id(&row.request_id),
            &self.cfg.worker_name,
            data,
            self.cfg.already_absent_is_success,
        )
    }

    /// The optional `delete.submitted` notice, when the remote task is recorded.
    pub(super) fn submitted_event(
        &self,
        row: &RequestRow,
        task: &TaskRecord,
        now: i64,
    ) -> NewEvent {
        let mut data = self.event_data(row, Outcome::Deleted, Some(task.clone()), now);
        data.finished_at = None;
        data.submitted_at = Some(ms_to_time(now));
        let id = uuid::Uuid::new_v5(
            &uuid::Uuid::NAMESPACE_OID,
            format!("submitted:{}", row.request_id).as_bytes(),
        )
        .to_string();
        let mut ev = CloudEvent::outcome(id.clone(), &self.cfg.worker_name, data, true);
        ev.kind = "reaper.delete.submitted".into();
        NewEvent {
            event_id: id,
            request_id: Some(row.request_id.clone()),
            routing_key: "delete.submitted".into(),
            payload: ev.to_json(),
        }
    }
}

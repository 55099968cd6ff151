//! One step of one request: dispatch (DELETE), poll (task), or verify (GET), with the ledger
//! committed before and after each remote side effect (design 2.2). DCS requests are only
//! ever dispatched: their DELETE is synchronous. A step whose endpoint is down sends nothing
//! and leaves its request waiting; a DELETE that met endpoint trouble gives its attempt back.

use super::remote::unsupported;
use super::{Ending, Engine, LEASE, Next, WAIT_RECHECK};
use crate::em::EmClient;
use crate::event::{ErrorInfo, Outcome};
use crate::ledger::{Change, Finish, RequestRow, State, TaskRecord, now_ms};
use crate::request::Target;
use std::sync::Arc;

fn ms(d: std::time::Duration) -> i64 {
    d.as_millis() as i64
}

impl Engine {
    /// Moves one claimed request one step.
    pub(super) async fn step(&self, row: RequestRow) -> anyhow::Result<()> {
        let target = serde_json::from_str(&row.target)
            .map_err(|e| e.to_string())
            .and_then(|v| Target::from_wire(&v));
        let target = match target {
            Ok(t) => t,
            Err(e) => {
                let error = unsupported(format!("stored target is unreadable: {e}"));
                return self
                    .finish(&row, Ending::because(Outcome::Refused, Some(error)))
                    .await;
            }
        };
        match row.state() {
            State::Accepted | State::RetryWait | State::Submitting => {
                self.dispatch(row, target).await
            }
            State::Polling => self.poll(row).await,
            State::Verifying => self.verify(row, target).await,
            State::Succeeded | State::Failed => Ok(()),
        }
    }

    async fn dispatch(&self, row: RequestRow, target: Target) -> anyhow::Result<()> {
        let now = now_ms();
        if row.not_after.is_some_and(|t| t <= now) {
            let error = ErrorInfo {
                kind: "expired".into(),
                message: "not_after passed before the request could be sent".into(),
                ..Default::default()
            };
            return self
                .finish(&row, Ending::because(Outcome::Expired, Some(error)))
                .await;
        }
        if row.attempts >= i64::from(self.cfg.max_attempts) {
            let error = last_error(&row);
            return self
                .finish(&row, Ending::because(Outcome::RetriesExhausted, error))
                .await;
        }
        let remote = match self.remote(&row, &target) {
            Ok(r) => r,
            Err(error) => {
                return self
                    .finish(&row, Ending::because(Outcome::Refused, Some(error)))
                    .await;
            }
        };
        if self.is_down(&row.endpoint) {
            return self.wait_for_endpoint(&row).await;
        }
        let attempt = self
            .ledger
            .begin_attempt(&row.request_id, now, now + ms(LEASE))
            .await?;
        let row = RequestRow {
            attempts: i64::from(attempt),
            ..row
        };
        let next = remote.delete().await;
        let now = now_ms();
        match next {
            Next::Finish(ending) => self.finish(&row, ending).await,
            Next::Again { error } if attempt >= self.cfg.max_attempts => {
                self.finish(
                    &row,
                    Ending::because(Outcome::RetriesExhausted, Some(error)),
                )
                .await
            }
            Next::Again { error } => {
                let change = Change {
                    last_error: Some(json(&error)),
                    ..Change::to(
                        State::RetryWait,
                        format!("attempt {attempt} failed: {}", error.message),
                    )
                    .due(now + ms(self.cfg.retry.delay(attempt)))
                };
                self.ledger
                    .advance(&row.request_id, &change, now, None)
                    .await
            }
            Next::Wait { reason } => {
                tracing::debug!(request_id = %row.request_id, %reason, "endpoint trouble: attempt given back");
                let note =
                    format!("attempt {attempt} not counted, waiting for the endpoint: {reason}");
                let due = now + ms(WAIT_RECHECK);
                self.ledger
                    .wait_for_endpoint(&row.request_id, row.state(), due, &note, now)
                    .await
            }
            Next::Poll { task, http_status } => {
                let notice = self
                    .cfg
                    .publish_submitted
                    .then(|| self.submitted_event(&row, &task, now));
                let change = Change {
                    submitted_at: Some(now),
                    http_status,
                    note: format!("task {} recorded", task.id),
                    task: Some(task),
                    ..Change::to(State::Polling, "").due(now + ms(self.cfg.poll.delay(1)))
                };
                self.ledger
                    .advance(&row.request_id, &change, now, notice.as_ref())
                    .await?;
                if notice.is_some() {
                    self.outbox_wake.notify_one();
                }
                Ok(())
            }
            Next::Verify {
                task,
                note,
                http_status,
            } => {
                let change = Change {
                    submitted_at: Some(now),
                    task,
                    http_status,
                    ..Change::to(State::Verifying, note).due(now)
                };
                self.ledger
                    .advance(&row.request_id, &change, now, None)
                    .await
            }
            // Only a verification answers this; a DELETE never does.
            Next::Present => self.move_to_verify(&row, "the resource still exists").await,
        }
    }

    async fn poll(&self, row: RequestRow) -> anyhow::Result<()> {
        let Some(client) = self.follow_up_client(&row).await? else {
            return Ok(());
        };
        let (Some(task_id), Some(session)) = (row.task_id.clone(), row.task_session.clone()) else {
            return self.move_to_verify(&row, "no task recorded").await;
        };
        let next = super::outcome::after_poll(client.get_task(&task_id, &session).await);
        self.after_follow_up(&row, State::Polling, next).await
    }

    async fn verify(&self, row: RequestRow, target: Target) -> anyhow::Result<()> {
        let Some(client) = self.follow_up_client(&row).await? else {
            return Ok(());
        };
        let next = super::outcome::after_verify(client.presence(&target.path()).await);
        self.after_follow_up(&row, State::Verifying, next).await
    }

    /// The client to follow a task up with, or `None` when the request has just been ended
    /// instead: its endpoint is no longer configured. A task past its timeout is followed up
    /// too: only a remote check can say that it is still running (design 2.6).
    async fn follow_up_client(&self, row: &RequestRow) -> anyhow::Result<Option<Arc<EmClient>>> {
        match self.em_client(row) {
            Ok(_) if self.is_down(&row.endpoint) => {
                self.wait_for_endpoint(row).await?;
                Ok(None)
            }
            Ok(c) => Ok(Some(Arc::clone(c))),
            Err(error) => {
                self.finish(row, Ending::because(Outcome::Refused, Some(error)))
                    .await?;
                Ok(None)
            }
        }
    }

    /// Applies the result of a poll or a verification.
    async fn after_follow_up(
        &self,
        row: &RequestRow,
        state: State,
        next: Next,
    ) -> anyhow::Result<()> {
        let now = now_ms();
        let later = now + ms(self.cfg.poll.delay(row.poll_count as u32 + 1));
        // The remote has just confirmed that the work is still under way: past the task's
        // limit, that is a timeout. Time the worker was down never ends a request by itself.
        if self.past_task_timeout(row) {
            match next {
                Next::Poll { task, .. } => return self.timed_out(row, Some(task)).await,
                Next::Present => return self.timed_out(row, None).await,
                _ => {}
            }
        }
        match next {
            // The DELETE's status stays the one recorded when it was answered.
            Next::Finish(ending) => {
                let ending = Ending {
                    http_status: None,
                    ..ending
                };
                self.finish(row, ending).await
            }
            Next::Poll { task, .. } => {
                let change = Change {
                    task: Some(task),
                    count_poll: true,
                    ..Change::to(state, "still running").due(later)
                };
                self.ledger
                    .advance(&row.request_id, &change, now, None)
                    .await
            }
            Next::Again { error } => {
                let change = Change {
                    last_error: Some(json(&error)),
                    count_poll: true,
                    ..Change::to(state, error.message.clone()).due(later)
                };
                self.ledger
                    .advance(&row.request_id, &change, now, None)
                    .await
            }
            Next::Present => {
                let change = Change {
                    count_poll: true,
                    ..Change::to(state, "the resource still exists").due(later)
                };
                self.ledger
                    .advance(&row.request_id, &change, now, None)
                    .await
            }
            Next::Verify { task, note, .. } => {
                let change = Change {
                    task,
                    ..Change::to(State::Verifying, note).due(now)
                };
                self.ledger
                    .advance(&row.request_id, &change, now, None)
                    .await
            }
            Next::Wait { .. } => self.wait_for_endpoint(row).await,
        }
    }

    /// Leaves a request as it is, due again shortly: the scheduler holds it while its
    /// endpoint is down. Nothing is counted and no history is written.
    async fn wait_for_endpoint(&self, row: &RequestRow) -> anyhow::Result<()> {
        let due = now_ms() + ms(WAIT_RECHECK);
        self.ledger.release(&row.request_id, due).await
    }

    async fn move_to_verify(&self, row: &RequestRow, note: &str) -> anyhow::Result<()> {
        let now = now_ms();
        let change = Change::to(State::Verifying, note).due(now);
        self.ledger
            .advance(&row.request_id, &change, now, None)
            .await
    }

    fn past_task_timeout(&self, row: &RequestRow) -> bool {
        let started = row.submitted_at.unwrap_or(row.received_at);
        now_ms() - started > ms(self.cfg.task_timeout)
    }

    /// Ends a request whose task was just seen still running past the task timeout.
    async fn timed_out(&self, row: &RequestRow, task: Option<TaskRecord>) -> anyhow::Result<()> {
        let error = ErrorInfo {
            kind: "timeout".into(),
            message: format!(
                "the task did not end within {}",
                humantime::format_duration(self.cfg.task_timeout)
            ),
            ..Default::default()
        };
        let ending = Ending {
            task,
            ..Ending::because(Outcome::TimedOut, Some(error))
        };
        self.finish(row, ending).await
    }

    /// Ends a request: final state and its event, in one transaction.
    async fn finish(&self, row: &RequestRow, ending: Ending) -> anyhow::Result<()> {
        let now = now_ms();
        let outcome = ending.outcome;
        let state = if outcome.is_success(self.cfg.already_absent_is_success) {
            State::Succeeded
        } else {
            State::Failed
        };
        let event = self.outcome_event(row, &ending, now);
        let Ending {
            error,
            task,
            http_status,
            ..
        } = ending;
        let change = Change {
            task,
            http_status,
            last_error: error.as_ref().map(json),
            submitted_at: None,
            ..Change::to(state, error.map(|e| e.message).unwrap_or_default())
        };
        let finish = Finish {
            outcome: outcome.as_str().into(),
            finished_at: now,
            event_id: event.id.clone(),
            routing_key: event.routing_key().to_string(),
            payload: event.to_json(),
        };
        self.ledger
            .finish(&row.request_id, &change, &finish)
            .await?;
        metrics::counter!("reaper_outcomes_total",
            "endpoint" => row.endpoint.clone(), "outcome" => outcome.as_str())
        .increment(1);
        tracing::debug!(request_id = %row.request_id, outcome = outcome.as_str(), "request finished");
        self.outbox_wake.notify_one();
        Ok(())
    }
}

fn last_error(row: &RequestRow) -> Option<ErrorInfo> {
    row.last_error
        .as_deref()
        .and_then(|s| serde_json::from_str(s).ok())
}

fn json(e: &ErrorInfo) -> String {
    serde_json::to_string(e).expect("an ErrorInfo always serialises")
}

#[cfg(test)]
mod tests;

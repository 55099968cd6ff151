//! One step of one request: `step` picks it by the request's state, `dispatch` sends the
//! DELETE, `finish` ends the request with its event; the EM follow-ups (task polls,
//! verifications) are in `em::follow`. The ledger is committed before and after each remote
//! side effect (design 2.2). DCS requests are only ever dispatched: their DELETE is
//! synchronous. A step whose endpoint is down sends nothing and leaves its request waiting;
//! a DELETE that met endpoint trouble gives its attempt back.

use super::polls::operation_of;
use super::rails::Screen;
use super::remote::{Remote, unsupported};
use super::{Ending, Engine, LEASE, Next, WAIT_RECHECK, ms};
use crate::event::{ErrorInfo, Outcome};
use crate::ledger::{
    Change, DeleteStart, DurationSample, Finish, RequestRow, State, TaskRecord, now_ms,
};
use crate::request::Target;

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
        if let Some(ending) = self.unsendable(&row, now) {
            return self.finish(&row, ending).await;
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
        match self.screen(&row, &target).await {
            Screen::Pass => {}
            Screen::End { ending, checked } => {
                return self.finish_with(&row, ending, checked).await;
            }
            Screen::Hold { reason } => {
                tracing::debug!(request_id = %row.request_id, %reason, "held by a guard rail");
                return self.wait_for_endpoint(&row).await;
            }
            Screen::Again { error } => {
                let (row, attempt) = self.count_attempt(row, now).await?;
                return self
                    .after_delete(&row, attempt, Next::Again { error })
                    .await;
            }
        }
        self.send_delete(row, remote).await
    }

    /// Sends the DELETE unless, at the last moment, an operator cancelled the request,
    /// paused its endpoint or batch, or the endpoint reached its delete cap.
    async fn send_delete(&self, row: RequestRow, remote: Remote) -> anyhow::Result<()> {
        // Decided only when there is room to send at once: a pause or the cap reached while
        // this request waited is obeyed.
        let _gate = self.gates.enter(&row.endpoint).await;
        if !self.active.allows(&row.endpoint) {
            // The worker lost its election while this request waited: the DELETE is not sent.
            return self.wait_for_endpoint(&row).await;
        }
        let now = now_ms();
        let cap = self.guard(&row.endpoint).max_deletes_per_hour;
        let lease = now + ms(LEASE);
        let attempt = match self
            .ledger
            .begin_delete(&row.request_id, now, lease, cap)
            .await?
        {
            DeleteStart::Begun { attempt } => attempt,
            DeleteStart::Cancelled => return self.finish(&row, cancelled()).await,
            DeleteStart::Held { reason } => {
                tracing::debug!(request_id = %row.request_id, %reason, "held: paused");
                return self.wait_for_endpoint(&row).await;
            }
            DeleteStart::CapReached { until } => {
                self.cap_reached(&row.endpoint, until);
                return self.ledger.release(&row.request_id, until).await;
            }
        };
        self.cap_clear(&row.endpoint);
        let row = RequestRow {
            attempts: i64::from(attempt),
            ..row
        };
        let next = remote.delete().await;
        self.after_delete(&row, attempt, next).await
    }

    /// Counts one more attempt, committed before the remote call it stands for.
    async fn count_attempt(&self, row: RequestRow, now: i64) -> anyhow::Result<(RequestRow, u32)> {
        let attempt = self
            .ledger
            .begin_attempt(&row.request_id, now, now + ms(LEASE))
            .await?;
        let attempts = i64::from(attempt);
        Ok((RequestRow { attempts, ..row }, attempt))
    }

    /// Why a request must end without being sent (again): an operator cancelled it, its
    /// deadline passed, or its attempts are spent.
    fn unsendable(&self, row: &RequestRow, now: i64) -> Option<Ending> {
        if row.cancel_requested_at.is_some() {
            return Some(cancelled());
        }
        if row.not_after.is_some_and(|t| t <= now) {
            let error = ErrorInfo {
                kind: "expired".into(),
                message: "not_after passed before the request could be sent".into(),
                ..Default::default()
            };
            return Some(Ending::because(Outcome::Expired, Some(error)));
        }
        (row.attempts >= i64::from(self.cfg.max_attempts))
            .then(|| Ending::because(Outcome::RetriesExhausted, last_error(row)))
    }

    /// Applies what the DELETE of attempt `attempt` was answered.
    async fn after_delete(&self, row: &RequestRow, attempt: u32, next: Next) -> anyhow::Result<()> {
        let now = now_ms();
        let change = match next {
            Next::Finish(ending) => return self.finish(row, ending).await,
            Next::Again { error } if attempt >= self.cfg.max_attempts => {
                let ending = Ending::because(Outcome::RetriesExhausted, Some(error));
                return self.finish(row, ending).await;
            }
            Next::Wait { reason } => {
                tracing::debug!(request_id = %row.request_id, %reason, "endpoint trouble: attempt given back");
                let note =
                    format!("attempt {attempt} not counted, waiting for the endpoint: {reason}");
                let due = now + ms(WAIT_RECHECK);
                return self
                    .ledger
                    .wait_for_endpoint(&row.request_id, row.state(), due, &note, now)
                    .await;
            }
            Next::Poll { task, http_status } => {
                return self.record_task(row, task, http_status, now).await;
            }
            // Only a verification answers this; a DELETE never does.
            Next::Present => return self.move_to_verify(row, "the resource still exists").await,
            Next::Again { error } => Change {
                last_error: Some(json(&error)),
                ..Change::to(
                    State::RetryWait,
                    format!("attempt {attempt} failed: {}", error.message),
                )
                .due(now + ms(self.cfg.retry.delay(attempt)))
            },
            Next::Verify {
                task,
                note,
                http_status,
            } => Change {
                submitted_at: Some(now),
                task,
                http_status,
                ..Change::to(State::Verifying, note).due(now)
            },
        };
        self.ledger
            .advance(&row.request_id, &change, now, None)
            .await
    }

    /// The DELETE was answered with a running task: recorded for polling, with the
    /// `delete.submitted` notice when enabled.
    async fn record_task(
        &self,
        row: &RequestRow,
        task: TaskRecord,
        http_status: Option<u16>,
        now: i64,
    ) -> anyhow::Result<()> {
        let operation = operation_of(task.operation.as_deref(), &row.target_type);
        let first_poll = self.polls.first_delay(&row.endpoint, &operation).await?;
        let change = Change {
            submitted_at: Some(now),
            http_status,
            note: format!("task {} recorded", task.id),
            task: Some(task),
            ..Change::to(State::Polling, "").due(now + ms(first_poll))
        };
        let notice = |row: &RequestRow| self.submitted_event(row);
        let notice = self
            .cfg
            .publish_submitted
            .then_some(&notice as &(dyn Fn(&RequestRow) -> _ + Sync));
        self.ledger
            .advance(&row.request_id, &change, now, notice)
            .await?;
        if notice.is_some() {
            self.outbox_wake.notify_one();
        }
        Ok(())
    }

    /// Leaves a request as it is, due again shortly: the scheduler holds it while its
    /// endpoint is down. Nothing is counted and no history is written.
    pub(super) async fn wait_for_endpoint(&self, row: &RequestRow) -> anyhow::Result<()> {
        let due = now_ms() + ms(WAIT_RECHECK);
        self.ledger.release(&row.request_id, due).await
    }

    pub(super) async fn move_to_verify(&self, row: &RequestRow, note: &str) -> anyhow::Result<()> {
        let now = now_ms();
        let change = Change::to(State::Verifying, note).due(now);
        self.ledger
            .advance(&row.request_id, &change, now, None)
            .await
    }

    /// Ends a request: final state and its event, in one transaction.
    pub(super) async fn finish(&self, row: &RequestRow, ending: Ending) -> anyhow::Result<()> {
        self.finish_with(row, ending, None).await
    }

    /// [`Engine::finish`], with a dry run's `checked` for the event.
    pub(super) async fn finish_with(
        &self,
        row: &RequestRow,
        ending: Ending,
        checked: Option<bool>,
    ) -> anyhow::Result<()> {
        self.finish_seen(row, ending, checked, None).await
    }

    /// [`Engine::finish_with`], with how long the request's task took when a poll has just
    /// seen it end (recorded with the ending, then learned).
    pub(super) async fn finish_seen(
        &self,
        row: &RequestRow,
        ending: Ending,
        checked: Option<bool>,
        duration: Option<DurationSample>,
    ) -> anyhow::Result<()> {
        let now = now_ms();
        let Ending {
            outcome,
            error,
            task,
            http_status,
        } = ending;
        // A plan deleted nothing and nothing went wrong.
        let succeeded = outcome.is_success(self.cfg.already_absent_is_success);
        let state = if succeeded || outcome == Outcome::Planned {
            State::Succeeded
        } else {
            State::Failed
        };
        let change = Change {
            task,
            http_status,
            last_error: error.as_ref().map(json),
            // An answer that ends the request is also when it was submitted, if not before.
            submitted_at: http_status.map(|_| now),
            ..Change::to(
                state,
                error
                    .as_ref()
                    .map(|e| e.message.clone())
                    .unwrap_or_default(),
            )
        };
        let change = Change { duration, ..change };
        let finish = Finish {
            outcome: outcome.as_str().into(),
            finished_at: now,
        };
        let error_kind = error.as_ref().map(|e| e.kind.clone());
        let event = |row: &RequestRow| self.outcome_event(row, outcome, error, checked);
        self.ledger
            .finish(&row.request_id, &change, &finish, event)
            .await?;
        if let Some(sample) = &change.duration {
            self.polls.learn(sample).await?;
        }
        metrics::counter!("reaper_outcomes_total",
            "endpoint" => row.endpoint.clone(), "outcome" => outcome.as_str())
        .increment(1);
        tracing::debug!(request_id = %row.request_id, outcome = outcome.as_str(), "request finished");
        if outcome.is_breaker_failure(error_kind.as_deref()) {
            self.check_breaker(&row.endpoint, now).await?;
        }
        self.outbox_wake.notify_one();
        Ok(())
    }
}

/// The ending of a request an operator cancelled (`reaper cancel`).
pub(super) fn cancelled() -> Ending {
    let error = ErrorInfo {
        kind: "cancelled".into(),
        message: "cancelled by an operator".into(),
        ..Default::default()
    };
    Ending::because(Outcome::Cancelled, Some(error))
}

fn last_error(row: &RequestRow) -> Option<ErrorInfo> {
    row.last_error
        .as_deref()
        .and_then(|s| serde_json::from_str(s).ok())
}

pub(super) fn json(e: &ErrorInfo) -> String {
    serde_json::to_string(e).expect("an ErrorInfo always serialises")
}

#[cfg(test)]
mod tests;

//! EM follow-up steps: polling a request's remote task, and verifying a deletion by GET on
//! the resource when the task cannot be followed. A task past its timeout ends `timed_out`
//! only when a remote check has just said the work is still under way (design 2.6).

use super::super::polls::operation_of;
use super::super::polls::plan::Task;
use super::super::step::json;
use super::super::{Ending, Engine, Next, ms};
use super::mappings::{after_poll, after_stop, after_verify};
use crate::em::EmClient;
use crate::em::Poll;
use crate::event::{ErrorInfo, Outcome};
use crate::ledger::{Change, DurationSample, RequestRow, State, TaskDuration, TaskRecord, now_ms};
use crate::request::Target;
use std::sync::Arc;
use std::time::Duration;

impl Engine {
    pub(in crate::engine) async fn poll(&self, row: RequestRow) -> anyhow::Result<()> {
        let Some(client) = self.follow_up_client(&row).await? else {
            return Ok(());
        };
        let (Some(task_id), Some(session)) = (row.task_id.clone(), row.task_session.clone()) else {
            return self.move_to_verify(&row, "no task recorded").await;
        };
        // The task was running when this poll was sent if it answers so, and had ended by
        // its answer if it answers that: the bounds of its duration.
        let sent = now_ms();
        let polled = client.get_task(&task_id, &session).await;
        let running = matches!(&polled, Ok(Poll::Task(t)) if !t.state.is_terminal());
        // `reaper cancel --stop-running`: a task still running is stopped (seed 000); one
        // that already ended keeps its outcome.
        if running && row.cancel_requested_at.is_some() && row.stop_running {
            let next = after_stop(client.stop_task(&task_id, &session).await);
            return self.after_follow_up(&row, State::Polling, next, None).await;
        }
        self.after_follow_up(&row, State::Polling, after_poll(polled), Some(sent))
            .await
    }

    pub(in crate::engine) async fn verify(
        &self,
        row: RequestRow,
        target: Target,
    ) -> anyhow::Result<()> {
        let Some(client) = self.follow_up_client(&row).await? else {
            return Ok(());
        };
        let next = after_verify(client.presence(&target.path()).await);
        self.after_follow_up(&row, State::Verifying, next, None)
            .await
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

    /// Applies the result of a poll (sent at `sent`) or a verification (`sent` is `None`).
    async fn after_follow_up(
        &self,
        row: &RequestRow,
        state: State,
        next: Next,
        sent: Option<i64>,
    ) -> anyhow::Result<()> {
        let now = now_ms();
        // The remote has just confirmed that the work is still under way: past the task's
        // limit, that is a timeout. Time the worker was down never ends a request by itself.
        if self.past_task_timeout(row) {
            match next {
                Next::Poll { task, .. } => return self.timed_out(row, Some(task)).await,
                Next::Present => return self.timed_out(row, None).await,
                _ => {}
            }
        }
        // A task a poll saw ended (with or without a result): how long it took.
        let seen = |task: &Option<TaskRecord>| {
            let task = task.as_ref().filter(|_| sent.is_some())?;
            duration_seen(row, task, now)
        };
        let change = match next {
            // The DELETE's status stays the one recorded when it was answered.
            Next::Finish(ending) => {
                let duration = seen(&ending.task);
                let ending = Ending {
                    http_status: None,
                    ..ending
                };
                return self.finish_seen(row, ending, None, duration).await;
            }
            Next::Wait { .. } => return self.wait_for_endpoint(row).await,
            Next::Verify { task, note, .. } => Change {
                duration: seen(&task),
                task,
                ..Change::to(State::Verifying, note).due(now)
            },
            Next::Poll { task, .. } => Change {
                task: Some(task),
                task_running_at: sent,
                count_poll: true,
                ..Change::to(state, "still running").due(self.next_poll(row, state, now).await?)
            },
            Next::Again { error } => Change {
                last_error: Some(json(&error)),
                count_poll: true,
                ..Change::to(state, error.message.clone())
                    .due(self.next_poll(row, state, now).await?)
            },
            Next::Present => Change {
                count_poll: true,
                ..Change::to(state, "the resource still exists")
                    .due(self.next_poll(row, state, now).await?)
            },
        };
        self.ledger
            .advance(&row.request_id, &change, now, None)
            .await?;
        if let Some(sample) = &change.duration {
            self.polls.learn(sample).await?;
        }
        Ok(())
    }

    /// When a request in `state` is next followed up after a look at `now`: a task's poll as
    /// the planner says (learned for its kind, else the backoff policy); a verification
    /// after the backoff policy.
    async fn next_poll(&self, row: &RequestRow, state: State, now: i64) -> anyhow::Result<i64> {
        let polls = row.poll_count as u32;
        let recorded = row.submitted_at.filter(|_| state == State::Polling);
        let Some(recorded) = recorded else {
            return Ok(now + ms(self.cfg.poll.delay(polls + 1)));
        };
        let task = Task {
            elapsed: Duration::from_millis((now - recorded).max(0) as u64),
            polls,
        };
        let operation = operation_of(row.task_operation.as_deref(), &row.target_type);
        let delay = self
            .polls
            .next_delay(&row.endpoint, &operation, task, now)
            .await?;
        Ok(now + ms(delay))
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
}

/// How long the task of `row` took, seen ended (as `task`) by a poll answered at `now`:
/// from its DELETE's answer, running when a poll last saw it so, ended by `now`.
fn duration_seen(row: &RequestRow, task: &TaskRecord, now: i64) -> Option<DurationSample> {
    let duration = TaskDuration::between(row.submitted_at?, row.task_running_at, now)?;
    let operation = task.operation.as_deref().or(row.task_operation.as_deref());
    Some(DurationSample {
        endpoint: row.endpoint.clone(),
        operation: operation_of(operation, &row.target_type),
        duration,
    })
}

//! The engine's side of the ledger: leases, attempts, and the steps of a request (one
//! transaction each; a final step writes its event with it). Claiming due work is in
//! `claim.rs`.

use super::{
    Change, Finish, Ledger, NewEvent, RequestRow, State, durations, log_transition, outbox,
};
use sqlx::{Sqlite, Transaction};

impl Ledger {
    /// Unfinished requests (the backlog).
    pub async fn backlog(&self) -> anyhow::Result<u64> {
        let v: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM requests WHERE due_at IS NOT NULL")
            .fetch_one(&self.pool)
            .await?;
        Ok(v as u64)
    }

    /// At start-up: releases the leases of a previous process (the steps it had in flight
    /// become due again at their own due time). Every other request keeps its due time:
    /// nothing is pulled forward. Returns how many leases were released.
    pub async fn resume(&self) -> anyhow::Result<u64> {
        let n = sqlx::query("UPDATE requests SET lease_until = NULL WHERE lease_until IS NOT NULL")
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(n)
    }

    /// At start-up: spreads the follow-ups (polls, verifications) of `endpoint` that are due
    /// before `now + spacing_ms × their number` so that they come at most one every
    /// `spacing_ms`, earliest first. After a restart every task of an older logon session
    /// needs a verification; spread, they cannot burst against the endpoint, and new work is
    /// served beside them. A follow-up due later keeps its time. Returns how many moved.
    pub async fn spread_follow_ups(
        &self,
        endpoint: &str,
        now: i64,
        spacing_ms: i64,
    ) -> anyhow::Result<u64> {
        let n = sqlx::query(
            "UPDATE requests SET due_at = spread.at
             FROM (SELECT request_id,
                          ? + (ROW_NUMBER() OVER (ORDER BY due_at, request_id) - 1) * ? AS at,
                          due_at AS was
                   FROM requests
                   WHERE endpoint = ? AND state IN ('polling', 'verifying')
                     AND due_at IS NOT NULL) AS spread
             WHERE requests.request_id = spread.request_id AND spread.at > spread.was",
        )
        .bind(now)
        .bind(spacing_ms)
        .bind(endpoint)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(n)
    }

    /// Makes an unfinished request due at `at` (after a step failed half-way).
    pub async fn release(&self, request_id: &str, at: i64) -> anyhow::Result<()> {
        sqlx::query(
            "UPDATE requests SET due_at = ?, lease_until = NULL
             WHERE request_id = ? AND due_at IS NOT NULL",
        )
        .bind(at)
        .bind(request_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Marks a request `submitting` and counts the attempt, before the DELETE is sent.
    /// Returns the attempt number.
    pub async fn begin_attempt(
        &self,
        request_id: &str,
        now: i64,
        lease_until: i64,
    ) -> anyhow::Result<u32> {
        let mut tx = self.write().await?;
        let attempts = count_attempt(&mut tx, request_id, now, lease_until).await?;
        tx.commit().await?;
        Ok(attempts)
    }

    /// Gives back the attempt [`Ledger::begin_attempt`] counted for a step that the worker
    /// itself aborted (the step panicked): an attempt that never got to its end is not one
    /// the request spent. Only while the request is still `submitting` with exactly one
    /// attempt more than the `claimed_attempts` it had when its step was claimed, so an
    /// attempt whose result was recorded is never undone. Returns whether one was given back.
    pub async fn give_back_attempt(
        &self,
        request_id: &str,
        claimed_attempts: i64,
        now: i64,
    ) -> anyhow::Result<bool> {
        let mut tx = self.write().await?;
        let given = sqlx::query(
            "UPDATE requests SET attempts = attempts - 1, updated_at = ?
             WHERE request_id = ? AND state = 'submitting' AND attempts = ?",
        )
        .bind(now)
        .bind(request_id)
        .bind(claimed_attempts + 1)
        .execute(&mut **tx)
        .await?
        .rows_affected()
            == 1;
        if given {
            let note = format!(
                "attempt {} given back: the worker aborted its step",
                claimed_attempts + 1
            );
            log_transition(&mut tx, request_id, now, State::Submitting, &note).await?;
        }
        tx.commit().await?;
        Ok(given)
    }

    /// Applies one non-final step, with an optional notice event (`delete.submitted`) built
    /// from the row as this step leaves it.
    pub async fn advance(
        &self,
        request_id: &str,
        change: &Change,
        now: i64,
        notice: Option<&(dyn Fn(&RequestRow) -> NewEvent + Sync)>,
    ) -> anyhow::Result<()> {
        debug_assert!(!change.state.is_final(), "final steps go through finish()");
        let mut tx = self.write().await?;
        let row = apply(&mut tx, request_id, change, now, None).await?;
        if let Some(notice) = notice {
            outbox::insert(&mut tx, &notice(&row), now).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Applies a final step and writes its event to the outbox, in one transaction. The event
    /// is built from the row with the step applied: what the ledger keeps is what it says.
    pub async fn finish(
        &self,
        request_id: &str,
        change: &Change,
        finish: &Finish,
        event: impl FnOnce(&RequestRow) -> NewEvent,
    ) -> anyhow::Result<()> {
        debug_assert!(change.state.is_final());
        let mut tx = self.write().await?;
        let row = apply(
            &mut tx,
            request_id,
            change,
            finish.finished_at,
            Some(finish),
        )
        .await?;
        let event = event(&row);
        sqlx::query("UPDATE requests SET event_id = ? WHERE request_id = ?")
            .bind(&event.event_id)
            .bind(request_id)
            .execute(&mut **tx)
            .await?;
        outbox::insert(&mut tx, &event, finish.finished_at).await?;
        tx.commit().await?;
        Ok(())
    }
}

/// Marks a request `submitting` and counts one more attempt, with its history row, inside
/// a transaction. Returns the attempt number.
pub(super) async fn count_attempt(
    tx: &mut Transaction<'_, Sqlite>,
    request_id: &str,
    now: i64,
    lease_until: i64,
) -> anyhow::Result<u32> {
    let attempts: i64 = sqlx::query_scalar(
        "UPDATE requests SET state = 'submitting', attempts = attempts + 1,
             lease_until = MAX(COALESCE(lease_until, 0), ?), updated_at = ?
         WHERE request_id = ? RETURNING attempts",
    )
    .bind(lease_until)
    .bind(now)
    .bind(request_id)
    .fetch_one(&mut **tx)
    .await?;
    let note = format!("attempt {attempts}");
    log_transition(tx, request_id, now, State::Submitting, &note).await?;
    Ok(attempts as u32)
}

/// Applies one step to a request row, and records it in the history unless it changed
/// nothing a reader of the history would miss (see [`is_news`]).
async fn apply(
    tx: &mut Transaction<'_, Sqlite>,
    request_id: &str,
    c: &Change,
    now: i64,
    finish: Option<&Finish>,
) -> anyhow::Result<RequestRow> {
    let before: Option<(String, Option<String>, Option<String>)> =
        sqlx::query_as("SELECT state, task_state, last_error FROM requests WHERE request_id = ?")
            .bind(request_id)
            .fetch_optional(&mut **tx)
            .await?;
    let Some(before) = before else {
        anyhow::bail!("request {request_id} is not in the ledger");
    };
    let row = update(tx, request_id, c, now, finish).await?;
    if let Some(sample) = &c.duration {
        durations::insert(tx, sample, now).await?;
    }
    if !is_news(&before, c) {
        return Ok(row);
    }
    let note = match finish {
        Some(f) => format!("{}: {}", f.outcome, c.note),
        None => c.note.clone(),
    };
    log_transition(tx, request_id, now, c.state, &note).await?;
    Ok(row)
}

/// Whether a step is worth a history row: a poll or verification that found the request
/// where it was (same state, same task state, no new error) is not; its counters and due
/// time are still updated. `before` is the row's (state, task_state, last_error).
fn is_news(before: &(String, Option<String>, Option<String>), c: &Change) -> bool {
    let (state, task_state, last_error) = before;
    let same_task = c
        .task
        .as_ref()
        .and_then(|t| t.state.as_ref())
        .is_none_or(|s| task_state.as_ref() == Some(s));
    let same_error = c
        .last_error
        .as_ref()
        .is_none_or(|e| last_error.as_ref() == Some(e));
    c.state.is_final() || state != c.state.as_str() || !same_task || !same_error
}

async fn update(
    tx: &mut Transaction<'_, Sqlite>,
    request_id: &str,
    c: &Change,
    now: i64,
    finish: Option<&Finish>,
) -> anyhow::Result<RequestRow> {
    let t = c.task.as_ref();
    let due_at = if c.state.is_final() { None } else { c.due_at };
    let row = sqlx::query_as::<_, RequestRow>(
        "UPDATE requests SET state = ?, due_at = ?, lease_until = NULL,
             task_id = COALESCE(?, task_id), task_session = COALESCE(?, task_session),
             task_state = COALESCE(?, task_state), task_operation = COALESCE(?, task_operation),
             task_success = COALESCE(?, task_success), task_message = COALESCE(?, task_message),
             http_status = COALESCE(?, http_status), last_error = COALESCE(?, last_error),
             submitted_at = COALESCE(submitted_at, ?),
             poll_count = poll_count + ?, task_running_at = COALESCE(?, task_running_at),
             outcome = COALESCE(?, outcome), finished_at = COALESCE(?, finished_at),
             updated_at = ?
         WHERE request_id = ?
         RETURNING *",
    )
    .bind(c.state.as_str())
    .bind(due_at)
    .bind(t.map(|t| t.id.clone()))
    .bind(t.and_then(|t| t.session.clone()))
    .bind(t.and_then(|t| t.state.clone()))
    .bind(t.and_then(|t| t.operation.clone()))
    .bind(t.and_then(|t| t.success))
    .bind(t.and_then(|t| t.message.clone()))
    .bind(c.http_status.map(i64::from))
    .bind(&c.last_error)
    .bind(c.submitted_at)
    .bind(i64::from(c.count_poll))
    .bind(c.task_running_at)
    .bind(finish.map(|f| f.outcome.clone()))
    .bind(finish.map(|f| f.finished_at))
    .bind(now)
    .bind(request_id)
    .fetch_one(&mut **tx)
    .await?;
    Ok(row)
}

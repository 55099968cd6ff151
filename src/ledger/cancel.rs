//! `reaper cancel`: marks the unfinished requests of a batch, or one request, so that the
//! worker ends those not sent yet `cancelled` (and, asked to, stops running remote tasks).
//! One transaction, recorded in the history of every request it marks. Also the
//! [`Selection`] of requests that cancels and replays act on.

use super::{Ledger, State, log_transition};
use sqlx::{Sqlite, Transaction};

/// Which requests a cancel or a replay acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    Batch(String),
    Request(String),
}

impl Selection {
    /// The batch or request id.
    pub(super) fn id(&self) -> &str {
        match self {
            Selection::Batch(id) | Selection::Request(id) => id,
        }
    }

    pub(super) fn is_batch(&self) -> bool {
        matches!(self, Selection::Batch(_))
    }
}

/// A request as a control found it.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Seen {
    pub request_id: String,
    pub state: String,
    pub outcome: Option<String>,
}

/// What [`Ledger::cancel`] did. All empty: no such request or batch in the ledger.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CancelDone {
    /// Not sent yet (`accepted`, `retry_wait`): due now, they end `cancelled`.
    pub not_sent: Vec<Seen>,
    /// Sent or maybe sent (`submitting`, `polling`, `verifying`): marked. No DELETE is sent
    /// for them again (see [`Ledger::begin_delete`]); a running task runs to its end unless
    /// `stop_running` asked to stop it.
    pub sent: Vec<Seen>,
    /// Finished already: untouched.
    pub finished: Vec<Seen>,
}

impl CancelDone {
    /// Whether the selection matched no request at all.
    pub fn is_unknown(&self) -> bool {
        self.not_sent.is_empty() && self.sent.is_empty() && self.finished.is_empty()
    }
}

impl Ledger {
    /// Whether `selection` matches any request.
    pub async fn selects_any(&self, selection: &Selection) -> anyhow::Result<bool> {
        Ok(sqlx::query_scalar(sql_on!(
            selection.is_batch(),
            "batch_id" | "request_id",
            "SELECT EXISTS (SELECT 1 FROM requests WHERE ",
            " = ?)"
        ))
        .bind(selection.id())
        .fetch_one(&self.pool)
        .await?)
    }

    /// Asks to cancel the unfinished requests of `selection`: each is marked (with
    /// `stop_running`, its running remote task is to be stopped too) and the ones waiting
    /// to send a DELETE become due now, so that the worker ends them `cancelled` promptly,
    /// also while their endpoint is down or paused. Finished requests are left as they are.
    pub async fn cancel(
        &self,
        selection: &Selection,
        stop_running: bool,
        now: i64,
    ) -> anyhow::Result<CancelDone> {
        let mut tx = self.write().await?;
        let finished = finished_of(&mut tx, selection).await?;
        let marked = mark(&mut tx, selection, stop_running, now).await?;
        let mut done = CancelDone {
            finished,
            ..CancelDone::default()
        };
        for seen in marked {
            let state = State::parse(&seen.state).unwrap_or(State::Accepted);
            let note = cancel_note(state, stop_running);
            log_transition(&mut tx, &seen.request_id, now, state, note).await?;
            match state {
                State::Accepted | State::RetryWait => done.not_sent.push(seen),
                _ => done.sent.push(seen),
            }
        }
        tx.commit().await?;
        sort_by_id(&mut done.not_sent);
        sort_by_id(&mut done.sent);
        Ok(done)
    }
}

/// The finished requests of `selection`, in the order received.
async fn finished_of(
    tx: &mut Transaction<'_, Sqlite>,
    selection: &Selection,
) -> anyhow::Result<Vec<Seen>> {
    Ok(sqlx::query_as(sql_on!(
        selection.is_batch(),
        "batch_id" | "request_id",
        "SELECT request_id, state, outcome FROM requests WHERE ",
        " = ? AND state IN ('succeeded', 'failed') ORDER BY received_at, request_id"
    ))
    .bind(selection.id())
    .fetch_all(&mut **tx)
    .await?)
}

/// Marks the unfinished requests of `selection` cancelled by an operator; those waiting to
/// send a DELETE (and, with `stop_running`, running tasks) become due at `now` at the latest.
async fn mark(
    tx: &mut Transaction<'_, Sqlite>,
    selection: &Selection,
    stop_running: bool,
    now: i64,
) -> anyhow::Result<Vec<Seen>> {
    Ok(sqlx::query_as(sql_on!(
        selection.is_batch(),
        "batch_id" | "request_id",
        "UPDATE requests SET cancel_requested_at = COALESCE(cancel_requested_at, ?1),
             stop_running = MAX(stop_running, ?2), updated_at = ?1,
             due_at = CASE WHEN state IN ('accepted', 'submitting', 'retry_wait')
                             OR (?2 AND state = 'polling')
                           THEN MIN(due_at, ?1) ELSE due_at END
         WHERE ",
        " = ?3 AND state NOT IN ('succeeded', 'failed')
         RETURNING request_id, state, outcome"
    ))
    .bind(now)
    .bind(stop_running)
    .bind(selection.id())
    .fetch_all(&mut **tx)
    .await?)
}

fn sort_by_id(seen: &mut [Seen]) {
    seen.sort_by(|a, b| a.request_id.cmp(&b.request_id));
}

/// The history note of a cancel request of a request in `state`.
fn cancel_note(state: State, stop_running: bool) -> &'static str {
    match (state, stop_running) {
        (State::Accepted | State::RetryWait, _) => {
            "cancel requested by operator: not sent yet, it ends cancelled"
        }
        (State::Submitting, _) => {
            "cancel requested by operator: its DELETE may have gone out; none is sent again"
        }
        (_, true) => {
            "cancel requested by operator (--stop-running): its running task is to be stopped"
        }
        (_, false) => {
            "cancel requested by operator: already sent, it runs to its end \
             (--stop-running stops its task)"
        }
    }
}

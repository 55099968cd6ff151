//! `reaper replay`: runs again, under the same request id, requests that ended without a
//! delete (design 1.5). Never one that ended `deleted` or `already_absent`: a replay must
//! not delete twice, nor delete what is gone. One transaction; each replay is recorded in
//! the request's history and starts a new generation (its outcome event gets a new id).

use super::cancel::Selection;
use super::{Ledger, State, log_transition};
use crate::event::Outcome;
use sqlx::{Sqlite, Transaction};

/// The outcomes a replay runs again.
pub const REPLAYABLE: [Outcome; 6] = [
    Outcome::Refused,
    Outcome::RetriesExhausted,
    Outcome::TimedOut,
    Outcome::Expired,
    Outcome::TaskFailed,
    Outcome::Cancelled,
];

/// A request that runs again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replayed {
    pub request_id: String,
    /// The outcome it had ended with.
    pub outcome: String,
    /// Its new generation (1 for the first replay).
    pub generation: i64,
    /// Its `not_after` had passed and was lifted (else it would only expire again).
    pub deadline_lifted: bool,
}

/// A request a replay left as it was, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub request_id: String,
    pub reason: String,
}

/// What [`Ledger::replay`] did. Both empty: nothing matched.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplayDone {
    pub replayed: Vec<Replayed>,
    pub refused: Vec<Refusal>,
}

#[derive(sqlx::FromRow)]
struct Candidate {
    request_id: String,
    state: String,
    outcome: Option<String>,
    not_after: Option<i64>,
}

/// Why a request in `state` that ended `outcome` may not be replayed (`None`: it may).
pub fn refusal_reason(state: &str, outcome: Option<&str>) -> Option<String> {
    let finished = State::parse(state).is_some_and(State::is_final);
    let outcome = match outcome {
        Some(o) if finished => o,
        _ => return Some(format!("it has not finished (state {state})")),
    };
    match Outcome::parse(outcome) {
        Some(o) if REPLAYABLE.contains(&o) => None,
        Some(Outcome::Deleted) => Some("it ended deleted: a replay never deletes twice".into()),
        Some(Outcome::AlreadyAbsent) => {
            Some("it ended already_absent: its target is gone, there is nothing to delete".into())
        }
        _ => Some(format!(
            "it ended {outcome}: only {} are replayed",
            REPLAYABLE.map(Outcome::as_str).join(", ")
        )),
    }
}

const REPLAY: &str = "UPDATE requests SET state = 'accepted', due_at = ?1, lease_until = NULL,
         generation = generation + 1, attempts = 0, poll_count = 0,
         outcome = NULL, event_id = NULL, finished_at = NULL,
         task_id = NULL, task_session = NULL, task_state = NULL, task_operation = NULL,
         task_success = NULL, task_message = NULL, http_status = NULL, last_error = NULL,
         submitted_at = NULL, task_running_at = NULL,
         cancel_requested_at = NULL, stop_running = 0,
         not_after = CASE WHEN not_after <= ?1 THEN NULL ELSE not_after END, updated_at = ?1
     WHERE request_id = ?2 AND state IN ('succeeded', 'failed')
     RETURNING generation";

impl Ledger {
    /// Replays the finished requests of `selection` that ended `refused`,
    /// `retries_exhausted`, `timed_out`, `expired`, `task_failed` or `cancelled` (with
    /// `outcomes`, only those of a batch that ended with one of them): each goes back to
    /// `accepted`, due now, in its next generation, with its attempts, polls, outcome, task,
    /// error and cancel cleared, and a `not_after` that had passed lifted. Every other
    /// request selected is refused with its reason and left as it was.
    pub async fn replay(
        &self,
        selection: &Selection,
        outcomes: Option<&[Outcome]>,
        now: i64,
    ) -> anyhow::Result<ReplayDone> {
        let mut tx = self.write().await?;
        let candidates = candidates(&mut tx, selection).await?;
        let wanted = |c: &Candidate| {
            outcomes.is_none_or(|list| {
                let ended = c.outcome.as_deref().and_then(Outcome::parse);
                ended.is_some_and(|o| list.contains(&o))
            })
        };
        let mut done = ReplayDone::default();
        for c in candidates.into_iter().filter(wanted) {
            match refusal_reason(&c.state, c.outcome.as_deref()) {
                Some(reason) => done.refused.push(Refusal {
                    request_id: c.request_id,
                    reason,
                }),
                None => done.replayed.push(replay_one(&mut tx, c, now).await?),
            }
        }
        tx.commit().await?;
        Ok(done)
    }
}

/// Every request of `selection`, in the order received.
async fn candidates(
    tx: &mut Transaction<'_, Sqlite>,
    selection: &Selection,
) -> anyhow::Result<Vec<Candidate>> {
    Ok(sqlx::query_as(sql_on!(
        selection.is_batch(),
        "batch_id" | "request_id",
        "SELECT request_id, state, outcome, not_after FROM requests WHERE ",
        " = ? ORDER BY received_at, request_id"
    ))
    .bind(selection.id())
    .fetch_all(&mut **tx)
    .await?)
}

/// Replays one finished request (its refusal reason is `None`), with its history row.
async fn replay_one(
    tx: &mut Transaction<'_, Sqlite>,
    c: Candidate,
    now: i64,
) -> anyhow::Result<Replayed> {
    let generation: i64 = sqlx::query_scalar(REPLAY)
        .bind(now)
        .bind(&c.request_id)
        .fetch_one(&mut **tx)
        .await?;
    let deadline_lifted = c.not_after.is_some_and(|t| t <= now);
    let mut note = format!("replayed by operator (generation {generation})");
    if deadline_lifted {
        note.push_str(": its not_after had passed and is lifted");
    }
    log_transition(tx, &c.request_id, now, State::Accepted, &note).await?;
    Ok(Replayed {
        request_id: c.request_id,
        outcome: c.outcome.unwrap_or_default(),
        generation,
        deadline_lifted,
    })
}

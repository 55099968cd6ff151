//! Claiming due work fairly, and what the scheduler leaves waiting: the rows of endpoints
//! that are down, and the unsent work of paused endpoints and batches (design 1.6, 1.7).
//! `claim_due` and `next_due` share one predicate, so that a row `next_due` counts is
//! always one `claim_due` hands out (else the engine would wake for work it cannot take).

use super::{Ledger, RequestRow};
use sqlx::{Sqlite, Transaction};

/// What the scheduler leaves where it is. Beside these, the unsent work of every endpoint
/// and batch paused in the ledger (`reaper pause`, the breaker) always waits.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Skip {
    /// Endpoints that are down: none of their rows is handed out, but unsent work whose
    /// `not_after` passed (it ends `expired`) or whose cancel was requested (it ends
    /// `cancelled`): those end without a remote call.
    pub down: Vec<String>,
    /// Endpoints whose unsent work waits for a reason the worker knows (cap reached, protect
    /// file unreadable, …). Their polls and verifications go on.
    pub held: Vec<String>,
    /// Batches whose unsent work waits likewise.
    pub held_batches: Vec<String>,
}

impl Skip {
    /// Only the endpoints that are down.
    pub fn down(down: Vec<String>) -> Self {
        Skip {
            down,
            ..Skip::default()
        }
    }
}

/// Polls and verifications of running tasks: handed out unless their endpoint is down.
/// Parameters: ?1 now, ?2 down endpoints (JSON array).
macro_rules! follow_up {
    () => {
        "r.state IN ('polling', 'verifying')
         AND r.endpoint NOT IN (SELECT value FROM json_each(?2))"
    };
}

/// Work that would send a DELETE: held while its endpoint is down, held or paused, or its
/// batch is held or paused; except work that ends without a remote call (past its
/// `not_after`, or cancelled: no DELETE is sent after a cancel), which is handed out so that
/// it ends promptly.
/// Parameters: ?1 now, ?2 down endpoints, ?3 held endpoints, ?4 held batches (JSON arrays).
macro_rules! new_work {
    () => {
        "r.state IN ('accepted', 'submitting', 'retry_wait')
         AND (r.not_after <= ?1
              OR r.cancel_requested_at IS NOT NULL
              OR (r.endpoint NOT IN (SELECT value FROM json_each(?2))
                  AND r.endpoint NOT IN (SELECT value FROM json_each(?3))
                  AND COALESCE(r.batch_id NOT IN (SELECT value FROM json_each(?4)), 1)
                  AND NOT EXISTS (SELECT 1 FROM pauses p
                                  WHERE (p.scope = 'endpoint' AND p.name = r.endpoint)
                                     OR (p.scope = 'batch' AND p.name = r.batch_id))))"
    };
}

/// Claims rows of one kind. Parameters ?1–?4 as the predicates, ?5 the lease, ?6 the limit.
macro_rules! claim_sql {
    ($predicate:expr) => {
        concat!(
            "UPDATE requests SET lease_until = ?5
             WHERE request_id IN (SELECT r.request_id FROM requests r
                                  WHERE r.due_at IS NOT NULL AND r.due_at <= ?1
                                    AND (r.lease_until IS NULL OR r.lease_until <= ?1)
                                    AND ",
            $predicate,
            " ORDER BY r.due_at LIMIT ?6)
             RETURNING *"
        )
    };
}

/// The two kinds of due work the scheduler balances.
#[derive(Clone, Copy)]
enum Work {
    FollowUp,
    New,
}

/// A [`Skip`] as the JSON arrays the predicates read.
struct SkipJson {
    down: String,
    held: String,
    held_batches: String,
}

impl SkipJson {
    fn of(skip: &Skip) -> anyhow::Result<Self> {
        Ok(SkipJson {
            down: serde_json::to_string(&skip.down)?,
            held: serde_json::to_string(&skip.held)?,
            held_batches: serde_json::to_string(&skip.held_batches)?,
        })
    }
}

impl Ledger {
    /// Claims up to `limit` due rows, leasing them until `lease_until` so that no other pass
    /// hands them out while they are worked on. The lease is kept apart from the due time:
    /// each step clears it and sets the real next due time, and a restart releases only the
    /// leases of steps that were in flight (see [`Ledger::resume`]).
    ///
    /// Fairness: due follow-ups (polls and verifications of running tasks) and due new work
    /// (first attempts and retries) each get at least half of `limit` when both are waiting,
    /// earliest due first within each; a share one side does not use goes to the other.
    /// So a backlog of new requests cannot starve polls, nor many running tasks new deletes.
    ///
    /// What waits is in [`Skip`]: rows of endpoints that are down, unsent work of held or
    /// paused endpoints and batches.
    pub async fn claim_due(
        &self,
        now: i64,
        limit: u32,
        lease_until: i64,
        skip: &Skip,
    ) -> anyhow::Result<Vec<RequestRow>> {
        let skip = SkipJson::of(skip)?;
        let mut tx = self.write().await?;
        let first = limit.div_ceil(2);
        let mut rows = claim(&mut tx, Work::FollowUp, now, first, lease_until, &skip).await?;
        let rest = limit - rows.len() as u32;
        rows.extend(claim(&mut tx, Work::New, now, rest, lease_until, &skip).await?);
        let rest = limit - rows.len() as u32;
        if rest > 0 {
            rows.extend(claim(&mut tx, Work::FollowUp, now, rest, lease_until, &skip).await?);
        }
        tx.commit().await?;
        Ok(rows)
    }

    /// The earliest due time of any unfinished request that no step holds and that
    /// [`Ledger::claim_due`] would hand out at `now` with the same `skip` once due.
    pub async fn next_due(&self, now: i64, skip: &Skip) -> anyhow::Result<Option<i64>> {
        let skip = SkipJson::of(skip)?;
        let v: Option<i64> = sqlx::query_scalar(concat!(
            "SELECT MIN(r.due_at) FROM requests r
             WHERE r.due_at IS NOT NULL AND r.lease_until IS NULL AND ((",
            follow_up!(),
            ") OR (",
            new_work!(),
            "))"
        ))
        .bind(now)
        .bind(&skip.down)
        .bind(&skip.held)
        .bind(&skip.held_batches)
        .fetch_one(&self.pool)
        .await?;
        Ok(v)
    }
}

async fn claim(
    tx: &mut Transaction<'_, Sqlite>,
    work: Work,
    now: i64,
    limit: u32,
    lease_until: i64,
    skip: &SkipJson,
) -> anyhow::Result<Vec<RequestRow>> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let sql = match work {
        Work::FollowUp => claim_sql!(follow_up!()),
        Work::New => claim_sql!(new_work!()),
    };
    Ok(sqlx::query_as::<_, RequestRow>(sql)
        .bind(now)
        .bind(&skip.down)
        .bind(&skip.held)
        .bind(&skip.held_batches)
        .bind(lease_until)
        .bind(i64::from(limit))
        .fetch_all(&mut **tx)
        .await?)
}

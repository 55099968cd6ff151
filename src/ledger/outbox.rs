//! The outbox: events written in the same transaction as the state they announce, drained
//! to the broker by the publisher and marked published only after the broker's confirm.
//! Each row has its own next attempt time, so one event the broker keeps returning backs off
//! alone and never holds up the rows behind it.

use super::{Ledger, NewEvent};
use sqlx::{Sqlite, Transaction};

/// An event waiting for its confirm.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct OutboxRow {
    pub seq: i64,
    pub event_id: String,
    pub request_id: Option<String>,
    pub routing_key: String,
    pub payload: String,
    /// Publications tried so far (each one failed, while the row is pending).
    pub attempts: i64,
}

/// A failed publication of one event, and when to try it again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryAt {
    pub seq: i64,
    /// Unix milliseconds.
    pub at: i64,
}

pub(super) async fn insert(
    tx: &mut Transaction<'_, Sqlite>,
    e: &NewEvent,
    now: i64,
) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO outbox (event_id, request_id, routing_key, payload, created_at)
         VALUES (?, ?, ?, ?, ?)",
    )
    .bind(&e.event_id)
    .bind(&e.request_id)
    .bind(&e.routing_key)
    .bind(&e.payload)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Queues the already-published event `event_id` once more (a duplicate request gets the
/// first outcome, with the same event id). Nothing is added while a copy is still pending.
pub(super) async fn requeue(
    tx: &mut Transaction<'_, Sqlite>,
    event_id: &str,
    now: i64,
) -> anyhow::Result<bool> {
    let added = sqlx::query(
        "INSERT INTO outbox (event_id, request_id, routing_key, payload, created_at)
         SELECT event_id, request_id, routing_key, payload, ? FROM outbox
         WHERE event_id = ?
           AND NOT EXISTS (SELECT 1 FROM outbox WHERE event_id = ? AND published_at IS NULL)
         ORDER BY seq DESC LIMIT 1",
    )
    .bind(now)
    .bind(event_id)
    .bind(event_id)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    Ok(added == 1)
}

impl Ledger {
    /// The oldest events not yet confirmed whose next attempt is due at `now`.
    pub async fn pending_events(&self, now: i64, limit: u32) -> anyhow::Result<Vec<OutboxRow>> {
        Ok(sqlx::query_as::<_, OutboxRow>(
            "SELECT seq, event_id, request_id, routing_key, payload, attempts FROM outbox
             WHERE published_at IS NULL AND next_attempt_at <= ? ORDER BY seq LIMIT ?",
        )
        .bind(now)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?)
    }

    /// When the earliest unconfirmed event is next due (`None`: the outbox is empty).
    pub async fn next_event_at(&self) -> anyhow::Result<Option<i64>> {
        Ok(
            sqlx::query_scalar(
                "SELECT MIN(next_attempt_at) FROM outbox WHERE published_at IS NULL",
            )
            .fetch_one(&self.pool)
            .await?,
        )
    }

    /// Marks events as confirmed by the broker.
    pub async fn mark_published(&self, seqs: &[i64], now: i64) -> anyhow::Result<()> {
        if seqs.is_empty() {
            return Ok(());
        }
        let mut tx = self.write().await?;
        sqlx::query(
            "UPDATE outbox SET published_at = ?, attempts = attempts + 1
             WHERE seq IN (SELECT value FROM json_each(?))",
        )
        .bind(now)
        .bind(serde_json::to_string(seqs)?)
        .execute(&mut **tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Counts a failed publication (nacked, returned or unconfirmed) of each event and sets
    /// when it is tried again. The rows stay pending.
    pub async fn mark_unpublished(&self, retries: &[RetryAt]) -> anyhow::Result<()> {
        if retries.is_empty() {
            return Ok(());
        }
        let mut tx = self.write().await?;
        for r in retries {
            sqlx::query(
                "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?
                 WHERE seq = ? AND published_at IS NULL",
            )
            .bind(r.at)
            .bind(r.seq)
            .execute(&mut **tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Events still waiting for a confirm.
    pub async fn unpublished_count(&self) -> anyhow::Result<u64> {
        let v: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE published_at IS NULL")
            .fetch_one(&self.pool)
            .await?;
        Ok(v as u64)
    }
}

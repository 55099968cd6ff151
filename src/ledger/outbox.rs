//! The outbox: events written in the same transaction as the state they announce, drained
//! to the broker by the publisher and marked published only after the broker's confirm.

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
    pub attempts: i64,
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
    /// The oldest events not yet confirmed.
    pub async fn pending_events(&self, limit: u32) -> anyhow::Result<Vec<OutboxRow>> {
        Ok(sqlx::query_as::<_, OutboxRow>(
            "SELECT seq, event_id, request_id, routing_key, payload, attempts FROM outbox
             WHERE published_at IS NULL ORDER BY seq LIMIT ?",
        )
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Marks events as confirmed by the broker.
    pub async fn mark_published(&self, seqs: &[i64], now: i64) -> anyhow::Result<()> {
        let mut tx = self.pool.begin().await?;
        for seq in seqs {
            sqlx::query(
                "UPDATE outbox SET published_at = ?, attempts = attempts + 1 WHERE seq = ?",
            )
            .bind(now)
            .bind(seq)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Counts a failed publication (nacked, returned or unconfirmed) of these events.
    pub async fn mark_unpublished(&self, seqs: &[i64]) -> anyhow::Result<()> {
        let mut tx = self.pool.begin().await?;
        for seq in seqs {
            sqlx::query("UPDATE outbox SET attempts = attempts + 1 WHERE seq = ?")
                .bind(seq)
                .execute(&mut *tx)
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

//! The adaptive budgets' saved state: one row per endpoint whose controller is engaged (its
//! limits lowered below the ceilings), written by the worker at most once a second while it
//! changes and read at start, so that a restart keeps what the endpoint taught. Stores what
//! it is handed; knows nothing of the controller.

use super::Ledger;

/// One endpoint's adapted limits as stored.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct RateControl {
    pub endpoint: String,
    /// Calls in flight at once.
    pub in_flight_limit: f64,
    /// Calls per second; `None` without a rate ceiling.
    pub rate_per_sec: Option<f64>,
    /// The last overload signal, Unix ms.
    pub last_signal_at: i64,
}

impl Ledger {
    /// Every saved adapted budget.
    pub async fn rate_controls(&self) -> anyhow::Result<Vec<RateControl>> {
        Ok(sqlx::query_as(
            "SELECT endpoint, in_flight_limit, rate_per_sec, last_signal_at
             FROM rate_control ORDER BY endpoint",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// Saves `state` as its endpoint's adapted budget at `now`, replacing the last one.
    pub async fn save_rate_control(&self, state: &RateControl, now: i64) -> anyhow::Result<()> {
        let mut tx = self.write().await?;
        sqlx::query(
            "INSERT INTO rate_control
                 (endpoint, in_flight_limit, rate_per_sec, last_signal_at, updated_at)
             VALUES (?, ?, ?, ?, ?)
             ON CONFLICT (endpoint) DO UPDATE SET in_flight_limit = excluded.in_flight_limit,
                 rate_per_sec = excluded.rate_per_sec,
                 last_signal_at = excluded.last_signal_at, updated_at = excluded.updated_at",
        )
        .bind(&state.endpoint)
        .bind(state.in_flight_limit)
        .bind(state.rate_per_sec)
        .bind(state.last_signal_at)
        .bind(now)
        .execute(&mut **tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Forgets `endpoint`'s adapted budget: its controller is dormant again.
    pub async fn clear_rate_control(&self, endpoint: &str) -> anyhow::Result<()> {
        let mut tx = self.write().await?;
        sqlx::query("DELETE FROM rate_control WHERE endpoint = ?")
            .bind(endpoint)
            .execute(&mut **tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }
}

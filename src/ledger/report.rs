//! Read-only views of the ledger for operators: counts per state and outcome, one
//! request's history, and a batch's completion report.

use super::Ledger;

/// How many requests are in a state (with an outcome, once final).
#[derive(Debug, Clone, PartialEq, sqlx::FromRow, serde::Serialize)]
pub struct StateCount {
    pub state: String,
    pub outcome: Option<String>,
    pub count: i64,
}

/// One step of a request's history.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow, serde::Serialize)]
pub struct Transition {
    pub at: i64,
    pub state: String,
    pub note: Option<String>,
}

/// One line of a batch report.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow, serde::Serialize)]
pub struct ReportRow {
    pub request_id: String,
    pub target_type: String,
    pub target: String,
    pub state: String,
    pub outcome: Option<String>,
    pub attempts: i64,
    pub task_id: Option<String>,
    pub http_status: Option<i64>,
    pub last_error: Option<String>,
    pub received_at: i64,
    pub finished_at: Option<i64>,
}

impl Ledger {
    /// For benchmarks: adds `n` requests to `endpoint` that finished `deleted` at `at` (ids
    /// `prefill-<i>`, events published), in transactions of 100,000, as a long-running
    /// ledger holds them.
    pub async fn prefill_finished(&self, n: u64, endpoint: &str, at: i64) -> anyhow::Result<()> {
        const CHUNK: u64 = 100_000;
        let mut done = 0;
        while done < n {
            let upto = (done + CHUNK).min(n);
            let mut tx = self.write().await?;
            sqlx::query(
                "WITH RECURSIVE i(k) AS (SELECT ?1 UNION ALL SELECT k + 1 FROM i WHERE k + 1 < ?2)
                 INSERT INTO requests (request_id, target_type, target, endpoint, state, outcome,
                                       event_id, received_at, submitted_at, finished_at, updated_at)
                 SELECT 'prefill-' || k, 'em.job', '{}', ?3, 'succeeded', 'deleted',
                        'prefill-event-' || k, ?4, ?4, ?4, ?4 FROM i",
            )
            .bind(i64::try_from(done)?)
            .bind(i64::try_from(upto)?)
            .bind(endpoint)
            .bind(at)
            .execute(&mut **tx)
            .await?;
            tx.commit().await?;
            done = upto;
        }
        Ok(())
    }

    /// Counts per state and outcome (kept by the ledger's triggers: no scan of the requests).
    pub async fn counts(&self) -> anyhow::Result<Vec<StateCount>> {
        Ok(sqlx::query_as::<_, StateCount>(
            "SELECT state, NULLIF(outcome, '') AS outcome, n AS count FROM request_counts
             WHERE n > 0 ORDER BY state, outcome",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// A request's transitions, oldest first.
    pub async fn history(&self, request_id: &str) -> anyhow::Result<Vec<Transition>> {
        Ok(sqlx::query_as::<_, Transition>(
            "SELECT at, state, note FROM transitions WHERE request_id = ? ORDER BY id",
        )
        .bind(request_id)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Every request of a batch, in the order received.
    pub async fn batch_report(&self, batch_id: &str) -> anyhow::Result<Vec<ReportRow>> {
        Ok(sqlx::query_as::<_, ReportRow>(
            "SELECT request_id, target_type, target, state, outcome, attempts, task_id,
                    http_status, last_error, received_at, finished_at
             FROM requests WHERE batch_id = ? ORDER BY received_at, request_id",
        )
        .bind(batch_id)
        .fetch_all(&self.pool)
        .await?)
    }
}

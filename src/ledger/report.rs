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
    /// Counts per state and outcome.
    pub async fn counts(&self) -> anyhow::Result<Vec<StateCount>> {
        Ok(sqlx::query_as::<_, StateCount>(
            "SELECT state, outcome, COUNT(*) AS count FROM requests
             GROUP BY state, outcome ORDER BY state, outcome",
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

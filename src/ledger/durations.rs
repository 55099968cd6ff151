//! How long tasks took, per endpoint and task operation, as far as polls could tell: the
//! samples the engine's poll planner learns from (`engine::polls`). A sample is written with
//! the step that saw its task end (one transaction); only the most recent [`KEPT_SAMPLES`]
//! of a kind are kept. Knows nothing of how the samples are used.

use super::Ledger;
use sqlx::{Sqlite, Transaction};

/// How many samples of one kind (endpoint, operation) the ledger keeps.
pub const KEPT_SAMPLES: usize = 64;

/// How often (in samples written) the samples beyond [`KEPT_SAMPLES`] are deleted.
const PRUNE_EVERY: i64 = 16;

/// What the polls of one task saw, in milliseconds from the moment its DELETE was answered:
/// still running at `running_ms` (0 when no poll saw it running), ended by `ended_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskDuration {
    pub running_ms: i64,
    pub ended_ms: i64,
}

impl TaskDuration {
    /// The duration seen between a task recorded at `recorded_at`, last seen running at
    /// `running_at` (when a poll saw it running) and seen ended at `ended_at`; `None` when
    /// these times cannot bound a duration (a clock step, a row from before they were kept).
    pub fn between(recorded_at: i64, running_at: Option<i64>, ended_at: i64) -> Option<Self> {
        let running_ms = running_at.map_or(0, |t| t - recorded_at);
        let ended_ms = ended_at - recorded_at;
        (running_ms >= 0 && ended_ms > running_ms).then_some(TaskDuration {
            running_ms,
            ended_ms,
        })
    }
}

/// One observed duration of a kind of task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DurationSample {
    pub endpoint: String,
    /// The task's `Operation` (`DeleteJob`, `UpdateJob`, …).
    pub operation: String,
    pub duration: TaskDuration,
}

#[derive(sqlx::FromRow)]
struct SampleRow {
    endpoint: String,
    operation: String,
    running_ms: i64,
    ended_ms: i64,
}

impl Ledger {
    /// Every kept sample, oldest first (at most [`KEPT_SAMPLES`] per kind).
    pub async fn task_durations(&self) -> anyhow::Result<Vec<DurationSample>> {
        let rows = sqlx::query_as::<_, SampleRow>(
            "SELECT endpoint, operation, running_ms, ended_ms FROM
               (SELECT *, ROW_NUMBER() OVER (PARTITION BY endpoint, operation ORDER BY id DESC)
                          AS newest
                FROM task_durations)
             WHERE newest <= ? ORDER BY id",
        )
        .bind(KEPT_SAMPLES as i64)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| DurationSample {
                endpoint: r.endpoint,
                operation: r.operation,
                duration: TaskDuration {
                    running_ms: r.running_ms,
                    ended_ms: r.ended_ms,
                },
            })
            .collect())
    }
}

/// Writes one sample inside the step's transaction. Every [`PRUNE_EVERY`]-th sample, the
/// oldest of its kind beyond [`KEPT_SAMPLES`] are forgotten (reads take the newest only), so
/// a sample costs one statement, not two.
pub(super) async fn insert(
    tx: &mut Transaction<'_, Sqlite>,
    s: &DurationSample,
    now: i64,
) -> anyhow::Result<()> {
    let id = sqlx::query(
        "INSERT INTO task_durations (endpoint, operation, running_ms, ended_ms, at)
         VALUES (?, ?, ?, ?, ?)",
    )
    .bind(&s.endpoint)
    .bind(&s.operation)
    .bind(s.duration.running_ms)
    .bind(s.duration.ended_ms)
    .bind(now)
    .execute(&mut **tx)
    .await?
    .last_insert_rowid();
    if id % PRUNE_EVERY != 0 {
        return Ok(());
    }
    sqlx::query(
        "DELETE FROM task_durations
         WHERE endpoint = ?1 AND operation = ?2
           AND id <= (SELECT id FROM task_durations WHERE endpoint = ?1 AND operation = ?2
                      ORDER BY id DESC LIMIT 1 OFFSET ?3)",
    )
    .bind(&s.endpoint)
    .bind(&s.operation)
    .bind(KEPT_SAMPLES as i64)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

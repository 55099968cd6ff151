//! The operator's controls on the ledger file a running worker uses (design 1.5, 1.6):
//! pausing and resuming an endpoint or a batch. Each is one transaction, recorded in the
//! history of every request it affects (`reaper status ID`); the worker obeys them at its
//! next claim. Cancels are in `cancel.rs`, replays in `replay.rs`.

use super::{Ledger, NewEvent, outbox};
use sqlx::{Sqlite, Transaction};

/// What a pause holds back: an endpoint's or a batch's unsent work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PauseScope {
    Endpoint,
    Batch,
}

impl PauseScope {
    pub fn as_str(self) -> &'static str {
        match self {
            PauseScope::Endpoint => "endpoint",
            PauseScope::Batch => "batch",
        }
    }

    fn parse(s: &str) -> Self {
        if s == "batch" {
            PauseScope::Batch
        } else {
            PauseScope::Endpoint
        }
    }
}

/// A pause in force.
#[derive(Debug, Clone, PartialEq)]
pub struct Pause {
    pub scope: PauseScope,
    /// The endpoint's name or the batch id.
    pub name: String,
    pub reason: String,
    /// Unix milliseconds.
    pub since: i64,
    /// The breaker's figures when it paused the endpoint (`None` for an operator's pause).
    pub failures: Option<i64>,
    pub finished: Option<i64>,
}

#[derive(sqlx::FromRow)]
struct PauseRow {
    scope: String,
    name: String,
    reason: String,
    since: i64,
    failures: Option<i64>,
    finished: Option<i64>,
}

impl From<PauseRow> for Pause {
    fn from(r: PauseRow) -> Self {
        Pause {
            scope: PauseScope::parse(&r.scope),
            name: r.name,
            reason: r.reason,
            since: r.since,
            failures: r.failures,
            finished: r.finished,
        }
    }
}

/// What [`Ledger::pause`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum PauseDone {
    /// Paused now; `waiting` unsent requests wait (each has a history row saying why).
    Paused { waiting: u64 },
    /// It was paused already: nothing changed.
    AlreadyPaused(Pause),
}

/// What [`Ledger::unpause`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum ResumeDone {
    /// The pause is lifted; `waiting` unsent requests may be sent again.
    Resumed { pause: Pause, waiting: u64 },
    /// It was not paused: nothing changed.
    NotPaused,
}

impl Ledger {
    /// Pauses the unsent work of an endpoint or a batch: no new DELETE goes out until
    /// [`Ledger::unpause`]; polls and verifications go on. `event` (an `endpoint.paused`
    /// event) is put in the outbox in the same transaction, only when the pause is new.
    pub async fn pause(
        &self,
        scope: PauseScope,
        name: &str,
        reason: &str,
        now: i64,
        event: Option<&NewEvent>,
    ) -> anyhow::Result<PauseDone> {
        let mut tx = self.write().await?;
        if let Some(p) = find_pause(&mut tx, scope, name).await? {
            return Ok(PauseDone::AlreadyPaused(p));
        }
        let pause = Pause {
            scope,
            name: name.to_string(),
            reason: reason.to_string(),
            since: now,
            failures: None,
            finished: None,
        };
        let waiting = insert_pause(&mut tx, &pause, event).await?;
        tx.commit().await?;
        Ok(PauseDone::Paused { waiting })
    }

    /// Lifts a pause (`reaper resume`). An endpoint's resume also clears its breaker window: only requests
    /// that finish from `now` on count. `event` (an `endpoint.resumed` event) is put in the
    /// outbox in the same transaction, only when there was a pause to lift.
    pub async fn unpause(
        &self,
        scope: PauseScope,
        name: &str,
        now: i64,
        event: Option<&NewEvent>,
    ) -> anyhow::Result<ResumeDone> {
        let mut tx = self.write().await?;
        let Some(pause) = find_pause(&mut tx, scope, name).await? else {
            return Ok(ResumeDone::NotPaused);
        };
        sqlx::query("DELETE FROM pauses WHERE scope = ? AND name = ?")
            .bind(scope.as_str())
            .bind(name)
            .execute(&mut **tx)
            .await?;
        if scope == PauseScope::Endpoint {
            sqlx::query(
                "INSERT INTO breaker_resets (endpoint, since) VALUES (?, ?)
                 ON CONFLICT (endpoint) DO UPDATE SET since = excluded.since",
            )
            .bind(name)
            .bind(now)
            .execute(&mut **tx)
            .await?;
        }
        let note = format!(
            "{} {name} resumed: DELETEs may go out again",
            scope.as_str()
        );
        let waiting = note_unsent(&mut tx, scope, name, now, &note).await?;
        if let Some(e) = event {
            outbox::insert(&mut tx, e, now).await?;
        }
        tx.commit().await?;
        Ok(ResumeDone::Resumed { pause, waiting })
    }

    /// The pauses in force, endpoints first, each oldest first.
    pub async fn paused(&self) -> anyhow::Result<Vec<Pause>> {
        let rows = sqlx::query_as::<_, PauseRow>(
            "SELECT scope, name, reason, since, failures, finished FROM pauses
             ORDER BY scope DESC, since, name",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(Pause::from).collect())
    }

    /// Whether the ledger knows this endpoint or batch: a request of it, or a pause.
    pub async fn knows(&self, scope: PauseScope, name: &str) -> anyhow::Result<bool> {
        let sql = match scope {
            PauseScope::Endpoint => {
                "SELECT EXISTS (SELECT 1 FROM requests WHERE endpoint = ?1)
                     OR EXISTS (SELECT 1 FROM pauses WHERE scope = 'endpoint' AND name = ?1)"
            }
            PauseScope::Batch => {
                "SELECT EXISTS (SELECT 1 FROM requests WHERE batch_id = ?1)
                     OR EXISTS (SELECT 1 FROM pauses WHERE scope = 'batch' AND name = ?1)"
            }
        };
        Ok(sqlx::query_scalar(sql)
            .bind(name)
            .fetch_one(&self.pool)
            .await?)
    }
}

async fn find_pause(
    tx: &mut Transaction<'_, Sqlite>,
    scope: PauseScope,
    name: &str,
) -> anyhow::Result<Option<Pause>> {
    let row = sqlx::query_as::<_, PauseRow>(
        "SELECT scope, name, reason, since, failures, finished FROM pauses
         WHERE scope = ? AND name = ?",
    )
    .bind(scope.as_str())
    .bind(name)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(row.map(Pause::from))
}

/// Records a new pause (the caller checked there is none), a history row for each unsent
/// request it holds, and its event. Returns how many requests it holds.
pub(super) async fn insert_pause(
    tx: &mut Transaction<'_, Sqlite>,
    p: &Pause,
    event: Option<&NewEvent>,
) -> anyhow::Result<u64> {
    sqlx::query(
        "INSERT INTO pauses (scope, name, reason, since, failures, finished)
         VALUES (?, ?, ?, ?, ?, ?)",
    )
    .bind(p.scope.as_str())
    .bind(&p.name)
    .bind(&p.reason)
    .bind(p.since)
    .bind(p.failures)
    .bind(p.finished)
    .execute(&mut **tx)
    .await?;
    let note = format!(
        "{} {} paused: no DELETE until it is resumed ({})",
        p.scope.as_str(),
        p.name,
        p.reason
    );
    let waiting = note_unsent(tx, p.scope, &p.name, p.since, &note).await?;
    if let Some(e) = event {
        outbox::insert(tx, e, p.since).await?;
    }
    Ok(waiting)
}

/// Writes `note` in the history of every unsent request of the endpoint or batch `name`.
/// Returns how many there were.
async fn note_unsent(
    tx: &mut Transaction<'_, Sqlite>,
    scope: PauseScope,
    name: &str,
    now: i64,
    note: &str,
) -> anyhow::Result<u64> {
    let n = sqlx::query(sql_on!(
        scope == PauseScope::Endpoint,
        "endpoint" | "batch_id",
        "INSERT INTO transitions (request_id, at, state, note)
         SELECT request_id, ?, state, ? FROM requests WHERE ",
        " = ? AND state IN ('accepted', 'submitting', 'retry_wait')"
    ))
    .bind(now)
    .bind(note)
    .bind(name)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    Ok(n)
}

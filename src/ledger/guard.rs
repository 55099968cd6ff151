//! The guard rails the ledger keeps (design 1.6): the rolling per-endpoint delete cap,
//! counted in the ledger so that a restart does not reset it, and the failure breaker's
//! figures and trip. Each decision is one transaction, so two steps cannot both take the
//! last DELETE under the cap, nor both trip the breaker.

use super::controls::{PauseScope, insert_pause};
use super::schedule::count_attempt;
use super::{Ledger, NewEvent, Pause};
use sqlx::{Sqlite, Transaction};

/// The cap's rolling window: 60 minutes, in milliseconds.
pub const CAP_WINDOW_MS: i64 = 60 * 60 * 1000;

/// What [`Ledger::begin_delete`] decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeleteStart {
    /// The request is `submitting`, the attempt and the DELETE are counted: send it.
    Begun { attempt: u32 },
    /// The endpoint sent its cap of DELETEs in the last 60 minutes: nothing was counted; the
    /// next one may go at `until` (Unix ms), when the oldest counted one leaves the window.
    CapReached { until: i64 },
    /// Its endpoint or batch was paused since the request was claimed: nothing was counted.
    Held { reason: String },
    /// An operator asked to cancel it: nothing was counted, no DELETE is to be sent.
    Cancelled,
}

/// The failure breaker's settings (`REAPER_BREAKER_RATIO`, `_MIN`, `_WINDOW`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BreakerRule {
    /// Share of failures that trips it; 0 disables the breaker.
    pub ratio: f64,
    /// Finished requests needed before it may trip.
    pub min: u32,
    /// How many of the most recently finished requests it looks at.
    pub window: u32,
}

/// Among an endpoint's most recently finished requests (since its breaker was last reset),
/// how many failed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct BreakerFigures {
    pub failures: i64,
    pub finished: i64,
}

impl BreakerRule {
    /// Whether these figures trip the breaker.
    pub fn trips(&self, f: BreakerFigures) -> bool {
        self.ratio > 0.0
            && f.finished > 0
            && f.finished >= i64::from(self.min)
            && f.failures as f64 / f.finished as f64 >= self.ratio
    }
}

/// How often counted DELETEs older than the cap's window are deleted.
const PRUNE_DELETES_MS: i64 = 60_000;

impl Ledger {
    /// Before a DELETE: in one transaction, checks that the request was not cancelled nor
    /// its endpoint or batch paused, and that its endpoint sent fewer than `cap` DELETEs in
    /// the last 60 minutes (0 = no cap); then counts the attempt (the request becomes
    /// `submitting`, as [`Ledger::begin_attempt`] does) and the DELETE. Anything else counts
    /// nothing. Counted DELETEs older than the window are pruned, at most once a minute.
    pub async fn begin_delete(
        &self,
        request_id: &str,
        now: i64,
        lease_until: i64,
        cap: u32,
    ) -> anyhow::Result<DeleteStart> {
        let mut tx = self.write().await?;
        // The request and the reason of a pause of its endpoint or batch, the endpoint's
        // first, in one statement.
        let row: Option<(String, Option<i64>, Option<String>)> = sqlx::query_as(
            "SELECT r.endpoint, r.cancel_requested_at,
                    (SELECT p.scope || ' ' || p.name || ' is paused: ' || p.reason FROM pauses p
                     WHERE (p.scope = 'endpoint' AND p.name = r.endpoint)
                        OR (p.scope = 'batch' AND p.name = r.batch_id)
                     ORDER BY p.scope DESC LIMIT 1)
             FROM requests r WHERE r.request_id = ?",
        )
        .bind(request_id)
        .fetch_optional(&mut **tx)
        .await?;
        let Some((endpoint, cancel, paused)) = row else {
            anyhow::bail!("request {request_id} is not in the ledger");
        };
        if cancel.is_some() {
            return Ok(DeleteStart::Cancelled);
        }
        if let Some(reason) = paused {
            return Ok(DeleteStart::Held { reason });
        }
        if self.prune_deletes_due(now) {
            sqlx::query("DELETE FROM deletes WHERE at <= ?")
                .bind(now - CAP_WINDOW_MS)
                .execute(&mut **tx)
                .await?;
        }
        if let Some(until) = cap_until(&mut tx, &endpoint, now, cap).await? {
            tx.commit().await?;
            return Ok(DeleteStart::CapReached { until });
        }
        sqlx::query("INSERT INTO deletes (endpoint, at) VALUES (?, ?)")
            .bind(&endpoint)
            .bind(now)
            .execute(&mut **tx)
            .await?;
        let attempt = count_attempt(&mut tx, request_id, now, lease_until).await?;
        tx.commit().await?;
        Ok(DeleteStart::Begun { attempt })
    }

    /// Whether the counted DELETEs older than the window are to be deleted now: once a
    /// minute (what the cap counts is within the window anyway; this only bounds the table).
    fn prune_deletes_due(&self, now: i64) -> bool {
        use std::sync::atomic::Ordering;
        let last = self.deletes_pruned_at.load(Ordering::Relaxed);
        now - last >= PRUNE_DELETES_MS
            && self
                .deletes_pruned_at
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }

    /// The DELETEs `endpoint` sent in the 60 minutes before `now` (what the cap counts).
    pub async fn deletes_in_window(&self, endpoint: &str, now: i64) -> anyhow::Result<u64> {
        let n: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM deletes WHERE endpoint = ? AND at > ?")
                .bind(endpoint)
                .bind(now - CAP_WINDOW_MS)
                .fetch_one(&self.pool)
                .await?;
        Ok(n as u64)
    }

    /// The breaker's figures of `endpoint` over its last `window` finished requests.
    pub async fn breaker_figures(
        &self,
        endpoint: &str,
        window: u32,
    ) -> anyhow::Result<BreakerFigures> {
        let mut conn = self.pool.acquire().await?;
        figures(&mut conn, endpoint, window).await
    }

    /// After a request of `endpoint` finished: when `rule` trips on the endpoint's figures
    /// and the endpoint is not paused yet, pauses it (the reason gives the figures), writes
    /// the history of the requests it holds, and puts the event `on_trip` builds from the
    /// pause (`endpoint.paused`) in the outbox, all in one transaction. Returns that pause;
    /// `None` when the breaker did not trip or the endpoint was paused already.
    pub async fn trip_breaker(
        &self,
        endpoint: &str,
        rule: BreakerRule,
        now: i64,
        on_trip: impl FnOnce(&Pause) -> Option<NewEvent>,
    ) -> anyhow::Result<Option<Pause>> {
        if rule.ratio <= 0.0 {
            return Ok(None);
        }
        let mut tx = self.write().await?;
        let paused: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM pauses WHERE scope = 'endpoint' AND name = ?)",
        )
        .bind(endpoint)
        .fetch_one(&mut **tx)
        .await?;
        let f = figures(&mut tx, endpoint, rule.window).await?;
        if paused || !rule.trips(f) {
            return Ok(None);
        }
        let pause = Pause {
            scope: PauseScope::Endpoint,
            name: endpoint.to_string(),
            reason: format!(
                "failure breaker: {} of the last {} finished requests failed (trips at {}%)",
                f.failures,
                f.finished,
                (rule.ratio * 1000.0).round() / 10.0
            ),
            since: now,
            failures: Some(f.failures),
            finished: Some(f.finished),
        };
        let event = on_trip(&pause);
        insert_pause(&mut tx, &pause, event.as_ref()).await?;
        tx.commit().await?;
        Ok(Some(pause))
    }
}

/// When the cap is reached: the moment the next DELETE may go (the `cap`-th most recent
/// counted one leaves the window). `None`: under the cap, or no cap.
async fn cap_until(
    tx: &mut Transaction<'_, Sqlite>,
    endpoint: &str,
    now: i64,
    cap: u32,
) -> anyhow::Result<Option<i64>> {
    if cap == 0 {
        return Ok(None);
    }
    // With `cap` DELETEs in the window, the next may go when the cap-th most recent leaves.
    let at: Option<i64> = sqlx::query_scalar(
        "SELECT at FROM deletes WHERE endpoint = ? AND at > ?
         ORDER BY at DESC LIMIT 1 OFFSET ?",
    )
    .bind(endpoint)
    .bind(now - CAP_WINDOW_MS)
    .bind(i64::from(cap) - 1)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(at.map(|at| at + CAP_WINDOW_MS))
}

/// Failures among the last `window` requests of `endpoint` that finished since its breaker
/// was reset. A failure: `task_failed`, `retries_exhausted`, `timed_out`, or `refused` for
/// any reason but a protected target (`last_error.kind = "protected"`).
async fn figures(
    conn: &mut sqlx::SqliteConnection,
    endpoint: &str,
    window: u32,
) -> anyhow::Result<BreakerFigures> {
    Ok(sqlx::query_as::<_, BreakerFigures>(
        "SELECT COUNT(*) AS finished,
                COALESCE(SUM(outcome IN ('task_failed', 'retries_exhausted', 'timed_out')
                             OR (outcome = 'refused'
                                 AND COALESCE(CASE WHEN json_valid(last_error)
                                                   THEN json_extract(last_error, '$.kind') END,
                                              '') <> 'protected')), 0) AS failures
         FROM (SELECT outcome, last_error FROM requests
               WHERE endpoint = ?1 AND finished_at IS NOT NULL
                 AND finished_at >= COALESCE(
                       (SELECT since FROM breaker_resets WHERE endpoint = ?1), 0)
               ORDER BY finished_at DESC, request_id LIMIT ?2)",
    )
    .bind(endpoint)
    .bind(i64::from(window))
    .fetch_one(conn)
    .await?)
}

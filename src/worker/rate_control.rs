//! The adaptive budgets across restarts: at start each endpoint's limiter takes up the state
//! its controller left in the ledger; while the worker runs, a keeper writes each changed
//! state at most once a second (and once more when it stops), and forgets it when the
//! controller is dormant again. The limiter knows nothing of the ledger, the ledger nothing
//! of the controller: they meet here.

use crate::ledger::{Ledger, RateControl, now_ms};
use crate::limit::{Adapted, Limiter};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often the keeper looks for changed states.
const EVERY: Duration = Duration::from_secs(1);

/// Hands each limiter its saved state, if any. A ledger that cannot be read leaves the
/// ceilings in force (logged).
pub async fn restore(ledger: &Ledger, limiters: &[Arc<Limiter>]) {
    let saved = match ledger.rate_controls().await {
        Ok(saved) => saved,
        Err(e) => {
            tracing::warn!(
                error = format!("{e:#}"),
                "cannot read the adapted budgets; starting from the ceilings"
            );
            return;
        }
    };
    let now = now_ms();
    for row in saved {
        let Some(limiter) = limiters.iter().find(|l| l.endpoint() == row.endpoint) else {
            continue; // an endpoint no longer configured
        };
        limiter.restore(Adapted {
            in_flight: row.in_flight_limit,
            rate: row.rate_per_sec,
            since_signal: Duration::from_millis(
                now.saturating_sub(row.last_signal_at).max(0) as u64
            ),
        });
        let limits = limiter.limits();
        tracing::info!(endpoint = %row.endpoint, in_flight = limits.in_flight, rate = limits.rate,
            "took up the endpoint's adapted budget from the ledger");
    }
}

/// Writes the limiters' changed states until `stop`, then once more.
pub async fn keep(ledger: Ledger, limiters: Vec<Arc<Limiter>>, stop: CancellationToken) {
    let mut written: HashMap<String, Option<Key>> = HashMap::new();
    loop {
        let stopping = tokio::select! {
            _ = stop.cancelled() => true,
            _ = tokio::time::sleep(EVERY) => false,
        };
        for limiter in &limiters {
            let state = limiter
                .adapted()
                .map(|a| row(limiter.endpoint(), a, now_ms()));
            let key = state.as_ref().map(key);
            // The first round writes every state: a dormant one clears what an earlier run left.
            if written.get(limiter.endpoint()) == Some(&key) {
                continue;
            }
            if save(&ledger, limiter.endpoint(), state.as_ref()).await {
                written.insert(limiter.endpoint().to_string(), key);
            }
        }
        if stopping {
            return;
        }
    }
}

/// What a change is judged by: the limits to a hundredth, the last signal to the second.
type Key = (i64, Option<i64>, i64);

fn key(r: &RateControl) -> Key {
    let hundredths = |v: f64| (v * 100.0).round() as i64;
    (
        hundredths(r.in_flight_limit),
        r.rate_per_sec.map(hundredths),
        r.last_signal_at / 1000,
    )
}

fn row(endpoint: &str, a: Adapted, now: i64) -> RateControl {
    RateControl {
        endpoint: endpoint.to_string(),
        in_flight_limit: a.in_flight,
        rate_per_sec: a.rate,
        last_signal_at: now - i64::try_from(a.since_signal.as_millis()).unwrap_or(i64::MAX / 2),
    }
}

/// Saves (or, dormant, clears) one endpoint's state; whether it was written.
async fn save(ledger: &Ledger, endpoint: &str, state: Option<&RateControl>) -> bool {
    let result = match state {
        Some(s) => ledger.save_rate_control(s, now_ms()).await,
        None => ledger.clear_rate_control(endpoint).await,
    };
    if let Err(e) = &result {
        tracing::warn!(
            endpoint,
            error = format!("{e:#}"),
            "cannot save the adapted budget; trying again"
        );
    }
    result.is_ok()
}

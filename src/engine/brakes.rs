//! The brakes on an endpoint's DELETEs that the engine applies (design 1.6): the rolling
//! delete cap (counted by the ledger; here only which endpoints are at their cap until
//! when, so the scheduler holds their unsent work instead of claiming it again and again),
//! the failure breaker (tripped in the ledger, announced here), and the dispatch gate that
//! keeps the DELETEs decided but not yet sent few, so a pause or a cap is obeyed at once.

use super::Engine;
use crate::config::Config;
use crate::event::{EndpointData, EndpointEvent, ms_to_time};
use crate::ledger::{BreakerRule, NewEvent, Pause};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The endpoints at their delete cap, and until when (Unix ms).
#[derive(Debug, Default)]
pub(super) struct CapState {
    until: Mutex<HashMap<String, i64>>,
}

impl CapState {
    fn with<R>(&self, f: impl FnOnce(&mut HashMap<String, i64>) -> R) -> R {
        f(&mut self.until.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// The endpoints still at their cap at `now`.
    pub(super) fn held(&self, now: i64) -> Vec<String> {
        self.with(|m| {
            m.retain(|_, until| *until > now);
            m.keys().cloned().collect()
        })
    }
}

/// Per endpoint, how many DELETEs may be decided (attempt counted, checks passed) but not yet
/// answered: the endpoint's calls in flight. Without it, every claimed request would pass its
/// checks at once and then queue for the rate budget, out of reach of a pause.
#[derive(Debug, Default)]
pub(super) struct Gates {
    gates: HashMap<String, Arc<Semaphore>>,
}

impl Gates {
    /// One gate per configured endpoint, as wide as its calls in flight.
    pub(super) fn new(cfg: &Config) -> Self {
        let em = cfg.em.iter().map(|e| (&e.name, e.budget.max_in_flight));
        let dcs = cfg.dcs.iter().map(|d| (&d.name, d.budget.max_in_flight));
        let gates = em
            .chain(dcs)
            .map(|(name, n)| (name.clone(), Arc::new(Semaphore::new(n.max(1)))))
            .collect();
        Gates { gates }
    }

    /// Waits for room to dispatch one DELETE to `endpoint` (none needed for an endpoint
    /// without a gate: it is not configured, and the request is refused before sending).
    pub(super) async fn enter(&self, endpoint: &str) -> Option<OwnedSemaphorePermit> {
        let gate = Arc::clone(self.gates.get(endpoint)?);
        gate.acquire_owned().await.ok()
    }
}

impl Engine {
    /// The endpoint sent its cap of DELETEs in the last hour: its unsent work waits until
    /// `until`. Logged and shown in metrics once per episode.
    pub(super) fn cap_reached(&self, endpoint: &str, until: i64) {
        let first = self
            .caps
            .with(|m| m.insert(endpoint.to_string(), until).is_none());
        if first {
            let cap = self.guard(endpoint).max_deletes_per_hour;
            tracing::warn!(endpoint, cap, resumes_at = %ms_to_time(until),
                "delete cap reached: DELETEs wait (polls go on)");
            metrics::gauge!("reaper_delete_cap_reached", "endpoint" => endpoint.to_string())
                .set(1.0);
        }
    }

    /// A DELETE was allowed: the endpoint is below its cap (again).
    pub(super) fn cap_clear(&self, endpoint: &str) {
        if self.caps.with(|m| m.remove(endpoint).is_some()) {
            tracing::info!(endpoint, "below the delete cap again: DELETEs go on");
            metrics::gauge!("reaper_delete_cap_reached", "endpoint" => endpoint.to_string())
                .set(0.0);
        }
    }

    /// After a failure of a request of `endpoint`: trips the failure breaker when its
    /// figures say so (the ledger decides and pauses in one transaction, with the
    /// `endpoint.paused` event carrying the figures). An endpoint that is not configured has
    /// no breaker: its requests are refused before any call, and pausing it would only
    /// show a phantom endpoint as paused.
    pub(super) async fn check_breaker(&self, endpoint: &str, now: i64) -> anyhow::Result<()> {
        if !self.em.contains_key(endpoint) && !self.dcs.contains_key(endpoint) {
            return Ok(());
        }
        let g = self.guard(endpoint);
        let rule = BreakerRule {
            ratio: g.breaker_ratio,
            min: g.breaker_min,
            window: g.breaker_window,
        };
        let worker = self.cfg.worker_name.as_str();
        let tripped = self
            .ledger
            .trip_breaker(endpoint, rule, now, |p| Some(paused_event(worker, p)))
            .await?;
        if let Some(p) = tripped {
            tracing::error!(endpoint, reason = %p.reason,
                "failure breaker tripped: no new DELETE until `reaper resume --endpoint {endpoint}`");
            metrics::counter!("reaper_breaker_trips_total", "endpoint" => endpoint.to_string())
                .increment(1);
            self.outbox_wake.notify_one();
        }
        Ok(())
    }
}

/// The `endpoint.paused` event of a breaker's pause, with its figures.
fn paused_event(worker: &str, p: &Pause) -> NewEvent {
    let data = EndpointData {
        failures: p.failures.and_then(|f| u64::try_from(f).ok()),
        finished: p.finished.and_then(|f| u64::try_from(f).ok()),
        ..EndpointData::new(&p.name, "paused", &p.reason, ms_to_time(p.since))
    };
    NewEvent::of_endpoint(&EndpointEvent::endpoint(worker, data))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::now_ms;

    #[test]
    fn an_endpoint_is_held_until_its_cap_window_frees_a_delete() {
        let caps = CapState::default();
        let now = now_ms();
        caps.with(|m| m.insert("em".into(), now + 1_000));
        assert_eq!(caps.held(now), ["em"]);
        assert!(caps.held(now + 1_000).is_empty(), "held until `until` only");
    }
}

//! The call budget of one remote endpoint: a rate, a cap on concurrent calls, and an
//! endpoint-wide pause when the server says `Retry-After`. Every call that reaches an
//! endpoint — deletes, polls, verifications, logons — goes through its [`Limiter`], whose
//! [`CallPermit`] also counts the call (`reaper_remote_calls_total`, its duration) and
//! reports its answer to the endpoint's [`Aimd`] controller, which lowers the rate and the
//! cap below the operator's ceilings while the endpoint signals overload (see README.md,
//! Operating notes and metrics). Knows nothing of the ledger: the worker saves and restores
//! the controller's state through [`Limiter::adapted`] and [`Limiter::restore`].

pub mod aimd;
mod gate;
mod permit;

pub use aimd::{Adapted, Limits};
pub use permit::CallPermit;

use crate::retry::{Backoff, Jitter};
use aimd::{Aimd, Ceiling, Signal, Usage};
use gate::{Gate, Pace};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// The budget settings of one endpoint: the ceilings the adaptive controller stays under.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Budget {
    /// Calls per second; `0` means unlimited (benchmarks only).
    pub rate_per_sec: f64,
    /// Calls that may go at once after a quiet spell.
    pub burst: u32,
    /// Calls in flight at once.
    pub max_in_flight: usize,
}

/// One endpoint's limiter. Cheap to share behind an `Arc`.
pub struct Limiter {
    shared: Arc<Shared>,
    paused_until: Mutex<Option<Instant>>,
    /// Throttling answers (429/503) in a row, for the back-off when no `Retry-After` came.
    throttles: AtomicU32,
}

/// What a limiter's permits reach too: the limits and the controller that sets them.
struct Shared {
    /// The endpoint's name: the `endpoint` label of its metrics.
    endpoint: Arc<str>,
    gate: Gate,
    /// `None`: no rate limit.
    pace: Option<Pace>,
    /// The operator's rate and burst (a lowered rate gets a burst in proportion).
    ceiling: (f64, u32),
    control: Mutex<Aimd>,
    /// A call waited for the rate since the last cut.
    rate_waited: AtomicBool,
}

/// How an endpoint that throttles without saying for how long is backed off.
const THROTTLE_BACKOFF: Backoff = Backoff {
    initial: std::time::Duration::from_millis(500),
    factor: 2.0,
    max: std::time::Duration::from_secs(30),
    jitter: Jitter::Equal,
};

impl Limiter {
    /// A limiter whose metrics carry the endpoint label `unnamed`; see [`Limiter::named`].
    pub fn new(budget: Budget) -> Self {
        Self::named("unnamed", budget)
    }

    /// The limiter of endpoint `endpoint` (the `endpoint` label of its metrics).
    pub fn named(endpoint: &str, budget: Budget) -> Self {
        let rate = (budget.rate_per_sec.is_finite() && budget.rate_per_sec > 0.0)
            .then_some(budget.rate_per_sec);
        let in_flight = budget.max_in_flight.clamp(1, u32::MAX as usize);
        let ceiling = Ceiling {
            in_flight: in_flight as u32,
            rate,
        };
        let shared = Shared {
            endpoint: Arc::from(endpoint),
            gate: Gate::new(in_flight),
            pace: rate.map(|r| Pace::new(r, budget.burst)),
            ceiling: (rate.unwrap_or(0.0), budget.burst.max(1)),
            control: Mutex::new(Aimd::new(ceiling)),
            rate_waited: AtomicBool::new(false),
        };
        Limiter {
            shared: Arc::new(shared),
            paused_until: Mutex::new(None),
            throttles: AtomicU32::new(0),
        }
    }

    /// Waits until a call may go: a concurrency slot first (so no rate token is spent while
    /// queued behind slow calls), then any endpoint-wide pause, then a rate token.
    ///
    /// Cancel safety: dropping the future gives back the slot; a rate token, once taken, is spent.
    pub async fn acquire(&self) -> CallPermit {
        let asked = Instant::now();
        let slot = self.shared.gate.enter().await;
        loop {
            let until = *self.paused_until.lock().expect("lock poisoned");
            match until {
                Some(t) if t > Instant::now() => tokio::time::sleep_until(t).await,
                _ => break,
            }
        }
        if let Some(pace) = &self.shared.pace
            && pace.take().await
        {
            self.shared.rate_waited.store(true, Ordering::Relaxed);
        }
        metrics::histogram!("reaper_budget_wait_seconds", "endpoint" => self.shared.endpoint.to_string())
            .record(asked.elapsed().as_secs_f64());
        CallPermit::new(slot, Arc::clone(&self.shared))
    }

    /// The endpoint answered 429 or 503: pause it for `retry_after` when the server said so,
    /// else for a jittered back-off that grows while the throttling goes on. Answers to
    /// calls that were already under way when a pause began do not make it grow: a burst of
    /// 429s is one episode. Returns how long calls are now held.
    pub fn throttled(&self, retry_after: Option<Duration>) -> Duration {
        let now = Instant::now();
        let mut paused = self.paused_until.lock().expect("lock poisoned");
        if retry_after.is_none()
            && let Some(until) = *paused
            && until > now
        {
            return until - now;
        }
        let n = self.throttles.fetch_add(1, Ordering::Relaxed) + 1;
        let d = retry_after.unwrap_or_else(|| THROTTLE_BACKOFF.delay(n));
        if paused.is_none_or(|cur| cur < now + d) {
            *paused = Some(now + d);
        }
        self.count_pause();
        tracing::warn!(pause = ?d, "endpoint throttled: pausing every call to it");
        d
    }

    /// What every answer tells the pause (the permit told the controller already): a 429 or
    /// 503 with `Retry-After` pauses the whole endpoint for that long at least (see
    /// [`Limiter::throttled`]); one without pauses it with the back-off only once the
    /// controller is down to one call in flight — until then its cut is the answer. Any other
    /// answer below 500 means the endpoint takes calls again.
    pub fn observe(&self, status: u16, retry_after: Option<Duration>) {
        match status {
            429 | 503 if retry_after.is_some() || self.limits().in_flight <= 1 => {
                self.throttled(retry_after);
            }
            429 | 503 => {}
            s if s < 500 => self.recovered(),
            _ => {}
        }
    }

    /// A call went through: the throttling back-off starts over.
    pub fn recovered(&self) {
        if self.throttles.load(Ordering::Relaxed) != 0 {
            self.throttles.store(0, Ordering::Relaxed);
        }
    }

    /// Pauses every call to this endpoint for `d` (from `Retry-After` or a back-off).
    /// A longer pause already in force is kept.
    pub fn pause_for(&self, d: Duration) {
        let until = Instant::now() + d;
        let mut p = self.paused_until.lock().expect("lock poisoned");
        if p.is_none_or(|cur| cur < until) {
            *p = Some(until);
        }
        self.count_pause();
    }

    fn count_pause(&self) {
        metrics::counter!("reaper_throttle_pauses_total", "endpoint" => self.shared.endpoint.to_string())
            .increment(1);
    }

    /// The endpoint's name.
    pub fn endpoint(&self) -> &str {
        &self.shared.endpoint
    }

    /// The limits in force now (the ceilings while the controller is dormant).
    pub fn limits(&self) -> Limits {
        self.shared.control().limits()
    }

    /// The controller's state to save; `None` while it is dormant.
    pub fn adapted(&self) -> Option<Adapted> {
        self.shared.control().adapted(Instant::now())
    }

    /// Takes up a saved state (see [`Aimd::restore`]) and applies its limits.
    pub fn restore(&self, saved: Adapted) {
        let mut control = self.shared.control();
        control.restore(saved, Instant::now());
        self.shared.apply(control.limits());
    }
}

impl Shared {
    fn control(&self) -> std::sync::MutexGuard<'_, Aimd> {
        self.control.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A call sent at `sent` was answered with `signal` (`cause`: `429`, `503`, `timeout`).
    fn signal(&self, sent: Instant, signal: Signal, cause: &'static str) {
        let mut control = self.control();
        let (before, was_dormant) = (control.limits(), control.is_dormant());
        match signal {
            Signal::Neutral => return,
            Signal::Clean => control.clean(),
            Signal::Overload => {
                let usage = Usage {
                    in_flight: self.gate.in_use(),
                    rate_bound: self.rate_waited.load(Ordering::Relaxed),
                };
                if !control.overload(sent, Instant::now(), usage) {
                    return;
                }
                self.rate_waited.store(false, Ordering::Relaxed);
                self.count_decrease(cause, control.limits(), was_dormant);
            }
        }
        let after = control.limits();
        if after != before {
            self.apply(after);
        }
        if control.is_dormant() && !was_dormant {
            tracing::info!(endpoint = %self.endpoint, "endpoint budget back at its ceilings");
        }
    }

    /// Sets the gate and the pace to `limits`.
    fn apply(&self, limits: Limits) {
        self.gate.resize(limits.in_flight);
        if let (Some(pace), Some(rate)) = (&self.pace, limits.rate) {
            let (max, burst) = self.ceiling;
            let burst = (f64::from(burst) * rate / max).round().max(1.0) as u32;
            pace.set(rate, burst);
        }
    }

    fn count_decrease(&self, cause: &'static str, now: Limits, first: bool) {
        metrics::counter!("reaper_rate_decreases_total",
            "endpoint" => self.endpoint.to_string(), "signal" => cause)
        .increment(1);
        if first {
            tracing::warn!(endpoint = %self.endpoint, signal = cause, in_flight = now.in_flight,
                rate = now.rate, "endpoint overloaded: lowering its budget below the ceilings");
        } else {
            tracing::debug!(endpoint = %self.endpoint, signal = cause, in_flight = now.in_flight,
                rate = now.rate, "endpoint overloaded: lowering its budget");
        }
    }
}

#[cfg(test)]
mod tests;

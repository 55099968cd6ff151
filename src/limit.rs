//! The call budget of one remote endpoint: a rate (`governor`), a cap on concurrent calls,
//! and an endpoint-wide pause when the server says `Retry-After`. Every call that reaches an
//! endpoint — deletes, polls, verifications, logons — goes through its [`Limiter`].

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// The budget settings of one endpoint.
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
    rate: Option<DefaultDirectRateLimiter>,
    in_flight: Arc<Semaphore>,
    paused_until: Mutex<Option<Instant>>,
}

/// Held for the duration of one call; releases the concurrency slot when dropped.
pub struct CallPermit {
    _slot: OwnedSemaphorePermit,
}

impl Limiter {
    pub fn new(budget: Budget) -> Self {
        let rate = (budget.rate_per_sec > 0.0).then(|| {
            let period = Duration::from_secs_f64(1.0 / budget.rate_per_sec);
            let burst = NonZeroU32::new(budget.burst.max(1)).expect("max(1) is non-zero");
            let quota = Quota::with_period(period)
                .expect("a positive rate has a non-zero period")
                .allow_burst(burst);
            RateLimiter::direct(quota)
        });
        Limiter {
            rate,
            in_flight: Arc::new(Semaphore::new(budget.max_in_flight.max(1))),
            paused_until: Mutex::new(None),
        }
    }

    /// Waits until a call may go: a concurrency slot first (so no rate token is spent while
    /// queued behind slow calls), then any endpoint-wide pause, then a rate token.
    ///
    /// Cancel safety: dropping the future gives back the slot; a rate token, once taken, is spent.
    pub async fn acquire(&self) -> CallPermit {
        let slot = Arc::clone(&self.in_flight)
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        loop {
            let until = *self.paused_until.lock().expect("lock poisoned");
            match until {
                Some(t) if t > Instant::now() => tokio::time::sleep_until(t).await,
                _ => break,
            }
        }
        if let Some(rate) = &self.rate {
            rate.until_ready().await;
        }
        CallPermit { _slot: slot }
    }

    /// Pauses every call to this endpoint for `d` (from `Retry-After` or a back-off).
    /// A longer pause already in force is kept.
    pub fn pause_for(&self, d: Duration) {
        let until = Instant::now() + d;
        let mut p = self.paused_until.lock().expect("lock poisoned");
        if p.is_none_or(|cur| cur < until) {
            *p = Some(until);
        }
    }
}

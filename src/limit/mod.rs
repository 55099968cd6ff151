//! The call budget of one remote endpoint: a rate (`governor`), a cap on concurrent calls,
//! and an endpoint-wide pause when the server says `Retry-After`. Every call that reaches an
//! endpoint — deletes, polls, verifications, logons — goes through its [`Limiter`], whose
//! [`CallPermit`] also counts the call (`reaper_remote_calls_total`, its duration) and which
//! records the budget waits and throttle pauses (see README.md, metrics).

use crate::retry::{Backoff, Jitter};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU32, Ordering};
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
    /// Throttling answers (429/503) in a row, for the back-off when no `Retry-After` came.
    throttles: AtomicU32,
    /// The endpoint's name: the `endpoint` label of its metrics.
    endpoint: Arc<str>,
}

/// How an endpoint that throttles without saying for how long is backed off.
const THROTTLE_BACKOFF: Backoff = Backoff {
    initial: std::time::Duration::from_millis(500),
    factor: 2.0,
    max: std::time::Duration::from_secs(30),
    jitter: Jitter::Equal,
};

/// Held for the duration of one call; releases the concurrency slot when dropped. A call
/// marked [`sending`](CallPermit::sending) is counted when the permit is dropped, with the
/// status of its answer, or `error` when none came (transport failure, timeout, abandoned);
/// a `logon` call is counted in `reaper_logons_total` too (`ok` for 2xx, `refused` for
/// 401/403, else `error`).
pub struct CallPermit {
    _slot: OwnedSemaphorePermit,
    endpoint: Arc<str>,
    call: Option<Call>,
}

struct Call {
    operation: &'static str,
    sent: Instant,
    answer: Option<(u16, Duration)>,
}

impl CallPermit {
    /// The call (`operation`: `delete`, `poll`, `logon`, …) is leaving now.
    pub fn sending(&mut self, operation: &'static str) {
        let sent = Instant::now();
        self.call = Some(Call {
            operation,
            sent,
            answer: None,
        });
    }

    /// The call's answer came with `status`.
    pub fn answered(&mut self, status: u16) {
        if let Some(call) = &mut self.call {
            call.answer = Some((status, call.sent.elapsed()));
        }
    }
}

impl Drop for CallPermit {
    fn drop(&mut self) {
        let Some(call) = self.call.take() else {
            return;
        };
        let (status, took) = match call.answer {
            Some((status, took)) => (status.to_string(), took),
            None => ("error".to_string(), call.sent.elapsed()),
        };
        let (endpoint, operation) = (self.endpoint.to_string(), call.operation);
        metrics::histogram!("reaper_remote_call_duration_seconds",
            "endpoint" => endpoint.clone(), "operation" => operation)
        .record(took.as_secs_f64());
        if operation == "logon" {
            let result = match call.answer {
                Some((200..=299, _)) => "ok",
                Some((401 | 403, _)) => "refused",
                _ => "error",
            };
            metrics::counter!("reaper_logons_total",
                "endpoint" => endpoint.clone(), "result" => result)
            .increment(1);
        }
        metrics::counter!("reaper_remote_calls_total",
            "endpoint" => endpoint, "operation" => operation, "status" => status)
        .increment(1);
    }
}

impl Limiter {
    /// A limiter whose metrics carry the endpoint label `unnamed`; see [`Limiter::named`].
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
            throttles: AtomicU32::new(0),
            endpoint: Arc::from("unnamed"),
        }
    }

    /// The limiter of endpoint `endpoint` (the `endpoint` label of its metrics).
    pub fn named(endpoint: &str, budget: Budget) -> Self {
        Limiter {
            endpoint: Arc::from(endpoint),
            ..Limiter::new(budget)
        }
    }

    /// Waits until a call may go: a concurrency slot first (so no rate token is spent while
    /// queued behind slow calls), then any endpoint-wide pause, then a rate token.
    ///
    /// Cancel safety: dropping the future gives back the slot; a rate token, once taken, is spent.
    pub async fn acquire(&self) -> CallPermit {
        let asked = Instant::now();
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
        metrics::histogram!("reaper_budget_wait_seconds", "endpoint" => self.endpoint.to_string())
            .record(asked.elapsed().as_secs_f64());
        CallPermit {
            _slot: slot,
            endpoint: Arc::clone(&self.endpoint),
            call: None,
        }
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

    /// What every answer tells the budget: 429 and 503 throttle the whole endpoint (see
    /// [`Limiter::throttled`]); any other answer below 500 means it takes calls again.
    pub fn observe(&self, status: u16, retry_after: Option<Duration>) {
        match status {
            429 | 503 => {
                self.throttled(retry_after);
            }
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
        metrics::counter!("reaper_throttle_pauses_total", "endpoint" => self.endpoint.to_string())
            .increment(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unlimited() -> Limiter {
        Limiter::new(Budget {
            rate_per_sec: 0.0,
            burst: 1,
            max_in_flight: 2,
        })
    }

    #[tokio::test(start_paused = true)]
    async fn a_pause_holds_every_caller_until_it_ends() {
        let l = unlimited();
        l.pause_for(Duration::from_secs(3));
        let start = Instant::now();
        let _p = l.acquire().await;
        assert!(start.elapsed() >= Duration::from_secs(3));
        l.pause_for(Duration::from_secs(1));
        l.pause_for(Duration::from_millis(10));
        let start = Instant::now();
        let _q = l.acquire().await;
        assert!(
            start.elapsed() >= Duration::from_secs(1),
            "the longer pause is kept"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn throttling_without_retry_after_backs_off_more_each_episode_until_a_success() {
        let l = unlimited();
        assert_eq!(
            l.throttled(Some(Duration::from_secs(7))),
            Duration::from_secs(7)
        );
        tokio::time::advance(Duration::from_secs(8)).await;
        let mut episodes = Vec::new();
        for _ in 0..3 {
            let d = l.throttled(None);
            // More 429s for calls sent before this pause: the same episode, no growth.
            assert!(l.throttled(None) <= d);
            assert!(l.throttled(None) <= d);
            episodes.push(d);
            tokio::time::advance(d + Duration::from_millis(1)).await;
        }
        // The second to fourth episodes: 1 s, 2 s, 4 s with equal jitter.
        let [d2, d3, d4] = episodes[..] else {
            unreachable!()
        };
        assert!(
            d2 >= Duration::from_millis(500) && d2 <= Duration::from_secs(1),
            "{d2:?}"
        );
        assert!(
            d3 >= Duration::from_secs(1) && d3 <= Duration::from_secs(2),
            "{d3:?}"
        );
        assert!(
            d4 >= Duration::from_secs(2) && d4 <= Duration::from_secs(4),
            "{d4:?}"
        );
        l.recovered();
        let d = l.throttled(None);
        assert!(d <= Duration::from_millis(500), "starts over: {d:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn answers_are_observed_as_throttling_or_recovery() {
        let l = unlimited();
        l.observe(429, Some(Duration::from_secs(2)));
        let start = Instant::now();
        let _p = l.acquire().await;
        assert!(start.elapsed() >= Duration::from_secs(2), "429 pauses");
        let first = l.throttled(None);
        tokio::time::advance(first + Duration::from_millis(1)).await;
        l.observe(500, None);
        let second = l.throttled(None);
        assert!(
            second >= Duration::from_millis(500),
            "500 is no recovery: {second:?}"
        );
        tokio::time::advance(second + Duration::from_millis(1)).await;
        l.observe(404, None);
        let after = l.throttled(None);
        assert!(
            after <= Duration::from_millis(500),
            "a 404 answered: {after:?}"
        );
    }

    #[tokio::test]
    async fn the_concurrency_cap_holds_callers_back() {
        let l = Arc::new(unlimited());
        let a = l.acquire().await;
        let _b = l.acquire().await;
        let waiting = tokio::spawn({
            let l = Arc::clone(&l);
            async move { l.acquire().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "a third call waits for a slot");
        drop(a);
        waiting.await.unwrap();
    }
}

//! Backoff as a value: one policy type yields the delays for DELETE retries, task polls,
//! verifications and reconnects. The exponential schedule comes from `backon`; jitter is
//! applied here because `backon` only offers additive jitter and retries want full jitter.
//!
//! Pure: no sleeping, no I/O. Callers sleep through `tokio::time` (or store a due time).

use backon::{BackoffBuilder, ExponentialBuilder};
use rand::Rng;
use std::time::Duration;

/// How much randomness a delay gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Jitter {
    /// The exact exponential delay.
    None,
    /// Uniform in `[0, d]` ("full jitter"): spreads retries of many requests the most.
    Full,
    /// Uniform in `[d/2, d]`: keeps polls from coming back too early.
    Equal,
}

/// An exponential backoff policy: `initial * factor^(n-1)`, capped at `max`, then jittered.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    pub initial: Duration,
    pub factor: f32,
    pub max: Duration,
    pub jitter: Jitter,
}

impl Backoff {
    /// The policy for retrying a failed DELETE: 1 s doubling to 60 s, full jitter.
    pub const RETRY: Backoff = Backoff {
        initial: Duration::from_secs(1),
        factor: 2.0,
        max: Duration::from_secs(60),
        jitter: Jitter::Full,
    };

    /// The policy for polling a running task: 1 s doubling to 30 s, equal jitter.
    pub const POLL: Backoff = Backoff {
        initial: Duration::from_secs(1),
        factor: 2.0,
        max: Duration::from_secs(30),
        jitter: Jitter::Equal,
    };

    /// The policy for reconnecting to the broker and re-publishing: 200 ms doubling to 10 s.
    pub const RECONNECT: Backoff = Backoff {
        initial: Duration::from_millis(200),
        factor: 2.0,
        max: Duration::from_secs(10),
        jitter: Jitter::Equal,
    };

    /// The policy for re-sending one outbox event the broker returned or nacked: 1 s doubling
    /// to 60 s, equal jitter (so rows returned together do not come back together).
    pub const OUTBOX: Backoff = Backoff {
        initial: Duration::from_secs(1),
        factor: 2.0,
        max: Duration::from_secs(60),
        jitter: Jitter::Equal,
    };

    /// The `backon` builder of this schedule (without jitter), for `Retryable` loops.
    pub fn builder(&self) -> ExponentialBuilder {
        ExponentialBuilder::default()
            .with_min_delay(self.initial)
            .with_factor(self.factor)
            .with_max_delay(self.max)
            .without_max_times()
    }

    /// The un-jittered delay before attempt `n + 1`, after `n` (≥ 1) failures.
    pub fn base_delay(&self, n: u32) -> Duration {
        let n = n.clamp(1, 64) as usize;
        self.builder().build().nth(n - 1).unwrap_or(self.max)
    }

    /// The jittered delay after `n` failures.
    pub fn delay(&self, n: u32) -> Duration {
        self.delay_with(n, &mut rand::rng())
    }

    /// [`Backoff::delay`] with a given random source (for tests).
    pub fn delay_with(&self, n: u32, rng: &mut impl Rng) -> Duration {
        let d = self.base_delay(n);
        let ms = d.as_millis() as u64;
        match self.jitter {
            Jitter::None => d,
            Jitter::Full => Duration::from_millis(rng.random_range(0..=ms)),
            Jitter::Equal => Duration::from_millis(ms / 2 + rng.random_range(0..=ms - ms / 2)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn the_schedule_doubles_and_caps() {
        let b = Backoff {
            jitter: Jitter::None,
            ..Backoff::POLL
        };
        let got: Vec<u64> = (1..=7).map(|n| b.base_delay(n).as_secs()).collect();
        assert_eq!(got, vec![1, 2, 4, 8, 16, 30, 30]);
        assert_eq!(b.delay(3), Duration::from_secs(4));
        assert_eq!(
            b.base_delay(0),
            Duration::from_secs(1),
            "0 counts as the first"
        );
        assert_eq!(b.base_delay(1000), Duration::from_secs(30));
    }

    #[test]
    fn full_jitter_stays_within_zero_and_the_delay() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let b = Backoff::RETRY;
        let samples: Vec<Duration> = (0..500).map(|_| b.delay_with(4, &mut rng)).collect();
        assert!(samples.iter().all(|d| *d <= Duration::from_secs(8)));
        assert!(
            samples.iter().any(|d| *d < Duration::from_secs(2)),
            "spreads low"
        );
        assert!(
            samples.iter().any(|d| *d > Duration::from_secs(6)),
            "spreads high"
        );
    }

    #[test]
    fn equal_jitter_stays_in_the_upper_half() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(9);
        let b = Backoff::POLL;
        for _ in 0..500 {
            let d = b.delay_with(3, &mut rng);
            assert!(
                d >= Duration::from_secs(2) && d <= Duration::from_secs(4),
                "{d:?}"
            );
        }
    }
}

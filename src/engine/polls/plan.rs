//! When to poll a running task next: the pure rule. While too little is known of the task's
//! kind, the backoff policy (`REAPER_POLL_*`). Once its kind's durations are fitted: the first
//! poll near the earliest expected end (the 5th percentile), then polls spaced by a share
//! (`REAPER_POLL_LATENESS`) of the time the task has run so far — a task still running at
//! `t` has a duration above `t`, so the next poll at `t × (1 + share)` sees its end within
//! that share of its duration. Past the 99th percentile (longer than nearly every task seen)
//! the share grows with how far past, up to the policy's factor. Learned polls of one task are never
//! closer than `REAPER_POLL_INITIAL`, never further apart than `REAPER_POLL_MAX`, and the
//! endpoint's budget may stretch them (see `pace`).
//!
//! Pure: the random source is passed in.

use super::fit::Fit;
use crate::retry::Backoff;
use rand::Rng;
use std::time::Duration;

/// The first learned poll: at the 5th percentile of the fitted durations.
pub const Z_FIRST: f64 = -1.645;
/// Beyond the 99th percentile, the spacing grows as the policy's.
pub const Z_LAST: f64 = 2.326;

/// How polls are planned for one worker.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rules {
    /// The backoff policy: used while too little is known, and its bounds always.
    pub policy: Backoff,
    /// How late a finish may be seen, as a share of the task's duration.
    pub lateness: f64,
}

/// Where one task stands when its next poll is planned.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Task {
    /// Since its DELETE was answered.
    pub elapsed: Duration,
    /// Polls so far.
    pub polls: u32,
}

impl Rules {
    /// The delay before the next poll of `task`, whose kind's durations are `fit` (`None`:
    /// too little known). `stretch` (≥ 1) spreads learned polls when the endpoint's budget
    /// cannot serve them all.
    pub fn delay(
        &self,
        fit: Option<&Fit>,
        task: Task,
        stretch: f64,
        rng: &mut impl Rng,
    ) -> Duration {
        let Some(fit) = fit else {
            return self.policy.delay_with(task.polls + 1, rng);
        };
        let ran = task.elapsed.as_secs_f64() * 1000.0;
        let (first, last) = (fit.at_z(Z_FIRST), fit.at_z(Z_LAST));
        let step = if ran < first {
            first - ran
        } else if ran <= last {
            self.lateness * ran * stretch
        } else {
            // Longer than nearly every task seen: the share grows with how far beyond, up
            // to the policy's own growth (a task just past the range is still followed
            // closely; one far past it is polled as the policy would).
            let growth = (f64::from(self.policy.factor) - 1.0).max(self.lateness);
            let share = self.lateness * (ran / last).powi(3);
            share.min(growth) * ran * stretch
        };
        // A little randomness (earlier, never later) keeps tasks recorded together from
        // polling in step.
        let step = step * rng.random_range(0.9..=1.0);
        let floor = self.policy.initial.as_secs_f64() * 1000.0 * stretch;
        let most = self.policy.max.as_secs_f64() * 1000.0;
        Duration::from_millis(step.max(floor).min(most) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::retry::Jitter;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    const RULES: Rules = Rules {
        policy: Backoff {
            initial: Duration::from_secs(1),
            factor: 2.0,
            max: Duration::from_secs(30),
            jitter: Jitter::Equal,
        },
        lateness: 0.1,
    };

    /// Tasks of about 10 s (5th percentile ≈ 8.2 s, 99th ≈ 13 s).
    const TEN_S: Fit = Fit {
        mu: 9.2103, // ln 10,000 ms
        sigma: 0.12,
    };

    fn at(secs: f64, polls: u32) -> Task {
        Task {
            elapsed: Duration::from_secs_f64(secs),
            polls,
        }
    }

    fn secs(d: Duration) -> f64 {
        d.as_secs_f64()
    }

    #[test]
    fn without_a_fit_the_backoff_policy_plans() {
        let mut rng = StdRng::seed_from_u64(1);
        for polls in 0..6 {
            let d = RULES.delay(None, at(0.0, polls), 1.0, &mut rng);
            let base = RULES.policy.base_delay(polls + 1);
            assert!(d >= base / 2 && d <= base, "poll {polls}: {d:?}");
        }
    }

    #[test]
    fn the_first_poll_goes_near_the_earliest_expected_end() {
        let mut rng = StdRng::seed_from_u64(2);
        let d = secs(RULES.delay(Some(&TEN_S), at(0.0, 0), 1.0, &mut rng));
        let first = TEN_S.at_z(Z_FIRST) / 1000.0;
        assert!((7.9..8.3).contains(&first), "{first}");
        assert!(d <= first && d >= first * 0.9, "{d}");
    }

    #[test]
    fn around_the_expected_end_a_finish_is_seen_within_the_share() {
        let mut rng = StdRng::seed_from_u64(3);
        for ran in [8.5, 9.5, 11.0, 12.5] {
            let d = secs(RULES.delay(Some(&TEN_S), at(ran, 2), 1.0, &mut rng));
            assert!(d <= (0.1 * ran).max(1.0) + 1e-9, "after {ran} s: {d}");
            assert!(
                d >= 1.0 - 1e-9,
                "never closer than REAPER_POLL_INITIAL: {d}"
            );
        }
        let long = Fit { mu: 11.5, ..TEN_S }; // about 100 s
        let d = secs(RULES.delay(Some(&long), at(95.0, 4), 1.0, &mut rng));
        assert!((8.5..=9.5).contains(&d), "{d}");
    }

    #[test]
    fn past_everything_seen_the_spacing_grows_to_the_policys_and_caps() {
        let mut rng = StdRng::seed_from_u64(4);
        let last = TEN_S.at_z(Z_LAST) / 1000.0;
        assert!((12.5..13.5).contains(&last), "{last}");
        let just_past = secs(RULES.delay(Some(&TEN_S), at(last * 1.05, 5), 1.0, &mut rng));
        assert!(
            just_past < 0.13 * last * 1.05,
            "still followed closely: {just_past}"
        );
        let d = secs(RULES.delay(Some(&TEN_S), at(2.0 * last, 6), 1.0, &mut rng));
        assert!(
            d >= 0.7 * 2.0 * last && d <= 2.0 * last,
            "twice as long as any seen: nearly doubling the time run: {d}"
        );
        let d = secs(RULES.delay(Some(&TEN_S), at(100.0, 8), 1.0, &mut rng));
        assert_eq!(d, 30.0, "never beyond REAPER_POLL_MAX");
    }

    #[test]
    fn a_stretch_spreads_learned_polls_but_not_the_wait_for_the_first() {
        let mut rng = StdRng::seed_from_u64(5);
        let first = secs(RULES.delay(Some(&TEN_S), at(0.0, 0), 4.0, &mut rng));
        assert!(first < 8.3, "{first}");
        let d = secs(RULES.delay(Some(&TEN_S), at(10.0, 2), 4.0, &mut rng));
        assert!((3.6..=4.0).contains(&d), "{d}");
        let short = Fit { mu: 6.9, ..TEN_S }; // about 1 s: steps below the floor
        let d = secs(RULES.delay(Some(&short), at(1.0, 1), 3.0, &mut rng));
        assert_eq!(d, 3.0, "the floor is stretched too");
    }
}

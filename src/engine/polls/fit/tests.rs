//! The fit against samples drawn the way polls draw them.

use super::*;
use crate::retry::Backoff;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// `n` durations in ms, uniform in `[lo, hi]`.
fn uniform(n: usize, lo: f64, hi: f64, seed: u64) -> Vec<f64> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n).map(|_| rng.random_range(lo..=hi)).collect()
}

/// What polls at `times` (ms, rising) see of a task lasting `d` ms.
fn seen(d: f64, times: &[f64]) -> TaskDuration {
    let k = times
        .iter()
        .position(|&t| t >= d)
        .expect("a poll after the end");
    TaskDuration {
        running_ms: if k == 0 { 0 } else { times[k - 1] as i64 },
        ended_ms: times[k] as i64,
    }
}

/// Poll times of the backoff policy (its jitter drawn from `rng`).
fn backoff_times(rng: &mut StdRng) -> Vec<f64> {
    let mut t = 0.0;
    (1..30)
        .map(|n| {
            t += Backoff::POLL.delay_with(n, rng).as_millis() as f64;
            t
        })
        .collect()
}

/// A ladder: the first poll at `first`, then 10 % further each time.
fn ladder(first: f64) -> Vec<f64> {
    (0..60).map(|k| first * 1.1f64.powi(k)).collect()
}

fn p5(f: &Fit) -> f64 {
    f.at_z(-1.645)
}

#[test]
fn nearly_exact_samples_give_back_their_distribution() {
    let samples: Vec<TaskDuration> = uniform(64, 8_000.0, 12_000.0, 1)
        .into_iter()
        .map(|d| TaskDuration {
            running_ms: d as i64,
            ended_ms: d as i64 + 1,
        })
        .collect();
    let f = Fit::of(&samples, None).unwrap();
    let median = f.at_z(0.0);
    assert!((9_500.0..10_500.0).contains(&median), "{f:?}");
    assert!((7_700.0..8_600.0).contains(&p5(&f)), "{f:?}");
}

#[test]
fn coarse_backoff_intervals_widen_the_fit() {
    let mut rng = StdRng::seed_from_u64(2);
    let samples: Vec<TaskDuration> = uniform(20, 8_000.0, 12_000.0, 3)
        .into_iter()
        .map(|d| seen(d, &backoff_times(&mut rng)))
        .collect();
    let f = Fit::of(&samples, None).unwrap();
    let logs: Vec<(f64, f64)> = samples.iter().filter_map(log_bounds).collect();
    assert!(
        resolution(&logs) > 0.15,
        "doubling polls: {}",
        resolution(&logs)
    );
    assert!(f.sigma >= WIDEN.sqrt() * resolution(&logs), "{f:?}");
    assert!((8_000.0..13_000.0).contains(&f.at_z(0.0)), "{f:?}");
    assert!((6_500.0..8_800.0).contains(&p5(&f)), "{f:?}");
}

/// The whole plan, from twenty samples of the backoff policy, on the tasks of 8–12 s:
/// under four polls a task on average (five calls with the DELETE), and the end of 90 % of
/// the tasks seen within 15 % of their duration, in each of a hundred trials.
#[test]
fn a_plan_from_twenty_backoff_samples_meets_the_target() {
    use super::super::plan::{Rules, Task};
    use std::time::Duration;
    let rules = Rules {
        policy: Backoff::POLL,
        lateness: 0.1,
    };
    let mut rng = StdRng::seed_from_u64(99);
    let (mut polls, mut tasks) = (0u32, 0u32);
    for trial in 0..100 {
        let samples: Vec<TaskDuration> = uniform(20, 8_000.0, 12_000.0, 1_000 + trial)
            .into_iter()
            .map(|d| seen(d, &backoff_times(&mut rng)))
            .collect();
        let fit = Fit::of(&samples, None).unwrap();
        let mut late = vec![];
        for d in uniform(20, 8_000.0, 12_000.0, 5_000 + trial) {
            let (mut t, mut k) = (0.0, 0);
            while t < d {
                let elapsed = Duration::from_millis(t as u64);
                let task = Task { elapsed, polls: k };
                t += rules.delay(Some(&fit), task, 1.0, &mut rng).as_millis() as f64;
                k += 1;
            }
            polls += k;
            tasks += 1;
            late.push((t - d) / d);
        }
        late.sort_by(f64::total_cmp);
        assert!(late[17] <= 0.15, "trial {trial}: {fit:?}: {late:?}");
    }
    let per_task = f64::from(polls) / f64::from(tasks);
    assert!(per_task < 4.0, "{per_task} polls a task");
}
#[test]
fn tasks_ended_at_the_first_poll_pull_it_earlier_not_to_half() {
    // The first poll at 9.5 s is late for tasks of 8–12 s: a third end before it.
    let samples: Vec<TaskDuration> = uniform(64, 8_000.0, 12_000.0, 4)
        .into_iter()
        .map(|d| seen(d, &ladder(9_500.0)))
        .collect();
    assert!(samples.iter().filter(|s| s.running_ms == 0).count() > 10);
    let f = Fit::of(&samples, None).unwrap();
    assert!(
        (7_300.0..9_000.0).contains(&p5(&f)),
        "earlier than 9.5 s, nowhere near 4.75 s: {f:?}"
    );
    // The same samples from the previous fit: the same answer.
    let warm = Fit::of(
        &samples,
        Some(Fit {
            mu: 9.0,
            sigma: 0.5,
        }),
    )
    .unwrap();
    assert!((warm.mu - f.mu).abs() < 0.01 && (warm.sigma - f.sigma).abs() < 0.01);
}

#[test]
fn odd_samples_never_break_the_fit() {
    assert_eq!(Fit::of(&[], None), None);
    let bad = TaskDuration {
        running_ms: 500,
        ended_ms: 400,
    };
    assert_eq!(Fit::of(&[bad], None), None, "bounds nothing");
    // Every task ended before the first poll: as short as the fit allows, still finite.
    let early = vec![
        TaskDuration {
            running_ms: 0,
            ended_ms: 500,
        };
        20
    ];
    let f = Fit::of(&early, None).unwrap();
    assert!(
        f.mu.is_finite() && f.sigma.is_finite() && p5(&f) <= 500.0,
        "{f:?}"
    );
    // Identical exact samples: a narrow distribution, not a zero-width one.
    let same = vec![
        TaskDuration {
            running_ms: 10_000,
            ended_ms: 10_001,
        };
        20
    ];
    let f = Fit::of(&same, None).unwrap();
    assert!(f.sigma >= MIN_SIGMA && (9_500.0..10_100.0).contains(&f.at_z(0.0)));
    // Far out in a tail of the current fit.
    let far = [TaskDuration {
        running_ms: 3_600_000,
        ended_ms: 3_700_000,
    }];
    let f = Fit::of(
        &far,
        Some(Fit {
            mu: 2.0,
            sigma: 0.02,
        }),
    )
    .unwrap();
    assert!(f.mu.is_finite() && f.at_z(0.0) > 1_000_000.0, "{f:?}");
}

#[test]
fn the_error_function_holds_its_digits_in_the_tails() {
    for (x, want) in [
        (0.0, 1.0),
        (1.0, 0.157_299_207_050_285_1),
        (-1.0, 1.842_700_792_949_715),
        (3.0, 2.209_049_699_858_544e-5),
        (6.0, 2.151_973_671_249_891e-17),
    ] {
        let got = erfc(x);
        assert!(((got - want) / want).abs() < 2e-7, "erfc({x}) = {got}");
    }
    assert!((normal_mass(f64::NEG_INFINITY, 0.0) - 0.5).abs() < 1e-7);
    assert!((normal_mass(-1.0, 1.0) - 0.682_689_49).abs() < 1e-6);
}

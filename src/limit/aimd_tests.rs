//! The controller alone: sequences of signals and the limits they leave.

use super::*;

const MS: Duration = Duration::from_millis(1);

fn ceiling(in_flight: u32, rate: Option<f64>) -> Aimd {
    Aimd::new(Ceiling { in_flight, rate })
}

fn used(in_flight: usize) -> Usage {
    Usage {
        in_flight,
        rate_bound: false,
    }
}

/// Clean answers until the in-flight limit reaches `target`; how many it took.
fn clean_until(a: &mut Aimd, target: usize) -> usize {
    let mut n = 0;
    while a.limits().in_flight < target {
        a.clean();
        n += 1;
        assert!(n < 10_000, "never reached {target}: {:?}", a.limits());
    }
    n
}

#[test]
fn statuses_are_overload_clean_or_neutral() {
    let table = [
        (200, Signal::Clean),
        (202, Signal::Clean),
        (404, Signal::Clean),
        (409, Signal::Clean),
        (429, Signal::Overload),
        (500, Signal::Neutral),
        (502, Signal::Neutral),
        (503, Signal::Overload),
        (504, Signal::Neutral),
    ];
    for (status, want) in table {
        assert_eq!(Signal::of_status(status), want, "{status}");
    }
}

#[test]
fn dormant_until_the_first_overload_signal() {
    let mut a = ceiling(32, Some(10.0));
    for _ in 0..100 {
        a.clean();
    }
    assert!(a.is_dormant());
    assert_eq!(a.adapted(Instant::now()), None);
    let want = Limits {
        in_flight: 32,
        rate: Some(10.0),
    };
    assert_eq!(a.limits(), want);
}

#[test]
fn a_cut_keeps_seventy_percent_of_the_calls_in_use_once_per_episode() {
    let t0 = Instant::now();
    let mut a = ceiling(32, None);
    assert!(a.overload(t0, t0 + 50 * MS, used(32)));
    assert_eq!(a.limits().in_flight, 22); // 0.7 × 32 = 22.4
    // More 503s for calls that were sent before the cut: the same episode.
    for i in 0..20 {
        assert!(!a.overload(t0 + i * MS, t0 + (50 + i) * MS, used(32)));
    }
    assert_eq!(a.limits().in_flight, 22);
    // A call sent after the cut that meets overload again cuts again, from what is in use.
    assert!(a.overload(t0 + 60 * MS, t0 + 110 * MS, used(15)));
    assert_eq!(a.limits().in_flight, 10); // 0.7 × min(22.4, 15) = 10.5
    assert_eq!(a.limits().rate, None, "no rate ceiling: no rate to cut");
}

#[test]
fn clean_answers_add_one_call_per_window_up_to_the_ceiling_then_it_is_dormant() {
    let t0 = Instant::now();
    let mut a = ceiling(12, None);
    a.overload(t0, t0, used(12)); // 8.4
    assert_eq!(a.limits().in_flight, 8);
    // 8.4 to 9 takes 6 answers, a bit over half a window of 8; 9 to 10 about a window of 9.
    assert_eq!(clean_until(&mut a, 9), 6);
    assert_eq!(clean_until(&mut a, 10), 9);
    clean_until(&mut a, 12);
    assert!(a.is_dormant(), "back at the ceiling");
    for _ in 0..50 {
        a.clean();
    }
    assert_eq!(a.limits().in_flight, 12, "never above the ceiling");
}

#[test]
fn a_steady_overload_settles_in_a_sawtooth_around_the_capacity() {
    // A server that takes 8 calls at once and answers 503 to the 9th.
    let t0 = Instant::now();
    let mut a = ceiling(32, None);
    let (mut now, mut overloads, mut calls) = (t0, 0, 0);
    for _ in 0..2_000 {
        now += MS;
        let n = a.limits().in_flight;
        calls += n;
        if n > 8 {
            overloads += n - 8;
            a.overload(now, now + MS, used(n));
            (0..8).for_each(|_| a.clean());
        } else {
            (0..n).for_each(|_| a.clean());
        }
        assert!((1..=32).contains(&a.limits().in_flight));
    }
    let share = overloads as f64 / calls as f64;
    assert!(share < 0.05, "{overloads} of {calls} calls overloaded");
    assert!(
        calls as f64 >= 0.85 * 8.0 * 2_000.0,
        "{calls} calls in 2000 rounds"
    );
}

#[test]
fn the_rate_is_cut_only_when_it_held_calls_back_and_climbs_back_slowly() {
    let t0 = Instant::now();
    let mut a = ceiling(8, Some(100.0));
    a.overload(t0, t0, used(2));
    assert_eq!(a.limits().in_flight, 1);
    assert_eq!(a.limits().rate, Some(100.0), "the rate held nothing back");
    let bound = Usage {
        in_flight: 1,
        rate_bound: true,
    };
    a.overload(t0 + MS, t0 + MS, bound);
    assert_eq!(a.limits().rate, Some(70.0));
    // One second of clean answers at 70/s adds about 5% of the ceiling: 5 calls/s.
    (0..70).for_each(|_| a.clean());
    let rate = a.limits().rate.unwrap();
    assert!((74.5..75.5).contains(&rate), "{rate}");
}

#[test]
fn cuts_stop_at_one_call_in_flight_and_a_hundredth_of_the_rate() {
    let t0 = Instant::now();
    let mut a = ceiling(16, Some(10.0));
    for i in 0..100 {
        let now = t0 + i * MS;
        let usage = Usage {
            in_flight: 16,
            rate_bound: true,
        };
        a.overload(now, now, usage);
    }
    let want = Limits {
        in_flight: 1,
        rate: Some(0.1),
    };
    assert_eq!(a.limits(), want);
}

#[test]
fn the_saved_state_comes_back_within_the_ceilings_relaxed_by_one_step_a_minute() {
    let now = Instant::now();
    let saved = |in_flight, rate, secs| Adapted {
        in_flight,
        rate,
        since_signal: Duration::from_secs(secs),
    };
    let mut a = ceiling(32, Some(20.0));
    a.restore(saved(6.5, Some(8.0), 10), now);
    assert_eq!(a.adapted(now), Some(saved(6.5, Some(8.0), 10)));
    // Three minutes ago: three steps (+3 in flight, +3 × 1 call/s).
    a.restore(saved(6.5, Some(8.0), 180), now);
    let got = a.adapted(now).unwrap();
    assert_eq!((got.in_flight, got.rate), (9.5, Some(11.0)));
    // Saved under higher ceilings, or garbage: today's ceilings bound it.
    let mut a = ceiling(4, Some(5.0));
    a.restore(saved(f64::NAN, Some(50.0), 0), now);
    assert!(a.is_dormant(), "{:?}", a.adapted(now));
    a.restore(saved(3.0, None, 0), now);
    assert_eq!(a.limits().in_flight, 3);
    assert_eq!(a.limits().rate, Some(5.0));
    // Long ago: relaxed all the way back, dormant.
    let mut a = ceiling(32, Some(20.0));
    a.restore(saved(1.0, Some(0.2), 3 * 3600), now);
    assert!(a.is_dormant());
}

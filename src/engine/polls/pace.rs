//! Keeps the polls of one endpoint within what its budget can serve: every poll goes
//! through the endpoint's limiter anyway, but polls planned more often than the rate allows
//! would only queue there, late, in front of the DELETEs. So the polls of each window are
//! counted, and when they used more than half of the endpoint's rate (the other half is for
//! DELETEs, as when follow-ups resume after a restart), learned polls are spread out by a
//! stretch that grows until they fit, and shrinks back to 1 when there is room.
//!
//! Pure: the caller passes the time in.

/// How long a counting window lasts, in ms.
const WINDOW_MS: i64 = 5_000;
/// The share of an endpoint's rate that polls may take.
const POLL_SHARE: f64 = 0.5;
/// The most polls are spread out.
const MAX_STRETCH: f64 = 64.0;

/// The polls of one endpoint and how much they are spread out.
#[derive(Debug, Clone, PartialEq)]
pub struct Pace {
    /// The endpoint's rate budget, calls a second (0: unlimited).
    rate: f64,
    window_start: i64,
    polls: u32,
    stretch: f64,
}

impl Pace {
    /// The pace of an endpoint whose rate budget is `rate` calls a second (0: unlimited).
    pub fn new(rate: f64) -> Self {
        Pace {
            rate,
            window_start: i64::MIN,
            polls: 0,
            stretch: 1.0,
        }
    }

    /// Counts one poll made at `now` (ms) and says how much learned polls are spread out.
    pub fn poll(&mut self, now: i64) -> f64 {
        if self.rate <= 0.0 {
            return 1.0;
        }
        if self.window_start == i64::MIN {
            self.window_start = now;
        }
        let span = now.saturating_sub(self.window_start);
        if span >= WINDOW_MS {
            let used = f64::from(self.polls) * 1000.0 / span as f64;
            let share = self.rate * POLL_SHARE;
            self.stretch = (self.stretch * used / share).clamp(1.0, MAX_STRETCH);
            self.window_start = now;
            self.polls = 0;
        }
        self.polls += 1;
        self.stretch
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `n` polls a second over `secs` seconds from `start` (ms); the last stretch.
    fn run(p: &mut Pace, start: i64, per_sec: i64, secs: i64) -> f64 {
        let mut last = 1.0;
        for i in 0..per_sec * secs {
            last = p.poll(start + i * 1000 / per_sec);
        }
        last
    }

    #[test]
    fn polls_within_half_the_rate_are_not_stretched() {
        let mut p = Pace::new(10.0);
        assert_eq!(run(&mut p, 0, 4, 30), 1.0);
        let mut unlimited = Pace::new(0.0);
        assert_eq!(run(&mut unlimited, 0, 1000, 10), 1.0);
    }

    #[test]
    fn polls_beyond_half_the_rate_are_stretched_and_relaxed_when_there_is_room() {
        let mut p = Pace::new(10.0);
        assert_eq!(
            run(&mut p, 0, 10, 5),
            1.0,
            "the first window is being counted"
        );
        // 10 polls/s where 5/s may go: spread out twice as far; spread so, they fit, and the
        // stretch holds.
        let held = run(&mut p, 5_000, 5, 10);
        assert_eq!(held, 2.0);
        // Fewer tasks: room again, the stretch goes back to 1.
        let relaxed = run(&mut p, 15_000, 1, 20);
        assert_eq!(relaxed, 1.0);
        // Crowded again, then idle: an idle endpoint starts again unstretched.
        run(&mut p, 40_000, 20, 6);
        assert!(p.poll(46_000) > 1.0);
        p.poll(1_000_000);
        assert_eq!(p.poll(1_000_001), 1.0);
    }
}

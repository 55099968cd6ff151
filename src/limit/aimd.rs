//! The adaptive part of an endpoint's budget: an AIMD controller that lowers the calls in
//! flight and the rate when the endpoint signals overload (429, 503, a timeout) and raises them
//! slowly while its answers are clean, never above the operator's ceilings
//! (`REAPER_MAX_IN_FLIGHT`, `REAPER_RATE_PER_SEC`, which stay hard limits). Dormant — the
//! ceilings used as they are — until the first overload signal, and again once both limits
//! are back at their ceilings.
//!
//! Pure: time and usage are passed in, and the [`Limiter`](super::Limiter) applies the
//! [`Limits`] it yields. Knows nothing of HTTP, the ledger or metrics.

use std::time::Duration;
use tokio::time::Instant;

/// Multiplicative decrease: a cut keeps this share of the calls in flight (and of the rate).
pub const DECREASE: f64 = 0.7;
/// Additive increase of the rate: this share of the rate ceiling per second of clean answers.
pub const RATE_RISE: f64 = 0.05;
/// The rate never goes below this share of its ceiling.
pub const RATE_FLOOR: f64 = 0.01;
/// Restored after a restart, adapted limits are relaxed by one step (one more call in
/// flight, [`RATE_RISE`] of the rate ceiling) per this long since the last overload signal.
pub const RELAX_EVERY: Duration = Duration::from_secs(60);

/// The operator's hard limits of one endpoint.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ceiling {
    /// Calls in flight at once (at least 1).
    pub in_flight: u32,
    /// Calls per second; `None`: no rate limit (then only the calls in flight adapt).
    pub rate: Option<f64>,
}

/// What one call's answer says about the endpoint's load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// 429, 503, or no answer within the timeout.
    Overload,
    /// Any other answer below 500 (a 404 or a 409 is the endpoint coping).
    Clean,
    /// Other 5xx: an error, but no sign of load.
    Neutral,
}

impl Signal {
    /// The signal of an answer with `status`.
    pub fn of_status(status: u16) -> Self {
        match status {
            429 | 503 => Signal::Overload,
            s if s < 500 => Signal::Clean,
            _ => Signal::Neutral,
        }
    }
}

/// How the budget was used when an overload signal came.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    /// Calls in flight, the signalling one included.
    pub in_flight: usize,
    /// Whether a call waited for the rate since the last cut: the rate is what held calls
    /// back, so it is cut too. Else only the calls in flight are.
    pub rate_bound: bool,
}

/// The limits in force.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    pub in_flight: usize,
    pub rate: Option<f64>,
}

/// An engaged controller's state, as saved across a restart.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Adapted {
    /// The limit of calls in flight (fractional: it grows by a fraction per clean answer).
    pub in_flight: f64,
    /// The rate in calls per second; `None` when the ceiling has no rate.
    pub rate: Option<f64>,
    /// How long ago the last overload signal came.
    pub since_signal: Duration,
}

/// One endpoint's controller.
#[derive(Debug, Clone)]
pub struct Aimd {
    ceiling: Ceiling,
    engaged: Option<Engaged>,
}

#[derive(Debug, Clone, Copy)]
struct Engaged {
    in_flight: f64,
    rate: Option<f64>,
    /// When the limits were last cut: signals for calls sent before it belong to the episode
    /// that cut already (at most one cut per round trip).
    last_cut: Option<Instant>,
    last_signal: Instant,
}

impl Aimd {
    /// A dormant controller under `ceiling`.
    pub fn new(ceiling: Ceiling) -> Self {
        let ceiling = Ceiling {
            in_flight: ceiling.in_flight.max(1),
            rate: ceiling.rate.filter(|r| r.is_finite() && *r > 0.0),
        };
        Aimd {
            ceiling,
            engaged: None,
        }
    }

    /// The limits in force now.
    pub fn limits(&self) -> Limits {
        let max = self.ceiling.in_flight as usize;
        match &self.engaged {
            None => Limits {
                in_flight: max,
                rate: self.ceiling.rate,
            },
            Some(e) => Limits {
                in_flight: (e.in_flight.floor() as usize).clamp(1, max),
                rate: e.rate,
            },
        }
    }

    /// Whether the ceilings are used as they are.
    pub fn is_dormant(&self) -> bool {
        self.engaged.is_none()
    }

    /// An overload signal at `now` for a call sent at `sent`. Cuts the calls in flight to
    /// [`DECREASE`] of those in use (or of the limit, if lower), at least 1, and — when the
    /// rate held calls back — the rate to [`DECREASE`] of itself, at least [`RATE_FLOOR`] of
    /// its ceiling. A call sent before the last cut does not cut again. Returns whether it cut.
    pub fn overload(&mut self, sent: Instant, now: Instant, usage: Usage) -> bool {
        let ceiling = self.ceiling;
        let e = self.engaged.get_or_insert(Engaged {
            in_flight: f64::from(ceiling.in_flight),
            rate: ceiling.rate,
            last_cut: None,
            last_signal: now,
        });
        e.last_signal = now;
        if e.last_cut.is_some_and(|cut| sent < cut) {
            return false;
        }
        e.in_flight = (DECREASE * e.in_flight.min(usage.in_flight as f64)).max(1.0);
        if usage.rate_bound
            && let (Some(rate), Some(max)) = (e.rate, ceiling.rate)
        {
            e.rate = Some((DECREASE * rate).max(max * RATE_FLOOR));
        }
        e.last_cut = Some(now);
        true
    }

    /// A clean answer: one more call in flight per window of clean answers (a window being
    /// as many answers as the limit), and [`RATE_RISE`] of the rate ceiling more per second of
    /// clean answers at the current rate. Back at both ceilings, the controller is dormant.
    pub fn clean(&mut self) {
        let Some(e) = &mut self.engaged else {
            return;
        };
        let max = f64::from(self.ceiling.in_flight);
        e.in_flight = (e.in_flight + 1.0 / e.in_flight).min(max);
        if let (Some(rate), Some(max)) = (e.rate, self.ceiling.rate) {
            e.rate = Some((rate + RATE_RISE * max / rate).min(max));
        }
        self.settle();
    }

    /// The state to save, `None` while dormant.
    pub fn adapted(&self, now: Instant) -> Option<Adapted> {
        self.engaged.map(|e| Adapted {
            in_flight: e.in_flight,
            rate: e.rate,
            since_signal: now.saturating_duration_since(e.last_signal),
        })
    }

    /// Takes up a saved state (after a restart), within today's ceilings and relaxed by one
    /// step per [`RELAX_EVERY`] since its last signal; one that relaxes back to the ceilings
    /// leaves the controller dormant. Values that are no numbers count as the ceiling.
    pub fn restore(&mut self, saved: Adapted, now: Instant) {
        let max = f64::from(self.ceiling.in_flight);
        let steps = (saved.since_signal.as_secs() / RELAX_EVERY.as_secs()) as f64;
        let in_flight = finite_or(saved.in_flight, max);
        let rate = self.ceiling.rate.map(|max| {
            let rate = saved.rate.map_or(max, |r| finite_or(r, max));
            (rate.max(max * RATE_FLOOR) + steps * RATE_RISE * max).min(max)
        });
        self.engaged = Some(Engaged {
            in_flight: (in_flight.max(1.0) + steps).min(max),
            rate,
            last_cut: None,
            last_signal: now.checked_sub(saved.since_signal).unwrap_or(now),
        });
        self.settle();
    }

    /// Dormant again once both limits are back at their ceilings.
    fn settle(&mut self) {
        if let Some(e) = &self.engaged
            && e.in_flight >= f64::from(self.ceiling.in_flight)
            && e.rate == self.ceiling.rate
        {
            self.engaged = None;
        }
    }
}

fn finite_or(v: f64, fallback: f64) -> f64 {
    if v.is_finite() { v } else { fallback }
}

#[cfg(test)]
#[path = "aimd_tests.rs"]
mod tests;

//! The duration distribution of one kind of task, fitted to what polls saw of its recent
//! tasks. Polls never see the moment a task ends, only an interval: it was still running at
//! one poll and had ended by the next (or by the first, when no poll saw it running). So the
//! fit is a log-normal distribution fitted by maximum likelihood to those intervals
//! (expectation–maximisation over interval-censored samples). A log-normal suits durations
//! (positive, skewed) and, unlike a mid-point guess, reads a task that had already ended at
//! the first poll for what it says: "ended by then", which places the low quantiles where
//! they are rather than at half the first poll. The fit is never much sharper than the polls
//! that fed it: coarse intervals (polls that backed off) widen it, so that it does not place
//! the first learned poll late with a confidence it has not earned.
//!
//! Pure: no clock, no I/O.

use crate::ledger::TaskDuration;
use std::f64::consts::SQRT_2;

/// Narrowest spread the fit allows (of the log of the duration): identical samples do not
/// make a distribution without width.
const MIN_SIGMA: f64 = 0.02;
/// Widest spread the fit allows.
const MAX_SIGMA: f64 = 3.0;
/// The shortest median the fit allows, in ms (tasks that always end before the first poll
/// would otherwise push it towards zero without end).
const MIN_MU: f64 = 0.0; // ln(1 ms)
/// The longest median the fit allows: about eleven days, in ms.
const MAX_MU: f64 = 20.7; // ln(1e9 ms)
/// The share of the samples' own spread (see [`resolution`]) added to the fitted one. Chosen
/// by simulation (`fit::tests`): from twenty samples of the default backoff policy on tasks of
/// 8–12 s, the maximum-likelihood fit alone places the first poll late in a few cases out of
/// a hundred (then more than a tenth of the tasks are seen over 15 % late); a tenth of the
/// samples' spread is enough to prevent that, and more costs polls.
const WIDEN: f64 = 0.1;
/// Expectation–maximisation rounds at most, and the change in (mu, sigma) that ends them.
const ROUNDS: usize = 60;
const SETTLED: f64 = 1e-5;

/// A log-normal distribution of durations: the log of a duration in ms is normal with mean
/// `mu` and standard deviation `sigma`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fit {
    pub mu: f64,
    pub sigma: f64,
}

impl Fit {
    /// The duration, in ms, below which a share `Φ(z)` of tasks end (`z` standard
    /// deviations from the median: −1.645 is the 5th percentile, 0 the median).
    pub fn at_z(&self, z: f64) -> f64 {
        (self.mu + self.sigma * z).exp()
    }

    /// Fits the distribution to `samples`, starting from `start` (the previous fit, which
    /// makes a refit after one more sample take a few rounds); `None` without samples.
    pub fn of(samples: &[TaskDuration], start: Option<Fit>) -> Option<Fit> {
        let logs: Vec<(f64, f64)> = samples.iter().filter_map(log_bounds).collect();
        if logs.is_empty() {
            return None;
        }
        let mut fit = start.unwrap_or_else(|| first_guess(&logs));
        for _ in 0..ROUNDS {
            let next = round(&logs, fit);
            let moved = (next.mu - fit.mu).abs() + (next.sigma - fit.sigma).abs();
            fit = next;
            if moved < SETTLED {
                break;
            }
        }
        // Coarse intervals leave the likelihood flat across them, and its maximum often
        // narrower than the tasks are: the spread is widened by a share of the intervals'
        // own.
        let widened = (fit.sigma.powi(2) + WIDEN * resolution(&logs).powi(2)).sqrt();
        Some(clamped(fit.mu, widened))
    }
}

/// A sample's bounds as logs of ms: (−∞ when no poll saw it running, ln of when it was seen
/// ended); `None` for a sample that bounds nothing.
fn log_bounds(s: &TaskDuration) -> Option<(f64, f64)> {
    if s.ended_ms <= s.running_ms || s.ended_ms <= 0 {
        return None;
    }
    let low = if s.running_ms > 0 {
        (s.running_ms as f64).ln()
    } else {
        f64::NEG_INFINITY
    };
    Some((low, (s.ended_ms as f64).ln()))
}

/// How finely the samples place the tasks' ends: the width of their narrower intervals (the
/// first quarter, so that a few fine samples among coarse older ones count at once), as the
/// standard deviation of a uniform spread over it. Samples that saw no running poll do not
/// count (their interval has no lower end).
fn resolution(logs: &[(f64, f64)]) -> f64 {
    let mut widths: Vec<f64> = logs
        .iter()
        .filter(|(lo, _)| lo.is_finite())
        .map(|(lo, hi)| hi - lo)
        .collect();
    if widths.is_empty() {
        return 0.0;
    }
    widths.sort_by(f64::total_cmp);
    widths[widths.len() / 4] / 12f64.sqrt()
}

/// A start for the rounds: the mean and spread of the intervals' middles (the upper bound
/// where there is no lower one).
fn first_guess(logs: &[(f64, f64)]) -> Fit {
    let mids: Vec<f64> = logs
        .iter()
        .map(|&(lo, hi)| if lo.is_finite() { (lo + hi) / 2.0 } else { hi })
        .collect();
    let n = mids.len() as f64;
    let mu = mids.iter().sum::<f64>() / n;
    let var = mids.iter().map(|m| (m - mu).powi(2)).sum::<f64>() / n;
    clamped(mu, var.sqrt())
}

/// One expectation–maximisation round: each sample's expected log-duration (and its
/// square) given that it lies in its interval, under `fit`; then the mean and spread of
/// those.
fn round(logs: &[(f64, f64)], fit: Fit) -> Fit {
    let (mut sum, mut sum_sq) = (0.0, 0.0);
    for &(lo, hi) in logs {
        let (m1, m2) = if lo.is_finite() && hi - lo < 1e-3 {
            let x = (lo + hi) / 2.0; // a point, as far as the fit can tell
            (x, x * x)
        } else {
            let (e1, e2) = truncated_moments((lo - fit.mu) / fit.sigma, (hi - fit.mu) / fit.sigma);
            let x1 = fit.mu + fit.sigma * e1;
            let x2 = fit.mu * fit.mu + 2.0 * fit.mu * fit.sigma * e1 + fit.sigma.powi(2) * e2;
            (x1, x2)
        };
        sum += m1;
        sum_sq += m2;
    }
    let n = logs.len() as f64;
    let mu = sum / n;
    clamped(mu, (sum_sq / n - mu * mu).max(0.0).sqrt())
}

/// Keeps a fit within bounds.
fn clamped(mu: f64, sigma: f64) -> Fit {
    let mu = if mu.is_finite() { mu } else { MIN_MU };
    let sigma = if sigma.is_finite() { sigma } else { MAX_SIGMA };
    Fit {
        mu: mu.clamp(MIN_MU, MAX_MU),
        sigma: sigma.clamp(MIN_SIGMA, MAX_SIGMA),
    }
}

/// E[Z] and E[Z²] of a standard normal Z given `a < Z ≤ b` (`a` may be −∞).
fn truncated_moments(a: f64, b: f64) -> (f64, f64) {
    let mass = normal_mass(a, b);
    if mass.is_nan() || mass <= 1e-300 {
        // The interval lies far in a tail: its nearer end is as good as it gets.
        let x = if a.is_finite() { (a + b) / 2.0 } else { b };
        return (x, x * x);
    }
    let (pa, pb) = (density(a), density(b));
    let apa = if a.is_finite() { a * pa } else { 0.0 };
    let m1 = (pa - pb) / mass;
    let m2 = 1.0 + (apa - b * pb) / mass;
    (m1, m2.max(m1 * m1))
}

/// P(a < Z ≤ b) for a standard normal Z, computed on the side where it keeps its digits.
fn normal_mass(a: f64, b: f64) -> f64 {
    if a >= 0.0 {
        upper_tail(a) - upper_tail(b)
    } else if b <= 0.0 {
        upper_tail(-b) - upper_tail(-a)
    } else {
        1.0 - upper_tail(b) - upper_tail(-a)
    }
}

/// P(Z > x).
fn upper_tail(x: f64) -> f64 {
    0.5 * erfc(x / SQRT_2)
}

/// The standard normal density (0 at ±∞).
fn density(x: f64) -> f64 {
    if x.is_finite() {
        (-0.5 * x * x).exp() / (2.0 * std::f64::consts::PI).sqrt()
    } else {
        0.0
    }
}

/// The complementary error function, with a relative error below 1.2e-7 everywhere
/// (Chebyshev fit, Numerical Recipes' `erfcc`): good in the tails, where it matters here.
fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let r = t * poly.exp();
    if x >= 0.0 { r } else { 2.0 - r }
}

#[cfg(test)]
mod tests;

//! `reaper bench`'s polls section: how many calls a request costs and how late a task's end
//! is seen, for EM tasks of 8–12 s, with the backoff policy alone and with polls that learn
//! (the first 20 tasks, the next ones, and after a restart). The simulator records, for each
//! task, how long it ran and how long after its end the first poll to see it ended came.
//! Prints figures; asserts nothing.

use super::bench::{UNLIMITED, spec};
use super::harness::{Harness, sample_batch};
use crate::config::Config;
use crate::sim::SimConfig;
use std::collections::HashSet;
use std::time::Duration;

/// Tasks of a kind polls learn from before the "learned" figures.
const FIRST: usize = 20;

/// What one phase cost and how late it saw its tasks end.
struct Figures {
    requests: usize,
    calls_per_request: f64,
    /// Lateness as a share of each task's duration, sorted.
    lateness: Vec<f64>,
}

impl Figures {
    fn percentile(&self, p: f64) -> f64 {
        let n = self.lateness.len();
        if n == 0 {
            return f64::NAN;
        }
        let i = ((p * n as f64).ceil() as usize).clamp(1, n) - 1;
        self.lateness[i] * 100.0
    }

    fn print(&self, label: &str) {
        println!(
            "  {label:<19} {:>4} requests: {:.2} calls per request (DELETE, polls, logon); end seen {:.0}% (median), {:.0}% (90th percentile) of the task's duration after it ended",
            self.requests,
            self.calls_per_request,
            self.percentile(0.5),
            self.percentile(0.9)
        );
    }
}

/// Runs the section with `n` requests in each measured phase.
pub async fn run(base: &Config, n: usize) -> anyhow::Result<()> {
    let command: Vec<String> = std::env::args().collect();
    let p = &base.poll;
    println!(
        "polls: em.job tasks of 8–12 s, no latency, no rate limit, polls backing off from {} by {} to {} (`{}`)",
        humantime::format_duration(p.initial),
        p.factor,
        humantime::format_duration(p.max),
        command.join(" ")
    );
    let mut off = start(base, None).await?;
    let backoff = phase(&mut off, n, "bench-polls-off").await?;
    off.stop().await;
    backoff.print("backoff only");

    let mut h = start(base, base.poll_lateness.or(Some(0.1))).await?;
    phase(&mut h, FIRST, "bench-polls-first")
        .await?
        .print("learning, first 20");
    phase(&mut h, n, "bench-polls-learned")
        .await?
        .print("learned, next");
    h.crash_and_restart().await?;
    phase(&mut h, n, "bench-polls-restart")
        .await?
        .print("after a restart");
    h.stop().await;
    println!(
        "  (lateness share REAPER_POLL_LATENESS = {}; learned polls once a kind has 10 samples)",
        base.poll_lateness.unwrap_or(0.1)
    );
    Ok(())
}

/// A worker with polls that learn (`lateness`) or not (`None`), on a simulator of 8–12 s tasks.
async fn start(base: &Config, lateness: Option<f64>) -> anyhow::Result<Harness> {
    let base = Config {
        poll_lateness: lateness,
        ..base.clone()
    };
    let sim = SimConfig {
        task_duration: (Duration::from_secs(8), Duration::from_secs(12)),
        ..Default::default()
    };
    let spec = spec(sim, UNLIMITED, &base);
    Harness::start(base, spec).await
}

/// Publishes `n` requests at once and waits for their outcomes: what they cost.
async fn phase(h: &mut Harness, n: usize, batch: &str) -> anyhow::Result<Figures> {
    let (calls0, seen0) = (h.sim.stats().total_calls, h.sim.task_sightings().len());
    h.publish(&sample_batch(n, batch)).await?;
    let mut done = HashSet::new();
    while done.len() < n {
        let (_, ev) = h.events.next().await?;
        if let Some(id) = ev.data.request_id.filter(|id| id.starts_with(batch)) {
            done.insert(id);
        }
    }
    let calls = h.sim.stats().total_calls - calls0;
    let mut lateness: Vec<f64> = h.sim.task_sightings()[seen0..]
        .iter()
        .map(|s| s.late.as_secs_f64() / s.duration.as_secs_f64().max(1e-3))
        .collect();
    lateness.sort_by(f64::total_cmp);
    Ok(Figures {
        requests: n,
        calls_per_request: calls as f64 / n as f64,
        lateness,
    })
}

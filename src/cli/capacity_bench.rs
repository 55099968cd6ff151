//! `reaper bench`'s capacity run (issue 12, item 4): a simulated EM that answers each call
//! after a fixed latency and 503 to calls beyond its capacity in flight, a `reaper run` child
//! worker whose adaptive budget starts from a higher ceiling (`REAPER_MAX_IN_FLIGHT`), and a
//! batch of requests whose tasks end at once. It prints how many calls met a 503 while the
//! budget came down (the first 10 s) and after, and how the batch's time compares with the
//! least time the capacity allows. Counts at the simulator; prints figures, asserts nothing.

use super::bench::{next_outcome, spec};
use super::harness::{Harness, HarnessSpec, Placement, sample_batch};
use crate::config::Config;
use crate::limit::Budget;
use crate::sim::{SimConfig, SimStats};
use std::collections::HashSet;
use std::time::{Duration, Instant};

/// How long the simulator takes to answer each call: it holds one of its `capacity` slots
/// for this long (the answer itself is computed at once), so it serves at most
/// `capacity / LATENCY` calls a second.
const LATENCY: Duration = Duration::from_millis(20);

/// The span whose 503s count as "while the budget adapts".
const FIRST: Duration = Duration::from_secs(10);

/// Runs it: `n` requests, an EM of `capacity` calls in flight, a budget of `ceiling`.
pub async fn run(base: &Config, capacity: u32, ceiling: usize, n: usize) -> anyhow::Result<()> {
    anyhow::ensure!(ceiling >= 1, "--capacity-ceiling must be at least 1");
    let sim = SimConfig {
        task_duration: (Duration::ZERO, Duration::ZERO),
        latency: LATENCY,
        capacity: Some(capacity),
        ..SimConfig::default()
    };
    let budget = Budget {
        rate_per_sec: 0.0,
        burst: 1,
        max_in_flight: ceiling,
    };
    let spec = HarnessSpec {
        placement: Placement::ChildProcess,
        ..spec(sim, budget, base)
    };
    let mut h = Harness::start(base.clone(), spec).await?;
    let before = h.sim.stats();
    let publisher = h.publisher().await?;
    let requests = sample_batch(n, "bench-capacity");
    let started = Instant::now();
    let publishing = async {
        for chunk in requests.chunks(1000) {
            publisher.publish_all(chunk).await?;
        }
        anyhow::Ok(())
    };
    let (published, watched) = tokio::join!(publishing, watch(&mut h, n, started));
    published?;
    let (early, secs) = watched?;
    let end = h.sim.stats();
    h.stop().await;
    Figures {
        n,
        capacity,
        ceiling,
        early: Calls::between(&before, early.as_ref().unwrap_or(&end)),
        late: early.map(|e| Calls::between(&e, &end)),
        all: Calls::between(&before, &end),
        secs,
    }
    .print();
    Ok(())
}

/// Waits for an outcome of each of `n` requests; the simulator's counters once [`FIRST`] has
/// passed since `started` (`None` if all came sooner), and the seconds until the last.
async fn watch(
    h: &mut Harness,
    n: usize,
    started: Instant,
) -> anyhow::Result<(Option<SimStats>, f64)> {
    let (mut seen, mut early) = (HashSet::new(), None);
    while seen.len() < n {
        if early.is_none() && started.elapsed() >= FIRST {
            early = Some(h.sim.stats());
        }
        if let Some(id) = next_outcome(h).await? {
            seen.insert(id);
        }
    }
    Ok((early, started.elapsed().as_secs_f64()))
}

/// Calls the simulator counted between two snapshots, and how many it answered 503.
struct Calls {
    total: u64,
    rejected: u64,
}

impl Calls {
    fn between(a: &SimStats, b: &SimStats) -> Self {
        let rejected = |s: &SimStats| s.statuses.get("503").copied().unwrap_or(0);
        Calls {
            total: b.total_calls - a.total_calls,
            rejected: rejected(b) - rejected(a),
        }
    }

    /// `R of T calls = P%`.
    fn share(&self) -> String {
        let pct = 100.0 * self.rejected as f64 / (self.total.max(1)) as f64;
        format!("{} of {} calls = {pct:.1}%", self.rejected, self.total)
    }
}

struct Figures {
    n: usize,
    capacity: u32,
    ceiling: usize,
    early: Calls,
    late: Option<Calls>,
    all: Calls,
    secs: f64,
}

impl Figures {
    /// The least time the capacity allows for the calls that did the work: every call the
    /// simulator admitted (all but the 503s) held one of its `capacity` slots for `LATENCY`,
    /// so with every slot always busy they take `admitted × LATENCY / capacity`.
    fn allowed_secs(&self) -> (u64, f64) {
        let admitted = self.all.total - self.all.rejected;
        let secs = admitted as f64 * LATENCY.as_secs_f64() / f64::from(self.capacity);
        (admitted, secs)
    }

    fn print(&self) {
        let (admitted, allowed) = self.allowed_secs();
        let ms = LATENCY.as_millis();
        println!(
            "capacity: {} em.job requests, tasks end at once; the simulated EM answers each call after {ms} ms and 503 beyond {} calls in flight; REAPER_MAX_IN_FLIGHT={}, no rate limit; the worker a `reaper run` child process",
            self.n, self.capacity, self.ceiling
        );
        println!(
            "  503 first 10 s      {} answered 503 in the first 10 s from the first publish (the budget adapting)",
            self.early.share()
        );
        match &self.late {
            Some(late) => println!(
                "  503 after 10 s      {} answered 503 after the first 10 s (adapted)",
                late.share()
            ),
            None => println!("  503 after 10 s      no calls: the run ended within 10 s"),
        }
        println!(
            "  completed           {} in {:.2} s (first publish to last outcome event)",
            self.n, self.secs
        );
        println!(
            "  capacity allows     {allowed:.2} s = {admitted} calls answered other than 503 × {ms} ms / {} in flight (each admitted call holds a slot for the simulator's latency)",
            self.capacity
        );
        println!(
            "  ratio               {:.2} = time taken / time the capacity allows",
            self.secs / allowed.max(1e-9)
        );
    }
}

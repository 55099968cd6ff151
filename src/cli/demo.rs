//! `reaper demo`: the simulator and a worker in this process, against the configured
//! RabbitMQ, with a sample batch; shows progress (a bar on a terminal, a line a second
//! otherwise) and a summary, and exits 0 only when every outcome event has arrived. Its logs
//! are at `warn` unless `RUST_LOG` says otherwise (set in `main.rs`).

use super::harness::{Harness, HarnessSpec, Placement, sample_batch};
use crate::config::Config;
use crate::em::codec::Format;
use crate::limit::Budget;
use crate::sim::SimStats;
use std::collections::{BTreeMap, HashSet};
use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// How many `em.job` requests to publish.
    #[arg(long, default_value_t = 1000)]
    pub count: usize,
    /// How long each simulated task runs (`500ms`, or a range `200ms..2s`).
    #[arg(long, default_value = "200ms..1s", value_parser = super::parse_range)]
    pub task_duration: (Duration, Duration),
    /// Calls per second the worker may make to the simulator (0 = unlimited).
    #[arg(long, default_value_t = 500.0)]
    pub rate: f64,
    /// Concurrent calls to the simulator.
    #[arg(long, default_value_t = 32)]
    pub max_in_flight: usize,
    /// `xml` or `json`.
    #[arg(long, default_value = "xml")]
    pub format: Format,
    /// Give up (exit 1) when not every event arrived by then.
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
}

/// What came back: the outcome events of the batch, counted by outcome.
#[derive(Default)]
struct Tally {
    seen: HashSet<String>,
    outcomes: BTreeMap<String, usize>,
}

pub async fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let base = Config::from_env()?;
    let spec = spec(&args, &base);
    let mut h = Harness::start(base, spec).await?;
    let batch_id = format!("demo-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let requests = sample_batch(args.count, &batch_id);
    println!(
        "reaper demo: {} em.job requests → {} (simulated EM at {}), rate {}/s",
        args.count,
        h.cfg.topology.request_queue,
        h.sim.base_url(),
        args.rate
    );
    let started = Instant::now();
    h.publish(&requests).await?;
    println!(
        "published {} requests in {:.2}s",
        args.count,
        started.elapsed().as_secs_f64()
    );
    let expected: HashSet<String> = requests
        .iter()
        .filter_map(|r| r.request_id.clone())
        .collect();
    let tally = follow(&mut h, &expected, started, args.timeout).await?;
    let elapsed = started.elapsed().as_secs_f64();
    let stats = h.sim.stats();
    h.stop().await;
    summary(&batch_id, &tally, expected.len(), elapsed, &stats);
    if tally.seen.len() == expected.len() {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!(
            "reaper demo: only {} of {} outcome events arrived within {:?}",
            tally.seen.len(),
            expected.len(),
            args.timeout
        );
        Ok(ExitCode::FAILURE)
    }
}

fn spec(args: &DemoArgs, base: &Config) -> HarnessSpec {
    HarnessSpec {
        name: "demo",
        prefill: 0,
        placement: Placement::InProcess,
        sim: crate::sim::SimConfig {
            task_duration: args.task_duration,
            ..Default::default()
        },
        budget: Budget {
            rate_per_sec: args.rate,
            burst: (args.rate as u32).clamp(1, 100),
            max_in_flight: args.max_in_flight,
        },
        format: args.format,
        poll: crate::retry::Backoff {
            initial: Duration::from_millis(250),
            max: Duration::from_secs(2),
            ..base.poll
        },
        engine_concurrency: base.engine_concurrency,
        backlog_limit: base.backlog_limit,
    }
}

/// Counts the outcome events of `expected` until each has one or `timeout` passes.
async fn follow(
    h: &mut Harness,
    expected: &HashSet<String>,
    started: Instant,
    timeout: Duration,
) -> anyhow::Result<Tally> {
    let mut tally = Tally::default();
    let progress = Progress::new(expected.len(), started);
    let deadline = tokio::time::Instant::now() + timeout;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    while tally.seen.len() < expected.len() {
        tokio::select! {
            _ = tokio::time::sleep_until(deadline) => break,
            _ = tick.tick() => progress.tick(tally.seen.len()),
            ev = h.events.next() => {
                let (_, ev) = ev?;
                if let Some(id) = ev.data.request_id.clone().filter(|id| expected.contains(id))
                    && tally.seen.insert(id)
                {
                    *tally.outcomes.entry(ev.data.outcome.as_str().to_string()).or_default() += 1;
                    progress.outcome();
                }
            }
        }
    }
    progress.finish();
    Ok(tally)
}

/// How the demo shows its progress: a bar on a terminal, else a plain line a second.
enum Progress {
    Bar(indicatif::ProgressBar),
    Lines { total: usize, started: Instant },
}

impl Progress {
    fn new(total: usize, started: Instant) -> Self {
        if !std::io::stderr().is_terminal() {
            return Progress::Lines { total, started };
        }
        let bar = indicatif::ProgressBar::new(total as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:40} {pos}/{len} outcomes ({per_sec}, {elapsed})",
            )
            .expect("a valid template"),
        );
        bar.enable_steady_tick(Duration::from_millis(200));
        Progress::Bar(bar)
    }

    fn outcome(&self) {
        if let Progress::Bar(bar) = self {
            bar.inc(1);
        }
    }

    fn tick(&self, seen: usize) {
        if let Progress::Lines { total, started } = self {
            let secs = started.elapsed().as_secs_f64();
            let rate = seen as f64 / secs;
            println!("  {seen:>6}/{total} outcomes  {rate:>7.1} req/s  {secs:>5.1}s");
        }
    }

    fn finish(&self) {
        if let Progress::Bar(bar) = self {
            bar.finish();
        }
    }
}

fn summary(batch_id: &str, tally: &Tally, expected: usize, elapsed: f64, stats: &SimStats) {
    println!("\nsummary of batch {batch_id}");
    for (outcome, n) in &tally.outcomes {
        println!("  {outcome:<18} {n}");
    }
    println!("  events received    {}/{expected}", tally.seen.len());
    println!("  elapsed            {elapsed:.2}s");
    println!(
        "  throughput         {:.1} requests/s",
        tally.seen.len() as f64 / elapsed
    );
    println!(
        "  EM calls           {} ({} DELETEs, {} logons, busiest second {})",
        stats.total_calls,
        stats.deletes.values().sum::<u64>(),
        stats.logons,
        stats.max_calls_per_second
    );
}

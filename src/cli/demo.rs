//! `reaper demo`: the simulator and a worker in this process, against the configured
//! RabbitMQ, with a sample batch; prints progress and a summary, and exits 0 only when every
//! outcome event has arrived.

use super::harness::{Harness, HarnessSpec, sample_batch};
use crate::config::Config;
use crate::em::codec::Format;
use crate::limit::Budget;
use std::collections::{BTreeMap, HashSet};
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

pub async fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let base = Config::from_env()?;
    let spec = HarnessSpec {
        name: "demo",
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
    };
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
    let mut seen = HashSet::new();
    let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
    let deadline = tokio::time::Instant::now() + args.timeout;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    while seen.len() < expected.len() {
        tokio::select! {
            _ = tokio::time::sleep_until(deadline) => break,
            _ = tick.tick() => {
                let secs = started.elapsed().as_secs_f64();
                println!("  {:>6}/{} outcomes  {:>7.1} req/s  {:>5.1}s", seen.len(), expected.len(), seen.len() as f64 / secs, secs);
            }
            ev = h.events.next() => {
                let (_, ev) = ev?;
                if let Some(id) = ev.data.request_id.clone().filter(|id| expected.contains(id))
                    && seen.insert(id)
                {
                    *outcomes.entry(ev.data.outcome.as_str().to_string()).or_default() += 1;
                }
            }
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let stats = h.sim.stats();
    h.stop().await;

    println!("\nsummary of batch {batch_id}");
    for (outcome, n) in &outcomes {
        println!("  {outcome:<18} {n}");
    }
    println!("  events received    {}/{}", seen.len(), expected.len());
    println!("  elapsed            {elapsed:.2}s");
    println!(
        "  throughput         {:.1} requests/s",
        seen.len() as f64 / elapsed
    );
    println!(
        "  EM calls           {} ({} DELETEs, {} logons, busiest second {})",
        stats.total_calls,
        stats.deletes.values().sum::<u64>(),
        stats.logons,
        stats.max_calls_per_second
    );
    if seen.len() == expected.len() {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!(
            "reaper demo: only {} of {} outcome events arrived within {:?}",
            seen.len(),
            expected.len(),
            args.timeout
        );
        Ok(ExitCode::FAILURE)
    }
}

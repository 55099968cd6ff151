//! `reaper bench`: figures measured against the in-process simulator through the configured
//! RabbitMQ — end-to-end throughput, calls, CPU time and SQLite transactions per request of
//! the worker alone (a `reaper run` child process: `worker_process`), its memory idle and with
//! 100,000 tasks in flight and a crash (`memory_bench`), how its adaptive budget meets an
//! endpoint of limited capacity (`capacity_bench`), how much of a rate budget a backlog uses,
//! and how polls that learn follow 8–12 s tasks (`polls_bench`).
//! Prints figures, each line saying what it measures; asserts nothing (machines are noisy).

use super::harness::{Harness, HarnessSpec, Placement, sample_batch};
use super::procfs;
use crate::config::Config;
use crate::em::codec::Format;
use crate::limit::Budget;
use crate::retry::Backoff;
use crate::sim::SimConfig;
use std::collections::HashSet;
use std::process::ExitCode;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Requests for each throughput run (0 skips them).
    #[arg(long, default_value_t = 5000)]
    pub requests: usize,
    /// Tasks kept in flight for the memory run (0 skips it).
    #[arg(long, default_value_t = 100_000)]
    pub in_flight: usize,
    /// Rate budget for the budget run, calls/s (0 skips it).
    #[arg(long, default_value_t = 50.0)]
    pub budget_rate: f64,
    /// Length of the budget run's measuring window.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub budget_window: Duration,
    /// Finished requests in the ledger for a second throughput run, as a long-running ledger
    /// holds them (0 skips it).
    #[arg(long, default_value_t = 0)]
    pub prefill: u64,
    /// Requests in each phase of the polls run (tasks of 8–12 s; 0 skips it).
    #[arg(long, default_value_t = 100)]
    pub poll_tasks: usize,
    /// Calls in flight above which the simulated EM of the capacity run answers 503 (0 skips
    /// the run).
    #[arg(long, default_value_t = 8)]
    pub capacity: u32,
    /// The capacity run's REAPER_MAX_IN_FLIGHT: the ceiling the adaptive budget starts from.
    #[arg(long, default_value_t = 32)]
    pub capacity_ceiling: usize,
    /// Requests of the capacity run.
    #[arg(long, default_value_t = 10_000)]
    pub capacity_requests: usize,
}

/// The harness of a bench run: the worker as configured by `base` (polls, engine), no backlog
/// bound, XML, on classic queues; in this process unless the run says otherwise.
pub(super) fn spec(sim: SimConfig, budget: Budget, base: &Config) -> HarnessSpec {
    HarnessSpec {
        name: "bench",
        prefill: 0,
        placement: Placement::InProcess,
        sim,
        budget,
        format: Format::Xml,
        poll: base.poll,
        engine_concurrency: base.engine_concurrency,
        backlog_limit: 0,
    }
}

pub(super) const UNLIMITED: Budget = Budget {
    rate_per_sec: 0.0,
    burst: 1,
    max_in_flight: 64,
};

/// The request id of the next outcome event, or `None` when none came within 200 ms; a child
/// worker that has ended meanwhile is an error (with the end of its stderr), so that no run
/// waits forever for a dead worker.
pub(super) async fn next_outcome(h: &mut Harness) -> anyhow::Result<Option<String>> {
    match tokio::time::timeout(Duration::from_millis(200), h.events.next()).await {
        Ok(event) => Ok(event?.1.data.request_id),
        Err(_) => {
            if let Some(worker) = h.worker_process() {
                worker.check_alive()?;
            }
            Ok(None)
        }
    }
}

/// Waits for an event of each of `n` requests.
async fn await_events(h: &mut Harness, n: usize) -> anyhow::Result<()> {
    let mut seen = HashSet::new();
    while seen.len() < n {
        if let Some(id) = next_outcome(h).await? {
            seen.insert(id);
        }
    }
    Ok(())
}

/// The child worker's ledger commits so far (`reaper_ledger_commits_total` on its /metrics).
pub(super) async fn worker_commits(h: &mut Harness) -> anyhow::Result<f64> {
    match h.worker_process() {
        Some(w) => w.metric("reaper_ledger_commits_total").await,
        None => anyhow::bail!("the bench's worker is not a child process"),
    }
}

/// The child worker's CPU time and memory now.
pub(super) fn worker_usage(h: &mut Harness) -> procfs::Usage {
    h.worker_process().map(|w| w.usage()).unwrap_or_default()
}

/// One throughput run: `n` requests through a child worker, tasks of `task`, `prefill`
/// finished requests already in its ledger.
async fn throughput(base: &Config, n: usize, task: Duration, prefill: u64) -> anyhow::Result<()> {
    let sim = SimConfig {
        task_duration: (task, task),
        ..Default::default()
    };
    let spec = HarnessSpec {
        prefill,
        placement: Placement::ChildProcess,
        ..spec(sim, UNLIMITED, base)
    };
    let mut h = Harness::start(base.clone(), spec).await?;
    let requests = sample_batch(n, "bench-throughput");
    let commits0 = worker_commits(&mut h).await?;
    let (worker0, bench0) = (worker_usage(&mut h), procfs::usage(None));
    let started = Instant::now();
    h.publish(&requests).await?;
    await_events(&mut h, n).await?;
    let secs = started.elapsed().as_secs_f64();
    let (worker1, bench1) = (worker_usage(&mut h), procfs::usage(None));
    let commits = worker_commits(&mut h).await? - commits0;
    let stats = h.sim.stats();
    let scrape = if prefill > 0 {
        Some(scrape_times(&h).await?)
    } else {
        None
    };
    h.stop().await;
    let tasks = if task.is_zero() {
        "tasks end at once".to_string()
    } else {
        format!("tasks run {}", humantime::format_duration(task))
    };
    let ledger = match prefill {
        0 => String::new(),
        p => format!(", {p} finished requests already in the ledger"),
    };
    let per_request = |cpu: f64| cpu * 1e3 / n as f64;
    println!(
        "throughput: {n} em.job requests, {tasks}, no latency, no rate limit{ledger}; the worker a `reaper run` child process"
    );
    println!(
        "  completed           {n} in {secs:.2} s = {:.0} requests/s end to end (first publish to last outcome event)",
        n as f64 / secs
    );
    println!(
        "  EM calls            {} = {:.2} calls per completed request (DELETE, task polls, logon)",
        stats.total_calls,
        stats.total_calls as f64 / n as f64
    );
    println!(
        "  worker CPU          {:.3} ms per request (the child worker alone: user + system time from /proc)",
        per_request(worker1.cpu_seconds - worker0.cpu_seconds)
    );
    println!(
        "  bench CPU           {:.3} ms per request (the bench process: simulator, publisher and event watcher)",
        per_request(bench1.cpu_seconds - bench0.cpu_seconds)
    );
    println!(
        "  worker ledger       {:.2} SQLite transactions committed per request by the worker (reaper_ledger_commits_total)",
        commits / n as f64
    );
    println!(
        "  worker memory       {:.0} MiB resident after the run, {:.0} MiB peak (VmRSS, VmHWM of the child)",
        worker1.rss_mib, worker1.peak_mib
    );
    if let Some((status, metrics)) = scrape {
        println!(
            "  answers             `reaper status` {:.1} ms, GET /metrics {:.1} ms (first, uncached, on the same ledger)",
            status * 1e3,
            metrics * 1e3
        );
    }
    Ok(())
}

/// Seconds `reaper status` (open the ledger, count) and a first `/metrics` scrape take on
/// the harness's ledger while its worker runs.
async fn scrape_times(h: &Harness) -> anyhow::Result<(f64, f64)> {
    let started = Instant::now();
    let ledger = crate::ledger::Ledger::open(&h.cfg.ledger).await?;
    ledger.counts().await?;
    let status = started.elapsed().as_secs_f64();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/metrics", listener.local_addr()?);
    let stop = tokio_util::sync::CancellationToken::new();
    let health = std::sync::Arc::default();
    let server = crate::metrics::serve(listener, ledger.clone(), health, stop.clone());
    let server = tokio::spawn(server);
    let started = Instant::now();
    let body = reqwest::get(&url).await?.text().await?;
    let metrics = started.elapsed().as_secs_f64();
    anyhow::ensure!(
        body.contains("reaper_requests"),
        "the scrape answered no request gauge"
    );
    stop.cancel();
    let _ = server.await;
    ledger.close().await;
    Ok((status, metrics))
}

async fn budget(base: &Config, rate: f64, window: Duration) -> anyhow::Result<()> {
    let sim = SimConfig {
        task_duration: (Duration::from_millis(500), Duration::from_millis(500)),
        ..Default::default()
    };
    let budget = Budget {
        rate_per_sec: rate,
        burst: (rate as u32).max(1),
        max_in_flight: 8,
    };
    let poll = Backoff {
        initial: Duration::from_millis(500),
        ..base.poll
    };
    let h = Harness::start(
        base.clone(),
        HarnessSpec {
            poll,
            ..spec(sim, budget, base)
        },
    )
    .await?;
    // Enough work to keep the budget busy for the whole window.
    let n = (rate * window.as_secs_f64()) as usize + 500;
    h.publish(&sample_batch(n, "bench-budget")).await?;
    tokio::time::sleep(Duration::from_secs(3)).await; // past the initial burst
    let (c0, t0) = (h.sim.stats().total_calls, Instant::now());
    tokio::time::sleep(window).await;
    let (c1, secs) = (h.sim.stats().total_calls, t0.elapsed().as_secs_f64());
    let busiest = h.sim.stats().max_calls_per_second;
    h.stop().await;
    let achieved = (c1 - c0) as f64 / secs;
    println!(
        "budget: rate {rate}/s, burst {}, a backlog of {n} requests; the worker in the bench process",
        budget.burst
    );
    println!(
        "  achieved            {achieved:.1} calls/s over {secs:.0} s = {:.1}% of the budget; busiest second {busiest} (limit {})",
        100.0 * achieved / rate,
        rate as u64 + u64::from(budget.burst)
    );
    Ok(())
}

/// The command line, each argument quoted when the shell would need it.
fn command_line() -> String {
    let quote = |a: String| {
        let plain = a.chars().all(|c| {
            c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/' | '=' | ':' | ',')
        });
        if plain && !a.is_empty() {
            a
        } else {
            format!("'{}'", a.replace('\'', r"'\''"))
        }
    };
    std::env::args().map(quote).collect::<Vec<_>>().join(" ")
}

pub async fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    let base = Config::from_env()?;
    println!("command: {}", command_line());
    // A stop signal ends the runs through their error path: the harnesses are dropped, and
    // with them any child worker (killed, never left behind).
    let stop = super::shutdown_signal();
    tokio::select! {
        result = runs(&args, &base) => result?,
        _ = stop.cancelled() => anyhow::bail!("interrupted: the runs stopped, no worker left running"),
    }
    Ok(ExitCode::SUCCESS)
}

async fn runs(args: &BenchArgs, base: &Config) -> anyhow::Result<()> {
    if args.requests > 0 {
        throughput(base, args.requests, Duration::ZERO, 0).await?;
        if args.prefill > 0 {
            throughput(base, args.requests, Duration::ZERO, args.prefill).await?;
        }
        throughput(base, args.requests, Duration::from_secs(1), 0).await?;
    }
    if args.in_flight > 0 {
        super::memory_bench::run(base, args.in_flight).await?;
    }
    if args.capacity > 0 && args.capacity_requests > 0 {
        let ceiling = args.capacity_ceiling;
        super::capacity_bench::run(base, args.capacity, ceiling, args.capacity_requests).await?;
    }
    if args.budget_rate > 0.0 {
        budget(base, args.budget_rate, args.budget_window).await?;
    }
    if args.poll_tasks > 0 {
        super::polls_bench::run(base, args.poll_tasks).await?;
    }
    Ok(())
}

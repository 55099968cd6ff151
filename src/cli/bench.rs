//! `reaper bench`: figures measured against the in-process simulator through the configured
//! RabbitMQ — end-to-end throughput and calls per request with no latency and no rate limit,
//! memory with 100,000 tasks in flight, how much of a rate budget a backlog uses, and how
//! polls that learn follow 8–12 s tasks (`polls_bench`).
//! Prints figures; asserts nothing (machines are noisy).

use super::harness::{Harness, HarnessSpec, Placement, sample_batch};
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
    /// Requests for the throughput run.
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
}

fn spec(sim: SimConfig, budget: Budget, base: &Config) -> HarnessSpec {
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

const UNLIMITED: Budget = Budget {
    rate_per_sec: 0.0,
    burst: 1,
    max_in_flight: 64,
};

/// Waits for an event of each of `n` requests.
async fn await_events(h: &mut Harness, n: usize) -> anyhow::Result<()> {
    let mut seen = HashSet::new();
    while seen.len() < n {
        let (_, ev) = h.events.next().await?;
        if let Some(id) = ev.data.request_id {
            seen.insert(id);
        }
    }
    Ok(())
}

/// This process's peak and current resident memory, in MiB (Linux; 0 elsewhere).
fn memory_mib() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| -> f64 {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .unwrap_or(0.0)
            / 1024.0
    };
    (field("VmHWM:"), field("VmRSS:"))
}

/// CPU seconds used by this process so far (Linux; 0 elsewhere).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0 // utime + stime, at the usual 100 ticks a second
}

async fn throughput(base: &Config, n: usize, task: Duration, prefill: u64) -> anyhow::Result<()> {
    let sim = SimConfig {
        task_duration: (task, task),
        ..Default::default()
    };
    let spec = HarnessSpec {
        prefill,
        ..spec(sim, UNLIMITED, base)
    };
    let mut h = Harness::start(base.clone(), spec).await?;
    let requests = sample_batch(n, "bench-throughput");
    let (cpu0, commits0) = (cpu_seconds(), crate::ledger::commits_so_far());
    let started = Instant::now();
    h.publish(&requests).await?;
    await_events(&mut h, n).await?;
    let secs = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu0;
    let commits = crate::ledger::commits_so_far() - commits0;
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
    println!("throughput: {n} em.job requests, {tasks}, no latency, no rate limit{ledger}");
    println!(
        "  completed           {n} in {secs:.2} s = {:.0} requests/s end to end",
        n as f64 / secs
    );
    println!(
        "  EM calls            {} = {:.2} calls per completed request (DELETE, task polls, logon)",
        stats.total_calls,
        stats.total_calls as f64 / n as f64
    );
    println!(
        "  CPU                 {:.3} ms per request (this process: worker, simulator, publisher and watcher)",
        cpu * 1e3 / n as f64
    );
    println!(
        "  ledger              {:.2} SQLite transactions committed per request",
        commits as f64 / n as f64
    );
    if let Some((status, metrics)) = scrape {
        println!(
            "  answers             `reaper status` {:.1} ms, GET /metrics {:.1} ms (first, uncached)",
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

async fn memory(base: &Config, n: usize) -> anyhow::Result<()> {
    let hour = Duration::from_secs(3600);
    let sim = SimConfig {
        task_duration: (hour, hour),
        ..Default::default()
    };
    let mut h = Harness::start(base.clone(), spec(sim, UNLIMITED, base)).await?;
    let ledger = h.ledger().await?;
    let (_, rss_before) = memory_mib();
    let started = Instant::now();
    h.publish(&sample_batch(n, "bench-memory")).await?;
    let published = started.elapsed().as_secs_f64();
    wait_until_polling(&ledger, n).await?;
    let all_polling = started.elapsed().as_secs_f64();
    let polls = measure_polls(&h).await;
    let (peak, rss) = memory_mib();
    let db = std::fs::metadata(&h.cfg.ledger)
        .map(|m| m.len())
        .unwrap_or(0) as f64
        / 1048576.0;
    let restart = crash_and_restart(&mut h).await?;
    ledger.close().await;
    h.stop().await;
    println!("memory: {n} tasks in flight (each Running for 1 h), polled from the ledger");
    println!("  published           {n} in {published:.1} s; all polling after {all_polling:.1} s");
    println!(
        "  resident memory     {rss:.0} MiB now, {peak:.0} MiB peak, {rss_before:.0} MiB before (whole process: worker + simulator + broker client)"
    );
    println!("  ledger file         {db:.0} MiB");
    polls.print();
    restart.print();
    Ok(())
}

/// Waits until `n` requests of the ledger are polling.
async fn wait_until_polling(ledger: &crate::ledger::Ledger, n: usize) -> anyhow::Result<()> {
    loop {
        let polling: i64 = ledger
            .counts()
            .await?
            .iter()
            .filter(|c| c.state == "polling")
            .map(|c| c.count)
            .sum();
        if polling as usize >= n {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Polls sent and CPU used over a window while every task is polled.
struct Polls {
    per_second: f64,
    cpu_percent: f64,
    window: f64,
}

/// Measures the polls over 10 s.
async fn measure_polls(h: &Harness) -> Polls {
    let (cpu0, calls0, t0) = (cpu_seconds(), h.sim.stats().total_calls, Instant::now());
    tokio::time::sleep(Duration::from_secs(10)).await;
    let (cpu1, calls1) = (cpu_seconds(), h.sim.stats().total_calls);
    let window = t0.elapsed().as_secs_f64();
    Polls {
        per_second: (calls1 - calls0) as f64 / window,
        cpu_percent: 100.0 * (cpu1 - cpu0) / window,
        window,
    }
}

impl Polls {
    fn print(&self) {
        println!(
            "  while they poll     {:.0} polls/s at {:.0}% of one core over {:.0} s",
            self.per_second, self.cpu_percent, self.window
        );
    }
}

/// What a crash and restart with many tasks in flight looks like.
struct Restart {
    /// From the restart to the outcome of a request published right after it.
    answered: Duration,
    calls_1s: u64,
    calls_5s: u64,
}

impl Restart {
    fn print(&self) {
        println!(
            "  after a crash       a new request answered in {:.2} s; {} EM calls in the first second, {} in the first 5 s (verifications spread, not fired at once)",
            self.answered.as_secs_f64(),
            self.calls_1s,
            self.calls_5s
        );
    }
}

/// Crashes the worker (as kill -9 would), restarts it, publishes one new request at once and
/// measures how soon it is answered and how many calls the restart sends in its first seconds.
async fn crash_and_restart(h: &mut Harness) -> anyhow::Result<Restart> {
    let calls0 = h.sim.stats().total_calls;
    let started = Instant::now();
    h.crash_and_restart().await?;
    let newcomer = crate::request::RequestWire {
        request_id: Some("bench-after-restart".into()),
        target: serde_json::json!({"type": "em.task", "task_id": "task-999999999"}),
        ..Default::default()
    };
    h.publish(&[newcomer]).await?;
    let (mut calls_1s, mut answered) = (None, None);
    while answered.is_none() || started.elapsed() < Duration::from_secs(5) {
        if calls_1s.is_none() && started.elapsed() >= Duration::from_secs(1) {
            calls_1s = Some(h.sim.stats().total_calls - calls0);
        }
        if answered.is_none() {
            let next = tokio::time::timeout(Duration::from_millis(100), h.events.next()).await;
            if let Ok(Ok((_, ev))) = next
                && ev.data.request_id.as_deref() == Some("bench-after-restart")
            {
                answered = Some(started.elapsed());
            }
        } else {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(120),
            "no outcome for a request published after the restart within 120 s"
        );
    }
    Ok(Restart {
        answered: answered.unwrap_or_default(),
        calls_1s: calls_1s.unwrap_or_default(),
        calls_5s: h.sim.stats().total_calls - calls0,
    })
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
        "budget: rate {rate}/s, burst {}, a backlog of {n} requests",
        budget.burst
    );
    println!(
        "  achieved            {achieved:.1} calls/s over {secs:.0} s = {:.1}% of the budget; busiest second {busiest} (limit {})",
        100.0 * achieved / rate,
        rate as u64 + u64::from(budget.burst)
    );
    Ok(())
}

pub async fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    let base = Config::from_env()?;
    throughput(&base, args.requests, Duration::ZERO, 0).await?;
    if args.prefill > 0 {
        throughput(&base, args.requests, Duration::ZERO, args.prefill).await?;
    }
    throughput(&base, args.requests, Duration::from_secs(1), 0).await?;
    if args.in_flight > 0 {
        memory(&base, args.in_flight).await?;
    }
    if args.budget_rate > 0.0 {
        budget(&base, args.budget_rate, args.budget_window).await?;
    }
    if args.poll_tasks > 0 {
        super::polls_bench::run(&base, args.poll_tasks).await?;
    }
    Ok(ExitCode::SUCCESS)
}

//! `reaper bench`'s memory run: a `reaper run` child worker idle, then with N tasks in flight
//! (each Running for an hour, polled from the ledger) — its resident memory at each stage and
//! its peak, the polls it sends and the CPU they take — and what a `kill -9` of it and a new
//! child on the same ledger look like. Prints figures; asserts nothing.

use super::bench::{UNLIMITED, next_outcome, spec, worker_usage};
use super::harness::{Harness, HarnessSpec, Placement, sample_batch};
use super::procfs;
use crate::config::Config;
use crate::sim::SimConfig;
use std::time::{Duration, Instant};

/// Runs it with `n` tasks in flight.
pub async fn run(base: &Config, n: usize) -> anyhow::Result<()> {
    let hour = Duration::from_secs(3600);
    let sim = SimConfig {
        task_duration: (hour, hour),
        ..Default::default()
    };
    let spec = HarnessSpec {
        placement: Placement::ChildProcess,
        ..spec(sim, UNLIMITED, base)
    };
    let mut h = Harness::start(base.clone(), spec).await?;
    let ledger = h.ledger().await?;
    let idle = worker_usage(&mut h);
    let started = Instant::now();
    h.publish(&sample_batch(n, "bench-memory")).await?;
    let published = started.elapsed().as_secs_f64();
    wait_until_polling(&mut h, &ledger, n).await?;
    let all_polling = started.elapsed().as_secs_f64();
    let polls = measure_polls(&mut h).await;
    let loaded = worker_usage(&mut h);
    let bench = procfs::usage(None);
    let db = std::fs::metadata(&h.cfg.ledger)
        .map(|m| m.len())
        .unwrap_or(0) as f64
        / 1048576.0;
    let restart = crash_and_restart(&mut h).await?;
    ledger.close().await;
    h.stop().await;
    println!(
        "memory: {n} tasks in flight (each Running for 1 h), polled from the ledger; the worker a `reaper run` child process"
    );
    println!("  published           {n} in {published:.1} s; all polling after {all_polling:.1} s");
    println!(
        "  worker memory       {:.0} MiB resident idle (ready, before any request); {:.0} MiB with {n} tasks in flight (all polling); {:.0} MiB peak (VmRSS, VmHWM of the child)",
        idle.rss_mib, loaded.rss_mib, loaded.peak_mib
    );
    println!(
        "  bench memory        {:.0} MiB resident, {:.0} MiB peak (the bench process: simulator with its record of {n} tasks, publisher, watcher)",
        bench.rss_mib, bench.peak_mib
    );
    println!("  ledger file         {db:.0} MiB");
    polls.print();
    restart.print();
    Ok(())
}

/// Waits until `n` requests of the ledger are polling (a child worker that ends meanwhile is
/// an error).
async fn wait_until_polling(
    h: &mut Harness,
    ledger: &crate::ledger::Ledger,
    n: usize,
) -> anyhow::Result<()> {
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
        if let Some(worker) = h.worker_process() {
            worker.check_alive()?;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Polls sent and the worker's CPU over a window while every task is polled.
struct Polls {
    per_second: f64,
    /// The child worker's CPU time over the window, as a share of one core.
    worker_cpu_percent: f64,
    /// The bench process's (simulator answering the polls), likewise.
    bench_cpu_percent: f64,
    window: f64,
}

/// Measures the polls over 10 s.
async fn measure_polls(h: &mut Harness) -> Polls {
    let (w0, b0) = (worker_usage(h), procfs::usage(None));
    let (calls0, t0) = (h.sim.stats().total_calls, Instant::now());
    tokio::time::sleep(Duration::from_secs(10)).await;
    let (w1, b1) = (worker_usage(h), procfs::usage(None));
    let calls1 = h.sim.stats().total_calls;
    let window = t0.elapsed().as_secs_f64();
    Polls {
        per_second: (calls1 - calls0) as f64 / window,
        worker_cpu_percent: 100.0 * (w1.cpu_seconds - w0.cpu_seconds) / window,
        bench_cpu_percent: 100.0 * (b1.cpu_seconds - b0.cpu_seconds) / window,
        window,
    }
}

impl Polls {
    fn print(&self) {
        println!(
            "  while they poll     {:.0} polls/s; worker CPU {:.0}% of one core over {:.0} s (the bench process, answering them: {:.0}%)",
            self.per_second, self.worker_cpu_percent, self.window, self.bench_cpu_percent
        );
    }
}

/// What a crash and restart with many tasks in flight looks like, timed from the kill.
struct Restart {
    /// Until the new child answered `/readyz` with 200.
    ready: Duration,
    /// Until the outcome of a request published once the new child was ready.
    answered: Duration,
    calls_1s: u64,
    calls_5s: u64,
}

impl Restart {
    fn print(&self) {
        println!(
            "  after kill -9       a new child ready {:.2} s after the kill, a new request answered {:.2} s after it; {} EM calls in the first second after the kill, {} in the first 5 s (verifications spread, not fired at once)",
            self.ready.as_secs_f64(),
            self.answered.as_secs_f64(),
            self.calls_1s,
            self.calls_5s
        );
    }
}

/// Kills the child worker (`kill -9`), starts a new one on the same ledger, publishes one new
/// request once it is ready and measures how soon it is answered and how many calls reach the
/// simulator in the first seconds after the kill (counted through its `/_sim/stats`, by a task
/// of its own, since starting the new child may take longer than a second).
async fn crash_and_restart(h: &mut Harness) -> anyhow::Result<Restart> {
    let calls0 = h.sim.stats().total_calls;
    let started = Instant::now();
    let stats_url = format!("{}/_sim/stats", h.sim.base_url());
    let calls_at = |after: u64| {
        let url = stats_url.clone();
        tokio::spawn(async move {
            tokio::time::sleep_until((started + Duration::from_secs(after)).into()).await;
            let body = reqwest::get(&url).await?.text().await?;
            let stats: crate::sim::SimStats = serde_json::from_str(&body)?;
            anyhow::Ok(stats.total_calls)
        })
    };
    let (calls_1s, calls_5s) = (calls_at(1), calls_at(5));
    h.crash_and_restart().await?;
    let ready = started.elapsed();
    let newcomer = crate::request::RequestWire {
        request_id: Some("bench-after-restart".into()),
        target: serde_json::json!({"type": "em.task", "task_id": "task-999999999"}),
        ..Default::default()
    };
    h.publish(&[newcomer]).await?;
    let answered = loop {
        if next_outcome(h).await?.as_deref() == Some("bench-after-restart") {
            break started.elapsed();
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(120),
            "no outcome for a request published after the restart within 120 s"
        );
    };
    Ok(Restart {
        ready,
        answered,
        calls_1s: calls_1s.await?? - calls0,
        calls_5s: calls_5s.await?? - calls0,
    })
}

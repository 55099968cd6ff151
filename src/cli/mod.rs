//! The command line (design 1.5). Each subcommand parses its flags, builds what it needs from
//! the one [`Config`], and returns an exit code; `main` only prints errors.

mod bench;
mod capacity_bench;
mod controls;
mod demo;
mod enqueue;
pub mod harness;
mod memory_bench;
mod ops;
mod plan;
mod polls_bench;
mod procfs;
mod worker_process;

use crate::config::Config;
use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// reaper — bulk deletion from RabbitMQ requests to Veeam Enterprise Manager and Huawei DCS.
#[derive(Debug, Parser)]
#[command(version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the worker (configured by REAPER_… environment variables).
    Run,
    /// Serve the Enterprise Manager + Huawei DCS simulator.
    Simulate(SimulateArgs),
    /// Simulator + worker + a sample batch in one process, against the configured RabbitMQ.
    Demo(demo::DemoArgs),
    /// Figures of the worker alone (a child process): throughput, CPU and SQLite transactions
    /// per request, memory idle and with many tasks in flight; then 503s against a capacity,
    /// budget use and polls.
    Bench(bench::BenchArgs),
    /// Publish requests from a JSON Lines or CSV file, with publisher confirms.
    Enqueue(enqueue::EnqueueArgs),
    /// Dry run of a request file without the broker or the ledger: validates each line,
    /// applies the guard rails, checks each EM target with a GET (never a DELETE), prints a
    /// summary and the plan.
    Plan(plan::PlanArgs),
    /// What the ledger holds: counts per state and outcome, or one request's history.
    Status {
        /// Show this request's row and history.
        request_id: Option<String>,
    },
    /// Per-request completion report of a batch.
    Report {
        #[arg(long)]
        batch: String,
        #[arg(long, value_enum, default_value = "csv")]
        format: ops::ReportFormat,
    },
    /// Stop sending DELETEs for an endpoint or a batch (polls of running tasks go on).
    /// Acts on REAPER_LEDGER; a running worker obeys within 2 s.
    Pause(controls::PauseArgs),
    /// Let a paused endpoint or batch send DELETEs again (an endpoint's failure breaker
    /// counts from now on).
    Resume(controls::PauseTarget),
    /// Cancel a batch or a request: what is not sent yet ends `cancelled`; with
    /// --stop-running, running EM tasks are stopped too.
    Cancel(controls::CancelArgs),
    /// Run again requests that ended without a delete (refused, retries_exhausted,
    /// timed_out, expired, task_failed, cancelled); never one that ended deleted or
    /// already_absent.
    Replay(controls::ReplayArgs),
    /// Delete requests that finished longer ago than DURATION (with their history and
    /// published events) from the ledger. Unfinished requests and unpublished events stay.
    Prune {
        /// e.g. `30d`, `12h`.
        #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
        finished_before: Duration,
    },
}

/// Flags of `reaper simulate`. Credentials come from REAPER_EM_USERNAME / REAPER_EM_PASSWORD
/// (or REAPER_EM_PASSWORD_FILE), never from a flag; they default to `reaper` / `reaper`.
/// The DCS side's IAM credentials likewise come from REAPER_DCS_USERNAME / REAPER_DCS_PASSWORD
/// (or _FILE) / REAPER_DCS_DOMAIN (default `reaper` each), and a static token it accepts from
/// REAPER_DCS_TOKEN (or _FILE).
#[derive(Debug, Clone, clap::Args)]
pub struct SimulateArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9398", env = "REAPER_SIM_LISTEN")]
    pub listen: SocketAddr,
    /// How long a task runs: one duration (`2s`) or a range (`1s..5s`).
    #[arg(long, default_value = "2s", value_parser = parse_range)]
    pub task_duration: (Duration, Duration),
    /// Logon sessions idle longer than this expire.
    #[arg(long, default_value = "15m", value_parser = humantime::parse_duration)]
    pub session_idle_timeout: Duration,
    /// Share of tasks that finish with Success=false.
    #[arg(long, default_value_t = 0.0, value_parser = parse_ratio)]
    pub task_failure_ratio: f64,
    /// Strict mode: a JSON inventory of jobs (with their names) and their includes / linked
    /// repositories / jobs.
    #[arg(long)]
    pub inventory: Option<PathBuf>,
    /// Share of API calls answered 500/502/503.
    #[arg(long, default_value_t = 0.0, value_parser = parse_ratio)]
    pub error_ratio: f64,
    /// Share of API calls answered 503 (or --throttle-status) with Retry-After.
    #[arg(long, default_value_t = 0.0, value_parser = parse_ratio)]
    pub throttle_ratio: f64,
    /// Status of a throttling answer: 503 or 429.
    #[arg(long, default_value_t = 503, value_parser = parse_throttle_status)]
    pub throttle_status: u16,
    /// Added to every answer.
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
    pub latency: Duration,
    /// Share of 202 answers to resource DELETEs whose body is no readable Task (an HTML page
    /// or nothing); the deletion goes ahead all the same.
    #[arg(long, default_value_t = 0.0, value_parser = parse_ratio)]
    pub unreadable_task_ratio: f64,
    /// Concurrent calls above which the simulator answers 503.
    #[arg(long)]
    pub capacity: Option<u32>,
    /// DCS: how long an IAM token is valid (then 401 DCS.1002).
    #[arg(long, default_value = "24h", value_parser = humantime::parse_duration)]
    pub dcs_token_ttl: Duration,
    /// DCS: how long a background task stays EXECUTING (a DELETE meanwhile is 400 DCS.4957).
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
    pub dcs_task_executing_for: Duration,
    /// DCS: API-gateway calls per second above which `/v2` answers 429 APIG.0308.
    #[arg(long)]
    pub dcs_rate_limit: Option<u32>,
    /// DCS: a project whose background tasks may not be deleted (403 DCS.2003); repeatable.
    #[arg(long = "dcs-forbidden-project")]
    pub dcs_forbidden_projects: Vec<String>,
    /// Serve HTTPS with this PEM certificate chain (leaf first), as a real EM on port 9398.
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
}

/// A simulator credential from `KEY` or the file named by `KEY_FILE`, read by the worker's
/// rule (`config::env_secret`: errors name the key, never the value or the path).
fn sim_secret(key: &str) -> anyhow::Result<Option<String>> {
    Ok(crate::config::env_secret(key)?.map(|s| s.current().expose().to_string()))
}

/// A non-secret setting from the environment, or `default`.
fn env_or(key: &str, default: &str) -> String {
    std::env::var(key)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.into())
}

/// Parses a throttling status: 503 or 429.
fn parse_throttle_status(s: &str) -> Result<u16, String> {
    match s.trim() {
        "503" => Ok(503),
        "429" => Ok(429),
        other => Err(format!("`{other}`: expected 503 or 429")),
    }
}

/// Parses a share of calls or tasks: a number from 0 to 1.
fn parse_ratio(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
        _ => Err(format!("`{s}`: expected a share from 0 to 1 (e.g. 0.25)")),
    }
}

/// Parses `2s` or `1s..5s`.
fn parse_range(s: &str) -> Result<(Duration, Duration), String> {
    let one = |p: &str| humantime::parse_duration(p.trim()).map_err(|e| format!("`{p}`: {e}"));
    match s.split_once("..") {
        Some((a, b)) => Ok((one(a)?, one(b)?)),
        None => one(s).map(|d| (d, d)),
    }
}

impl SimulateArgs {
    /// The simulator configuration; credentials from the environment.
    pub fn sim_config(&self) -> anyhow::Result<crate::sim::SimConfig> {
        let inventory = match &self.inventory {
            Some(p) => Some(crate::sim::Inventory::load(p)?),
            None => None,
        };
        Ok(crate::sim::SimConfig {
            username: env_or("REAPER_EM_USERNAME", "reaper"),
            password: sim_secret("REAPER_EM_PASSWORD")?.unwrap_or_else(|| "reaper".into()),
            task_duration: self.task_duration,
            session_idle_timeout: self.session_idle_timeout,
            task_failure_ratio: self.task_failure_ratio,
            inventory,
            error_ratio: self.error_ratio,
            throttle_ratio: self.throttle_ratio,
            throttle_status: self.throttle_status,
            latency: self.latency,
            capacity: self.capacity,
            unreadable_task_ratio: self.unreadable_task_ratio,
            dcs_username: env_or("REAPER_DCS_USERNAME", "reaper"),
            dcs_password: sim_secret("REAPER_DCS_PASSWORD")?.unwrap_or_else(|| "reaper".into()),
            dcs_domain: env_or("REAPER_DCS_DOMAIN", "reaper"),
            dcs_token_ttl: self.dcs_token_ttl,
            dcs_static_token: sim_secret("REAPER_DCS_TOKEN")?,
            dcs_task_executing_for: self.dcs_task_executing_for,
            dcs_rate_limit: self.dcs_rate_limit,
            dcs_forbidden_projects: self.dcs_forbidden_projects.clone(),
            tls: match (&self.tls_cert, &self.tls_key) {
                (Some(cert), Some(key)) => Some(crate::sim::SimTls::from_files(cert, key)?),
                _ => None,
            },
        })
    }
}

/// A progress bar of `len` items (`{pos}/{len} {what}`, rate and eta) on stderr; it draws
/// nothing when stderr is not a terminal.
fn progress_bar(len: usize, what: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(len as u64);
    let template = format!("{{bar:40}} {{pos}}/{{len}} {what} ({{per_sec}}, eta {{eta}})");
    match indicatif::ProgressStyle::with_template(&template) {
        Ok(style) => bar.with_style(style),
        Err(_) => bar,
    }
}

/// A token cancelled on SIGINT or SIGTERM.
pub fn shutdown_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("installing the SIGTERM handler");
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        tracing::info!("stop signal received: shutting down");
        t.cancel();
    });
    token
}

/// Runs a parsed command.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Run => {
            let cfg = Config::from_env()?;
            for warning in cfg.warnings() {
                tracing::warn!("{warning}");
            }
            let cancel = shutdown_signal();
            let health = std::sync::Arc::new(crate::metrics::Health::default());
            let metrics = match cfg.metrics_addr {
                Some(addr) => {
                    let ledger = crate::ledger::Ledger::open(&cfg.ledger).await?;
                    let listener = crate::metrics::bind(addr).await?;
                    let (h, c) = (std::sync::Arc::clone(&health), cancel.clone());
                    Some(tokio::spawn(crate::metrics::serve(listener, ledger, h, c)))
                }
                None => None,
            };
            let result = crate::worker::run(cfg, cancel.clone(), health).await;
            cancel.cancel();
            if let Some(m) = metrics {
                let _ = m.await;
            }
            result?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Simulate(args) => {
            let cfg = args.sim_config()?;
            let listener = tokio::net::TcpListener::bind(args.listen)
                .await
                .map_err(|e| anyhow::anyhow!("binding {}: {e}", args.listen))?;
            let scheme = if cfg.tls.is_some() { "https" } else { "http" };
            println!(
                "EM + DCS simulator on {scheme}://{} (EM under /api, DCS under /v2, IAM at \
                 /v3/auth/tokens, counters at /_sim/stats)",
                listener.local_addr()?
            );
            crate::sim::serve(cfg, listener, shutdown_signal()).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo(args) => demo::run(args).await,
        Command::Bench(args) => bench::run(args).await,
        Command::Enqueue(args) => enqueue::run(args).await,
        Command::Plan(args) => plan::run(args).await,
        Command::Status { request_id } => ops::status(request_id.as_deref()).await,
        Command::Report { batch, format } => ops::report(&batch, format).await,
        Command::Prune { finished_before } => ops::prune(finished_before).await,
        Command::Pause(args) => controls::pause(args).await,
        Command::Resume(target) => controls::resume(target).await,
        Command::Cancel(args) => controls::cancel(args).await,
        Command::Replay(args) => controls::replay(args).await,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_ratio_flag_takes_a_share_from_0_to_1() {
        assert_eq!(super::parse_ratio("0.6"), Ok(0.6));
        assert_eq!(super::parse_ratio(" 1 "), Ok(1.0));
        for bad in ["1.5", "-0.1", "NaN", "60%", ""] {
            let err = super::parse_ratio(bad).unwrap_err();
            assert!(err.contains("from 0 to 1"), "{bad}: {err}");
        }
    }
}

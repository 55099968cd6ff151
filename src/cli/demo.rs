//! `reaper demo`: the simulator and a worker in this process, against the configured
//! RabbitMQ, with a sample batch; prints progress and a summary, and exits 0 only when every
//! outcome event has arrived. Uses its own randomly named queues and a temporary ledger, so
//! it never touches a real deployment's queues.

use crate::broker::client::{EventWatcher, RequestPublisher};
use crate::config::{Config, EmSettings, Secret, Topology};
use crate::em::codec::Format;
use crate::http::HttpSettings;
use crate::limit::Budget;
use crate::request::RequestWire;
use std::collections::{BTreeMap, HashSet};
use std::process::ExitCode;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

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

/// The demo's worker configuration: the environment's broker and limits, its own names.
fn demo_config(
    args: &DemoArgs,
    base: Config,
    em_url: String,
    ledger: std::path::PathBuf,
) -> Config {
    let prefix = format!(
        "reaper.demo.{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    Config {
        topology: Topology {
            quorum: false,
            ..Topology::with_prefix(&prefix)
        },
        ledger,
        worker_name: "demo".into(),
        em: Some(EmSettings {
            name: "em".into(),
            url: em_url,
            username: "reaper".into(),
            password: Secret::new("reaper"),
            format: args.format,
            http: HttpSettings::default(),
            budget: Budget {
                rate_per_sec: args.rate,
                burst: (args.rate as u32).clamp(1, 100),
                max_in_flight: args.max_in_flight,
            },
        }),
        poll: crate::retry::Backoff {
            initial: Duration::from_millis(250),
            max: Duration::from_secs(2),
            ..base.poll
        },
        shutdown_grace: Duration::from_secs(5),
        ..base
    }
}

/// A sample batch of `count` job deletions.
pub fn sample_batch(count: usize, batch_id: &str) -> Vec<RequestWire> {
    (0..count)
        .map(|i| RequestWire {
            request_id: Some(format!("{batch_id}-{i:06}")),
            target: serde_json::json!({"type": "em.job", "job_id": uuid::Uuid::new_v4().to_string()}),
            batch_id: Some(batch_id.to_string()),
            correlation_id: Some("reaper-demo".into()),
            ..Default::default()
        })
        .collect()
}

pub async fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let base = Config::from_env()?;
    let sim = crate::sim::spawn(
        crate::sim::SimConfig {
            task_duration: args.task_duration,
            ..Default::default()
        },
        "127.0.0.1:0".parse()?,
    )
    .await?;
    let dir = tempfile_dir()?;
    let cfg = demo_config(&args, base, sim.base_url(), dir.join("demo-ledger.db"));
    let conn = crate::broker::connect(cfg.amqp_url.expose(), "reaper/demo-client").await?;
    let setup = conn.create_channel().await?;
    crate::broker::declare(&setup, &cfg.topology).await?;
    let mut events = EventWatcher::new(&conn, &cfg.topology).await?;

    let cancel = CancellationToken::new();
    let worker = tokio::spawn(crate::cli::run_worker(cfg.clone(), cancel.clone()));
    let batch_id = format!("demo-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let requests = sample_batch(args.count, &batch_id);
    println!(
        "reaper demo: {} em.job requests → {} (simulated EM at {}), rate {}/s",
        args.count,
        cfg.topology.request_queue,
        sim.base_url(),
        args.rate
    );
    let started = Instant::now();
    RequestPublisher::new(&conn, &cfg.topology)
        .await?
        .publish_all(&requests)
        .await?;
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
            ev = events.next() => {
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
    let stats = sim.stats();
    cancel.cancel();
    let _ = worker.await;
    super::cleanup_topology(&setup, &cfg.topology).await;
    sim.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);

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

fn tempfile_dir() -> anyhow::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("reaper-demo-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

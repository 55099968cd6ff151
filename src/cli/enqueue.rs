//! `reaper enqueue FILE`: validates every request of a JSON Lines or CSV file first (nothing
//! is published when a line is bad, unless `--skip-invalid`), then publishes them with
//! publisher confirms and a progress bar.
//!
//! CSV: a header row; columns `request_id`, `type`, the target's fields by name (`job_id`,
//! `include_id`, `task_id`, …) and optionally `endpoint`, `correlation_id`, `batch_id`,
//! `not_after`. Empty cells are absent.

use crate::broker::client::RequestPublisher;
use crate::config::Config;
use crate::request::{DeleteRequest, Rejection, RequestWire, System};
use anyhow::Context;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Debug, Clone, clap::Args)]
pub struct EnqueueArgs {
    /// A `.jsonl` / `.json` file (one request per line) or a `.csv` file.
    pub file: PathBuf,
    /// Publish the valid lines and report the bad ones, instead of publishing nothing.
    #[arg(long)]
    pub skip_invalid: bool,
    /// Requests per confirm round.
    #[arg(long, default_value_t = 500)]
    pub chunk: usize,
}

const REQUEST_KEYS: [&str; 5] = [
    "request_id",
    "endpoint",
    "correlation_id",
    "batch_id",
    "not_after",
];

/// Reads a file into (line number, body) pairs.
pub fn read_bodies(path: &Path) -> anyhow::Result<Vec<(usize, Vec<u8>)>> {
    let is_csv = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"));
    if !is_csv {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        return Ok(text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(i, l)| (i + 1, l.as_bytes().to_vec()))
            .collect());
    }
    let mut reader =
        csv::Reader::from_path(path).with_context(|| format!("reading {}", path.display()))?;
    let headers = reader.headers()?.clone();
    let mut out = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let record = record.with_context(|| format!("{}: CSV row {}", path.display(), i + 2))?;
        let mut request = serde_json::Map::new();
        let mut target = serde_json::Map::new();
        for (key, value) in headers.iter().zip(record.iter()) {
            if value.is_empty() {
                continue;
            }
            let v = serde_json::Value::String(value.to_string());
            if REQUEST_KEYS.contains(&key) {
                request.insert(key.to_string(), v);
            } else {
                target.insert(key.to_string(), v);
            }
        }
        request.insert("target".into(), serde_json::Value::Object(target));
        out.push((i + 2, serde_json::to_vec(&request)?));
    }
    Ok(out)
}

/// Reads a file (as [`read_bodies`]) and decodes and validates each line as the worker does:
/// (line number, the request or why it cannot be accepted). An `Err` is a file that cannot
/// be read.
pub fn read_requests(
    path: &Path,
) -> anyhow::Result<Vec<(usize, Result<DeleteRequest, Rejection>)>> {
    Ok(read_bodies(path)?
        .into_iter()
        .map(|(line, body)| (line, DeleteRequest::decode(&body, None)))
        .collect())
}

/// The wire form of `req`, ready to publish. Routed by endpoint (`REAPER_ROUTE_BY_ENDPOINT`),
/// a request that names no endpoint is given the only configured endpoint of its system (it
/// travels by that name); with none or several configured it cannot be routed.
fn routed(cfg: &Config, req: DeleteRequest) -> Result<RequestWire, String> {
    let mut wire = req.to_wire();
    if !cfg.topology.route_by_endpoint || wire.endpoint.is_some() {
        return Ok(wire);
    }
    let (system, names): (&str, Vec<&str>) = match req.target.system() {
        System::Em => ("EM", cfg.em.iter().map(|e| e.name.as_str()).collect()),
        System::Dcs => ("DCS", cfg.dcs.iter().map(|d| d.name.as_str()).collect()),
    };
    match names.as_slice() {
        [only] => {
            wire.endpoint = Some(only.to_string());
            Ok(wire)
        }
        _ => Err(format!(
            "names no endpoint, and requests are routed by endpoint (REAPER_ROUTE_BY_ENDPOINT) \
             while {} {system} endpoints are configured: set `endpoint`",
            names.len()
        )),
    }
}

pub async fn run(args: EnqueueArgs) -> anyhow::Result<ExitCode> {
    let cfg = Config::from_env()?;
    let mut good: Vec<RequestWire> = Vec::new();
    let mut bad = 0usize;
    for (line, decoded) in read_requests(&args.file)? {
        match decoded
            .map_err(|e| e.to_string())
            .and_then(|r| routed(&cfg, r))
        {
            Ok(r) => good.push(r),
            Err(e) => {
                bad += 1;
                eprintln!("{}:{line}: {e}", args.file.display());
            }
        }
    }
    if bad > 0 && !args.skip_invalid {
        eprintln!(
            "reaper enqueue: {bad} invalid line(s); nothing published (use --skip-invalid to publish the rest)"
        );
        return Ok(ExitCode::from(2));
    }
    let conn = crate::broker::connect(cfg.amqp_url.expose(), "reaper/enqueue").await?;
    let publisher = RequestPublisher::new(&conn, &cfg.topology).await?;
    let endpoints: BTreeSet<&str> = good.iter().filter_map(|r| r.endpoint.as_deref()).collect();
    publisher.check_routes(&conn, endpoints).await?;
    let bar = super::progress_bar(good.len(), "requests confirmed");
    for chunk in good.chunks(args.chunk.max(1)) {
        publisher.publish_all(chunk).await?;
        bar.inc(chunk.len() as u64);
    }
    bar.finish();
    let _ = conn.close(200, "done".into()).await;
    let to = if cfg.topology.route_by_endpoint {
        "the exchange "
    } else {
        ""
    };
    println!(
        "{} request(s) published to {to}{}{}",
        good.len(),
        cfg.topology.request_queue,
        if bad > 0 {
            format!(", {bad} invalid line(s) skipped")
        } else {
            String::new()
        }
    );
    Ok(ExitCode::SUCCESS)
}

//! `reaper status` and `reaper report`: read-only views of the ledger for operators (with the
//! pauses in force); and `reaper prune`, which forgets requests that finished long ago.

use crate::config::Config;
use crate::event::ms_to_time;
use crate::ledger::{Ledger, now_ms};
use std::process::ExitCode;
use std::time::Duration;

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ReportFormat {
    Csv,
    Json,
}

async fn open() -> anyhow::Result<Ledger> {
    let cfg = Config::from_env()?;
    existing_ledger(&cfg)
        .await?
        .ok_or_else(|| anyhow::anyhow!(no_ledger(&cfg)))
}

/// The configured ledger file, opened; `None` when there is no such file: an operator's
/// command never creates one (a typo in `REAPER_LEDGER` would otherwise look empty).
pub(super) async fn existing_ledger(cfg: &Config) -> anyhow::Result<Option<Ledger>> {
    if !cfg.ledger.exists() {
        return Ok(None);
    }
    Ok(Some(Ledger::open(&cfg.ledger).await?))
}

/// What an operator's command says when there is no ledger file.
pub(super) fn no_ledger(cfg: &Config) -> String {
    format!("no ledger at {} (REAPER_LEDGER)", cfg.ledger.display())
}

pub async fn status(request_id: Option<&str>) -> anyhow::Result<ExitCode> {
    let ledger = open().await?;
    let Some(id) = request_id else {
        summary(&ledger).await?;
        return Ok(ExitCode::SUCCESS);
    };
    let Some(row) = ledger.get(id).await? else {
        eprintln!("reaper status: no request {id} in the ledger");
        return Ok(ExitCode::from(3));
    };
    println!("request   {}", row.request_id);
    println!("target    {}", row.target);
    println!("endpoint  {}", row.endpoint);
    println!(
        "state     {}  outcome {}",
        row.state,
        row.outcome.as_deref().unwrap_or("-")
    );
    println!("attempts  {}  polls {}", row.attempts, row.poll_count);
    if row.generation > 0 {
        println!("replayed  {} times (`reaper replay`)", row.generation);
    }
    if let Some(at) = row.cancel_requested_at {
        let stop = if row.stop_running {
            ", --stop-running"
        } else {
            ""
        };
        println!("cancel    requested {}{stop}", ms_to_time(at).to_rfc3339());
    }
    if let Some(task) = &row.task_id {
        println!(
            "task      {task} (session {}) state {} {}",
            row.task_session.as_deref().unwrap_or("-"),
            row.task_state.as_deref().unwrap_or("-"),
            row.task_message.as_deref().unwrap_or("")
        );
    }
    if let Some(e) = &row.last_error {
        println!("error     {e}");
    }
    println!("history");
    for t in ledger.history(id).await? {
        println!(
            "  {}  {:<11} {}",
            ms_to_time(t.at).to_rfc3339(),
            t.state,
            t.note.unwrap_or_default()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Counts per state and outcome, unpublished events, and the pauses in force.
async fn summary(ledger: &Ledger) -> anyhow::Result<()> {
    let counts = ledger.counts().await?;
    println!("{:<12} {:<18} {:>10}", "state", "outcome", "requests");
    for c in &counts {
        println!(
            "{:<12} {:<18} {:>10}",
            c.state,
            c.outcome.as_deref().unwrap_or("-"),
            c.count
        );
    }
    println!("unpublished events: {}", ledger.unpublished_count().await?);
    for p in ledger.paused().await? {
        println!(
            "paused {} {} since {}: {}",
            p.scope.as_str(),
            p.name,
            ms_to_time(p.since).to_rfc3339(),
            p.reason
        );
    }
    Ok(())
}

pub async fn report(batch: &str, format: ReportFormat) -> anyhow::Result<ExitCode> {
    let ledger = open().await?;
    let rows = ledger.batch_report(batch).await?;
    match format {
        ReportFormat::Json => println!("{}", serde_json::to_string_pretty(&rows)?),
        ReportFormat::Csv => {
            let mut w = csv::Writer::from_writer(std::io::stdout());
            w.write_record([
                "request_id",
                "target_type",
                "target",
                "state",
                "outcome",
                "attempts",
                "task_id",
                "http_status",
                "error",
                "received_at",
                "finished_at",
            ])?;
            for r in &rows {
                w.write_record([
                    r.request_id.clone(),
                    r.target_type.clone(),
                    r.target.clone(),
                    r.state.clone(),
                    r.outcome.clone().unwrap_or_default(),
                    r.attempts.to_string(),
                    r.task_id.clone().unwrap_or_default(),
                    r.http_status.map(|s| s.to_string()).unwrap_or_default(),
                    r.last_error.clone().unwrap_or_default(),
                    ms_to_time(r.received_at).to_rfc3339(),
                    r.finished_at
                        .map(|t| ms_to_time(t).to_rfc3339())
                        .unwrap_or_default(),
                ])?;
            }
            w.flush()?;
        }
    }
    if rows.is_empty() {
        eprintln!("reaper report: no request of batch {batch} in the ledger");
        return Ok(ExitCode::from(3));
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn prune(finished_before: Duration) -> anyhow::Result<ExitCode> {
    let ledger = open().await?;
    let age = i64::try_from(finished_before.as_millis()).unwrap_or(i64::MAX);
    let cutoff = now_ms().saturating_sub(age);
    let pruned = ledger.prune_finished(cutoff).await?;
    println!(
        "pruned what finished before {}: {} requests, {} history rows, {} published events",
        ms_to_time(cutoff).to_rfc3339(),
        pruned.requests,
        pruned.transitions,
        pruned.events
    );
    Ok(ExitCode::SUCCESS)
}

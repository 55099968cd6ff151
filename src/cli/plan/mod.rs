//! `reaper plan FILE`: a dry run of a request file without the broker or the ledger (design
//! 1.5). Each line is read and validated as `reaper enqueue` does, passes the guard rails the
//! worker applies, and each EM target is checked with one budgeted GET ([`check`]); the
//! summary goes to stdout, the plan as text, JSON or CSV ([`output`]) to stdout or to
//! `--output`. It never sends a DELETE and never retries a failed GET (that line is
//! `unchecked`, with the error). Exit code 0 when it ran, whatever the verdicts; 2 when the
//! file cannot be read.

mod check;
mod output;

use super::enqueue::read_requests;
use crate::config::Config;
use crate::guard::Protections;
use anyhow::Context;
use check::Checker;
use output::{PlanFormat, Summary};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Clone, clap::Args)]
pub struct PlanArgs {
    /// A `.jsonl` / `.json` file (one request per line) or a `.csv` file, as `reaper enqueue`
    /// reads them.
    pub file: PathBuf,
    /// How the plan is written.
    #[arg(long, value_enum, default_value = "text")]
    pub format: PlanFormat,
    /// Write the plan to this file instead of stdout (the summary still goes to stdout).
    #[arg(long, value_name = "PATH")]
    pub output: Option<PathBuf>,
}

pub async fn run(args: PlanArgs) -> anyhow::Result<ExitCode> {
    let cfg = Config::from_env()?;
    // A bad protect file or glob stops it, as it stops the worker: no plan without the rules.
    let protection = Protections::load(&cfg)?;
    let lines = match read_requests(&args.file) {
        Ok(lines) => lines,
        Err(e) => {
            eprintln!("reaper plan: {e:#}");
            return Ok(ExitCode::from(2));
        }
    };
    let checker = Checker::new(cfg, protection)?;
    let bar = super::progress_bar(lines.len(), "lines checked");
    let items = checker.check_all(lines, &bar).await;
    bar.finish_and_clear();
    checker.log_off().await;
    let summary = Summary::of(&items);
    let plan = output::render(args.format, summary, &items)?;
    let summary = summary.line(&args.file);
    let mut stdout = std::io::stdout().lock();
    match (&args.output, args.format) {
        (Some(path), _) => {
            std::fs::write(path, plan)
                .with_context(|| format!("writing the plan to {}", path.display()))?;
            writeln!(stdout, "{summary}; plan written to {}", path.display())?;
        }
        (None, PlanFormat::Text) => {
            stdout.write_all(&plan)?;
            writeln!(stdout, "{summary}")?;
        }
        (None, _) => {
            // stdout holds exactly the JSON or CSV (the summary is inside, or beside it).
            stdout.write_all(&plan)?;
            eprintln!("{summary}");
        }
    }
    stdout.flush()?;
    Ok(ExitCode::SUCCESS)
}

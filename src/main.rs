//! The `reaper` binary: parse the command line, set up logging, run, map to an exit code.

use clap::Parser;
use std::process::ExitCode;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = reaper::cli::Cli::parse();
    match reaper::cli::run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("reaper: {e:#}");
            ExitCode::FAILURE
        }
    }
}

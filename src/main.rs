//! The `reaper` binary: parse the command line, set up logging, run, map to an exit code.

use clap::Parser;
use std::process::ExitCode;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::{FilterExt, LevelFilter, Targets};
use tracing_subscriber::prelude::*;

/// Log targets whose trace output carries credentials, capped at debug whatever `RUST_LOG`
/// asks: lapin logs every frame it writes at trace (the handshake's `Connection.StartOk`
/// holds the broker password, as bytes), and amq-protocol-tcp the whole broker URI, password
/// included, when it connects. The cap is a filter of its own on the log layer, combined with
/// `RUST_LOG`'s by "and", so no directive can lift it.
fn credential_safe() -> Targets {
    Targets::new()
        .with_default(LevelFilter::TRACE)
        .with_target("lapin", LevelFilter::DEBUG)
        .with_target("amq_protocol", LevelFilter::DEBUG)
}

#[tokio::main]
async fn main() -> ExitCode {
    let wanted = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_filter(wanted.and(credential_safe())),
        )
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

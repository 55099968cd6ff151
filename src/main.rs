//! The `reaper` binary: parse the command line, set up logging, run, map to an exit code.

use clap::Parser;
use reaper::cli::{Cli, Command};
use reaper::config::LogFormat;
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

/// Logs to stderr as `format` says, filtered by `RUST_LOG` (else `default`) and the
/// credential-safe cap.
fn init_logging(format: LogFormat, default: &str) {
    let wanted = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let layer = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let layer = match format {
        LogFormat::Text => layer.boxed(),
        LogFormat::Json => layer.json().boxed(),
    };
    tracing_subscriber::registry()
        .with(layer.with_filter(wanted.and(credential_safe())))
        .init();
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let format = match LogFormat::from_env() {
        Ok(format) => format,
        Err(e) => {
            eprintln!("reaper: {e}");
            return ExitCode::FAILURE;
        }
    };
    // The demo and the plan are for people: their summary and plan, not the worker's logs,
    // unless RUST_LOG asks.
    let default = match cli.command {
        Command::Demo(_) | Command::Plan(_) => "warn",
        _ => "info",
    };
    init_logging(format, default);
    match reaper::cli::run(cli).await {
        Ok(code) => code,
        Err(e) if format == LogFormat::Json => {
            tracing::error!(error = format!("{e:#}"), "reaper stopped");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("reaper: {e:#}");
            ExitCode::FAILURE
        }
    }
}

//! `reaper pause`, `resume`, `cancel` and `replay` (design 1.5): the operator's controls on
//! the ledger file a running worker uses (`REAPER_LEDGER`; SQLite's WAL lets both write).
//! The worker obeys at its next claim, and its outbox publisher sends the `endpoint.paused`
//! / `endpoint.resumed` events these commands write (it looks at the outbox every second).
//! Each prints what it did, one line a request or a change, on stdout. Nothing done because
//! nothing could be (an unknown id, no ledger, a request that may not be replayed): the
//! reason on stderr or stdout, exit code 2.

use super::ops::{existing_ledger, no_ledger};
use crate::config::Config;
use crate::event::{EndpointData, EndpointEvent, Outcome, ms_to_time};
use crate::ledger::{
    CancelDone, Ledger, NewEvent, PauseDone, PauseScope, REPLAYABLE, ReplayDone, ResumeDone, Seen,
    Selection, now_ms,
};
use std::process::ExitCode;

/// An endpoint or a batch (exactly one).
#[derive(Debug, Clone, clap::Args)]
#[group(required = true, multiple = false)]
pub struct PauseTarget {
    /// The endpoint's name (`em`, `dcs`, or its configured name).
    #[arg(long, value_name = "NAME")]
    endpoint: Option<String>,
    /// The batch id (`batch_id` of the requests).
    #[arg(long, value_name = "ID")]
    batch: Option<String>,
}

/// Flags of `reaper pause`.
#[derive(Debug, Clone, clap::Args)]
pub struct PauseArgs {
    #[command(flatten)]
    target: PauseTarget,
    /// Why, for the history and the `endpoint.paused` event.
    #[arg(long, default_value = "paused by an operator")]
    reason: String,
}

/// A batch or one request (exactly one).
#[derive(Debug, Clone, clap::Args)]
#[group(required = true, multiple = false)]
pub struct Which {
    /// Every request of this batch.
    #[arg(long, value_name = "ID")]
    batch: Option<String>,
    /// One request.
    request_id: Option<String>,
}

/// Flags of `reaper cancel`.
#[derive(Debug, Clone, clap::Args)]
pub struct CancelArgs {
    #[command(flatten)]
    which: Which,
    /// Also stop running EM tasks (`DELETE /api/tasks/{id}`).
    #[arg(long)]
    stop_running: bool,
}

/// Flags of `reaper replay`.
#[derive(Debug, Clone, clap::Args)]
pub struct ReplayArgs {
    #[command(flatten)]
    which: Which,
    /// Only the batch's requests that ended so, comma-separated (e.g. `refused,timed_out`).
    #[arg(long, value_name = "LIST", requires = "batch", value_delimiter = ',',
          value_parser = parse_replayable)]
    outcome: Vec<Outcome>,
}

/// Parses an outcome a replay runs again.
fn parse_replayable(s: &str) -> Result<Outcome, String> {
    let names = REPLAYABLE.map(Outcome::as_str).join(", ");
    match Outcome::parse(s.trim()) {
        Some(o) if REPLAYABLE.contains(&o) => Ok(o),
        Some(_) => Err(format!("`{s}` is never replayed: only {names} are")),
        None => Err(format!("`{s}` is no outcome: replayable are {names}")),
    }
}

impl PauseTarget {
    fn scope_and_name(&self) -> (PauseScope, &str) {
        match (&self.endpoint, &self.batch) {
            (Some(name), _) => (PauseScope::Endpoint, name),
            (None, Some(id)) => (PauseScope::Batch, id),
            // clap requires one of the two.
            (None, None) => (PauseScope::Batch, ""),
        }
    }
}

impl Which {
    fn selection(&self) -> Selection {
        match (&self.batch, &self.request_id) {
            (Some(id), _) => Selection::Batch(id.clone()),
            (None, Some(id)) => Selection::Request(id.clone()),
            // clap requires one of the two.
            (None, None) => Selection::Request(String::new()),
        }
    }
}

/// Says why nothing was done, on stderr; exit code 2.
fn refuse(command: &str, why: impl std::fmt::Display) -> ExitCode {
    eprintln!("reaper {command}: {why}");
    ExitCode::from(2)
}

/// The configuration and its existing ledger, or the exit code of a refusal.
async fn open(command: &str) -> anyhow::Result<Result<(Config, Ledger), ExitCode>> {
    let cfg = Config::from_env()?;
    Ok(match existing_ledger(&cfg).await? {
        Some(ledger) => Ok((cfg, ledger)),
        None => Err(refuse(command, no_ledger(&cfg))),
    })
}

/// Whether the endpoint or batch exists (configured, or known to the ledger); else the
/// refusal, so that a typo never pauses nothing in silence.
async fn check_known(
    command: &str,
    cfg: &Config,
    ledger: &Ledger,
    scope: PauseScope,
    name: &str,
) -> anyhow::Result<Option<ExitCode>> {
    let configured: Vec<&str> = (cfg.em.iter().map(|e| e.name.as_str()))
        .chain(cfg.dcs.iter().map(|d| d.name.as_str()))
        .collect();
    let known = (scope == PauseScope::Endpoint && configured.contains(&name))
        || ledger.knows(scope, name).await?;
    Ok((!known).then(|| match scope {
        PauseScope::Endpoint => refuse(
            command,
            format!(
                "no endpoint {name} in the configuration (it has: {}) nor in the ledger",
                configured.join(", ")
            ),
        ),
        PauseScope::Batch => refuse(command, format!("no request of batch {name} in the ledger")),
    }))
}

/// The outbox row of an operator's `endpoint.paused` / `endpoint.resumed` event.
fn endpoint_event(cfg: &Config, endpoint: &str, state: &str, reason: &str, at: i64) -> NewEvent {
    let data = EndpointData::new(endpoint, state, reason, ms_to_time(at));
    NewEvent::of_endpoint(&EndpointEvent::endpoint(&cfg.worker_name, data))
}

/// `reaper pause --endpoint NAME | --batch ID`.
pub async fn pause(args: PauseArgs) -> anyhow::Result<ExitCode> {
    let (cfg, ledger) = match open("pause").await? {
        Ok(open) => open,
        Err(code) => return Ok(code),
    };
    let (scope, name) = args.target.scope_and_name();
    if let Some(code) = check_known("pause", &cfg, &ledger, scope, name).await? {
        return Ok(code);
    }
    let now = now_ms();
    let event = (scope == PauseScope::Endpoint)
        .then(|| endpoint_event(&cfg, name, "paused", &args.reason, now));
    let what = format!("{} {name}", scope.as_str());
    match ledger
        .pause(scope, name, &args.reason, now, event.as_ref())
        .await?
    {
        PauseDone::Paused { waiting } => println!(
            "paused {what}: no DELETE goes out until `reaper resume --{} {name}` \
             ({waiting} requests wait; polls of running tasks go on)",
            scope.as_str()
        ),
        PauseDone::AlreadyPaused(p) => println!(
            "{what} was paused already, since {}: {}",
            ms_to_time(p.since).to_rfc3339(),
            p.reason
        ),
    }
    Ok(ExitCode::SUCCESS)
}

/// `reaper resume --endpoint NAME | --batch ID`.
pub async fn resume(target: PauseTarget) -> anyhow::Result<ExitCode> {
    let (cfg, ledger) = match open("resume").await? {
        Ok(open) => open,
        Err(code) => return Ok(code),
    };
    let (scope, name) = target.scope_and_name();
    if let Some(code) = check_known("resume", &cfg, &ledger, scope, name).await? {
        return Ok(code);
    }
    let now = now_ms();
    let reason = "resumed by an operator";
    let event =
        (scope == PauseScope::Endpoint).then(|| endpoint_event(&cfg, name, "resumed", reason, now));
    let what = format!("{} {name}", scope.as_str());
    match ledger.unpause(scope, name, now, event.as_ref()).await? {
        ResumeDone::Resumed { pause, waiting } => println!(
            "resumed {what} (paused since {}: {}): {waiting} requests may send their DELETE{}",
            ms_to_time(pause.since).to_rfc3339(),
            pause.reason,
            match scope {
                PauseScope::Endpoint => "; the failure breaker counts from now",
                PauseScope::Batch => "",
            }
        ),
        ResumeDone::NotPaused => println!("{what} is not paused: nothing to resume"),
    }
    Ok(ExitCode::SUCCESS)
}

/// How a selection is named in messages.
fn describe(selection: &Selection) -> String {
    match selection {
        Selection::Batch(id) => format!("batch {id}"),
        Selection::Request(id) => format!("request {id}"),
    }
}

/// `reaper cancel --batch ID | REQUEST_ID [--stop-running]`.
pub async fn cancel(args: CancelArgs) -> anyhow::Result<ExitCode> {
    let (_, ledger) = match open("cancel").await? {
        Ok(open) => open,
        Err(code) => return Ok(code),
    };
    let selection = args.which.selection();
    let done = ledger
        .cancel(&selection, args.stop_running, now_ms())
        .await?;
    if done.is_unknown() {
        return Ok(refuse(
            "cancel",
            format!("no {} in the ledger", describe(&selection)),
        ));
    }
    print_cancel(&done, args.stop_running);
    println!(
        "cancel of {}: {} not sent yet end cancelled, {} already sent, {} finished before",
        describe(&selection),
        done.not_sent.len(),
        done.sent.len(),
        done.finished.len()
    );
    if done.not_sent.is_empty() && done.sent.is_empty() {
        return Ok(refuse(
            "cancel",
            "nothing to cancel: every request had finished",
        ));
    }
    Ok(ExitCode::SUCCESS)
}

fn print_cancel(done: &CancelDone, stop_running: bool) {
    for s in &done.not_sent {
        println!(
            "cancelled {}: not sent yet, it ends cancelled",
            s.request_id
        );
    }
    for s in &done.sent {
        let then = match (s.state.as_str(), stop_running) {
            ("submitting", _) => "its DELETE may have gone out; none is sent again",
            (_, true) => "its running task is stopped",
            (_, false) => "its task runs to its end (--stop-running stops it)",
        };
        println!("cancel noted for {} ({}): {then}", s.request_id, s.state);
    }
    for Seen {
        request_id,
        outcome,
        ..
    } in &done.finished
    {
        let outcome = outcome.as_deref().unwrap_or("-");
        println!("not cancelled {request_id}: it had finished ({outcome})");
    }
}

/// `reaper replay --batch ID [--outcome LIST] | REQUEST_ID`.
pub async fn replay(args: ReplayArgs) -> anyhow::Result<ExitCode> {
    let (_, ledger) = match open("replay").await? {
        Ok(open) => open,
        Err(code) => return Ok(code),
    };
    let selection = args.which.selection();
    let outcomes = (!args.outcome.is_empty()).then_some(args.outcome.as_slice());
    let done = ledger.replay(&selection, outcomes, now_ms()).await?;
    if done == ReplayDone::default() {
        let what = describe(&selection);
        return Ok(match (outcomes, ledger.selects_any(&selection).await?) {
            (Some(_), true) => refuse("replay", format!("no request of {what} ended so")),
            _ => refuse("replay", format!("no {what} in the ledger")),
        });
    }
    for r in &done.replayed {
        let lifted = match r.deadline_lifted {
            true => "; its not_after had passed and is lifted",
            false => "",
        };
        println!(
            "replayed {} (it ended {}): accepted again, generation {}{lifted}",
            r.request_id, r.outcome, r.generation
        );
    }
    for r in &done.refused {
        println!("not replayed {}: {}", r.request_id, r.reason);
    }
    println!(
        "replay of {}: {} replayed, {} not replayed",
        describe(&selection),
        done.replayed.len(),
        done.refused.len()
    );
    if done.replayed.is_empty() {
        return Ok(refuse("replay", "nothing was replayed: see why above"));
    }
    Ok(ExitCode::SUCCESS)
}

//! What `reaper plan` says about each line of a request file. A valid request passes the
//! worker's own guard rails as in a dry run ([`screen_target`]: protected ids, the job-name
//! globs with one budgeted GET, then one budgeted GET on the EM resource), and the answer is
//! mapped to a plan [`Verdict`] by [`verdict_of`]. The GETs run concurrently, each through
//! its endpoint's limiter (rate and in-flight cap); a GET that fails is not retried: the line
//! is `unchecked`, with the error.
//!
//! Sends no DELETE, ever; knows nothing of the broker or the ledger.

use crate::config::Config;
use crate::engine::{Screen, dcs_client_of, em_client_of, screen_target};
use crate::event::{ErrorInfo, Outcome};
use crate::guard::Protections;
use crate::request::{DeleteRequest, Rejection, System, Target};
use crate::worker::{Endpoints, endpoint_of};
use futures_util::StreamExt;
use serde::Serialize;
use std::collections::HashMap;

/// What a real run would do with one line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The target exists (checked by a GET): a real run would delete it.
    WouldDelete,
    /// EM does not know the target (404): a real run would end `already_absent`.
    Absent,
    /// A protected id or job name: a real run would refuse it (`protected`).
    Protected,
    /// The line is not a valid request (or reuses a request id for another target).
    Invalid,
    /// Not checked: a DCS target (no GET of one background task), an endpoint that is not
    /// configured, or a GET that failed. The detail says which.
    Unchecked,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::WouldDelete => "would_delete",
            Verdict::Absent => "absent",
            Verdict::Protected => "protected",
            Verdict::Invalid => "invalid",
            Verdict::Unchecked => "unchecked",
        }
    }
}

/// The plan for one line of the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Item {
    /// The line (JSON Lines) or row (CSV, the header is line 1) of the file.
    pub line: usize,
    /// `None` for an invalid line whose request id cannot be read.
    pub request_id: Option<String>,
    pub verdict: Verdict,
    pub detail: String,
}

/// A line settled without a remote call, or a request to check.
enum Work {
    Done(Item),
    Check(usize, DeleteRequest),
}

/// Checks requests against the configured endpoints and protection rules.
pub struct Checker {
    cfg: Config,
    endpoints: Endpoints,
    protections: Protections,
}

impl Checker {
    /// Builds the endpoint clients of `cfg` as the worker does (no call is made yet).
    pub fn new(cfg: Config, protections: Protections) -> anyhow::Result<Self> {
        // Nobody reports endpoint events here: the health changes are only logged.
        let (transitions, _) = tokio::sync::mpsc::unbounded_channel();
        let endpoints = Endpoints::build(&cfg, transitions)?;
        Ok(Checker {
            cfg,
            endpoints,
            protections,
        })
    }

    /// The plan of every line, in the file's order. At most the EM endpoints' `max_in_flight`
    /// (summed) requests are checked at once (each call still waits for its endpoint's
    /// budget); `bar` advances by one per line.
    pub async fn check_all(
        &self,
        lines: Vec<(usize, Result<DeleteRequest, Rejection>)>,
        bar: &indicatif::ProgressBar,
    ) -> Vec<Item> {
        let at_once: usize = self.cfg.em.iter().map(|e| e.budget.max_in_flight).sum();
        let mut items: Vec<Item> = futures_util::stream::iter(triage(lines))
            .map(|work| async move {
                let item = match work {
                    Work::Done(item) => item,
                    Work::Check(line, req) => {
                        let (verdict, detail) = self.check(&req).await;
                        item(line, Some(req.request_id.as_str()), verdict, detail)
                    }
                };
                bar.inc(1);
                item
            })
            .buffer_unordered(at_once.max(1))
            .collect()
            .await;
        items.sort_by_key(|i| i.line);
        items
    }

    /// Logs the EM sessions off (once, when done).
    pub async fn log_off(&self) {
        self.endpoints
            .log_off(&crate::engine::Active::everything())
            .await;
    }

    /// The verdict on one valid request, and why.
    async fn check(&self, req: &DeleteRequest) -> (Verdict, String) {
        let endpoint = endpoint_of(&self.cfg, req);
        let client = em_client_of(&self.endpoints.em, &endpoint).map(|c| &**c);
        let protection = self.protections.of(&endpoint);
        let screen = screen_target(protection, client, &req.target, true).await;
        let (verdict, detail) = verdict_of(screen, &req.target);
        // A DCS target is never checked; say so when its endpoint is not even configured.
        if verdict == Verdict::Unchecked
            && req.target.system() == System::Dcs
            && let Err(e) = dcs_client_of(&self.endpoints.dcs, &endpoint)
        {
            return (verdict, format!("not checked: {}", e.message));
        }
        (verdict, detail)
    }
}

fn item(line: usize, request_id: Option<&str>, verdict: Verdict, detail: String) -> Item {
    Item {
        line,
        request_id: request_id.map(str::to_string),
        verdict,
        detail,
    }
}

/// Settles what needs no remote call: an invalid line, and a request id an earlier line
/// already used. The worker's ledger refuses a second request with the same id and another
/// target (`invalid`), and takes the same request twice as one (no second DELETE: the copy
/// is not checked again).
fn triage(lines: Vec<(usize, Result<DeleteRequest, Rejection>)>) -> Vec<Work> {
    let mut seen: HashMap<String, (usize, Target)> = HashMap::new();
    let mut work = Vec::with_capacity(lines.len());
    for (line, decoded) in lines {
        let req = match decoded {
            Ok(req) => req,
            Err(Rejection { request_id, reason }) => {
                let id = request_id.as_ref().map(|r| r.as_str());
                work.push(Work::Done(item(line, id, Verdict::Invalid, reason)));
                continue;
            }
        };
        let id = req.request_id.as_str();
        let done = |verdict, detail| Work::Done(item(line, Some(id), verdict, detail));
        work.push(match seen.get(id) {
            Some((first, target)) if *target != req.target => done(
                Verdict::Invalid,
                format!("request_id already used on line {first} for another target"),
            ),
            Some((first, _)) => done(
                Verdict::Unchecked,
                format!("same request as line {first}: no second DELETE, not checked again"),
            ),
            None => {
                seen.insert(id.to_string(), (line, req.target.clone()));
                Work::Check(line, req)
            }
        });
    }
    work
}

/// An error as a line of a plan: `EM answered 503: …`, or the message.
fn describe(e: &ErrorInfo) -> String {
    match e.http_status {
        Some(status) => format!("EM answered {status}: {}", e.message),
        None => e.message.clone(),
    }
}

/// What the guard rails' answer in a dry run means for the plan of `target`.
pub(super) fn verdict_of(screen: Screen, target: &Target) -> (Verdict, String) {
    let path = target.path();
    let (ending, checked) = match screen {
        Screen::End { ending, checked } => (ending, checked),
        Screen::Hold { reason } => return (Verdict::Unchecked, format!("not checked: {reason}")),
        Screen::Again { error } => {
            return (
                Verdict::Unchecked,
                format!("not checked: {}", describe(&error)),
            );
        }
        Screen::Pass => return (Verdict::Unchecked, "not checked".into()),
    };
    match (ending.outcome, checked, ending.error) {
        (Outcome::Planned, Some(true), _) => (Verdict::WouldDelete, format!("exists: GET {path}")),
        (Outcome::Planned, _, _) => (
            Verdict::Unchecked,
            "not checked: DCS has no GET of one background task".into(),
        ),
        (Outcome::AlreadyAbsent, _, Some(e)) => {
            (Verdict::Absent, format!("already gone: {}", describe(&e)))
        }
        (Outcome::AlreadyAbsent, _, None) => (
            Verdict::Absent,
            format!("already gone: GET {path} answered 404"),
        ),
        (Outcome::Refused, _, Some(e)) if e.kind == "protected" => (Verdict::Protected, e.message),
        (outcome, _, e) => (
            Verdict::Unchecked,
            format!(
                "not checked: {}",
                e.map_or_else(|| outcome.as_str().to_string(), |e| describe(&e))
            ),
        ),
    }
}

#[cfg(test)]
mod tests;

//! The guard rails a dispatch passes before any DELETE (design 1.6): protected objects (the
//! protect file's ids, then the EM job-name globs, read with one budgeted GET), and the dry
//! run, which checks the target with a GET instead of deleting it. The pure part — what an
//! answer means — is [`after_name`] and [`after_check`]; [`screen_target`] runs the rails for
//! one target, and the engine (or `reaper plan`, which never deletes) performs the result.

use super::em::mappings::em_error_info;
use super::{Ending, Engine};
use crate::em::{EmClient, EmError, ErrorClass, Presence};
use crate::event::{ErrorInfo, Outcome};
use crate::guard::{Protection, Verdict};
use crate::ledger::RequestRow;
use crate::request::Target;

/// What the guard rails say about one dispatch.
#[derive(Debug, Clone, PartialEq)]
pub enum Screen {
    /// Nothing stands in the way: send the DELETE (or, in a dry run, check the target).
    Pass,
    /// The request ends here without a DELETE.
    End {
        ending: Ending,
        /// A dry run's `checked`.
        checked: Option<bool>,
    },
    /// Nothing may be sent now (the protect file is unusable, or the endpoint is down): the
    /// request waits, nothing is counted.
    Hold { reason: String },
    /// A read the rails needed failed for a transient reason: retried like a failed DELETE
    /// (it counts an attempt, so a read that never succeeds ends `retries_exhausted`).
    Again { error: ErrorInfo },
}

impl Screen {
    fn end(outcome: Outcome, error: Option<ErrorInfo>) -> Self {
        Screen::End {
            ending: Ending::because(outcome, error),
            checked: None,
        }
    }
}

/// A refusal by a guard rail: `refused` with `error.kind = "protected"` and the rule.
fn protected(rule: String) -> Screen {
    let error = ErrorInfo {
        kind: "protected".into(),
        message: rule,
        ..Default::default()
    };
    Screen::end(Outcome::Refused, Some(error))
}

/// What a failed read means for the request: a job or resource EM does not know is
/// already gone; trouble at the endpoint makes it wait; anything else is retried.
fn after_read_error(e: EmError) -> Screen {
    match e.class {
        ErrorClass::NotFound => Screen::end(Outcome::AlreadyAbsent, Some(em_error_info(&e))),
        ErrorClass::Unavailable => Screen::Hold {
            reason: e.to_string(),
        },
        _ => Screen::Again {
            error: em_error_info(&e),
        },
    }
}

/// After reading the job's name for the job-name globs.
pub(super) fn after_name(
    result: Result<String, EmError>,
    verdict: impl Fn(&str) -> Verdict,
) -> Screen {
    match result.map(|name| verdict(&name)) {
        Ok(Verdict::Allowed) => Screen::Pass,
        Ok(Verdict::Protected(rule)) => protected(rule),
        Ok(Verdict::Unavailable(reason)) => Screen::Hold { reason },
        Err(e) => after_read_error(e),
    }
}

/// After a dry run's GET on the resource: it exists → `planned` (checked), it is gone →
/// `already_absent`.
pub(super) fn after_check(result: Result<Presence, EmError>) -> Screen {
    match result {
        Ok(Presence::Present) => Screen::End {
            ending: Ending::because(Outcome::Planned, None),
            checked: Some(true),
        },
        Ok(Presence::Absent) => Screen::end(Outcome::AlreadyAbsent, None),
        Err(e) => after_read_error(e),
    }
}

/// The guard rails for `target`: its protected ids, then (for the four `em.job*` types, when
/// job-name globs are configured) its job's name, read with one budgeted GET; then, in a
/// `dry_run`, the check of the target by one budgeted GET on the resource instead of a
/// DELETE. `client` is the EM client of the target's endpoint, or why there is none. When
/// the name read already answered for an `em.job` target (the same `GET /api/jobs/{id}`),
/// the job is known to exist and is not read again.
pub async fn screen_target(
    protection: &Protection,
    client: Result<&EmClient, ErrorInfo>,
    target: &Target,
    dry_run: bool,
) -> Screen {
    match protection.check(target) {
        Verdict::Allowed => {}
        Verdict::Protected(rule) => return protected(rule),
        Verdict::Unavailable(reason) => return Screen::Hold { reason },
    }
    let mut job_read = false;
    if protection.job_name_rules_apply(target)
        && let (Some(job_id), Ok(client)) = (target.job_id(), &client)
    {
        let name = client.job_name(job_id).await;
        let screen = after_name(name, |n| protection.check_name(n));
        if screen != Screen::Pass {
            return screen;
        }
        job_read = true;
    }
    if !dry_run {
        return Screen::Pass;
    }
    match client {
        _ if matches!(target, Target::DcsBackgroundTask { .. }) => Screen::End {
            // DCS has no GET of one background task: nothing could be checked.
            ending: Ending::because(Outcome::Planned, None),
            checked: Some(false),
        },
        Ok(_) if job_read && matches!(target, Target::EmJob { .. }) => {
            after_check(Ok(Presence::Present))
        }
        Ok(client) => after_check(client.presence(&target.path()).await),
        Err(error) => Screen::end(Outcome::Refused, Some(error)),
    }
}

impl Engine {
    /// The guard rails for one dispatch of `row` (its endpoint is known to be configured).
    pub(super) async fn screen(&self, row: &RequestRow, target: &Target) -> Screen {
        let client = self.em_client(row).map(|c| &**c);
        let protection = self.protections.of(&row.endpoint);
        let dry_run = self.guard(&row.endpoint).dry_run;
        screen_target(protection, client, target, dry_run).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(class: ErrorClass, status: Option<u16>) -> EmError {
        EmError {
            class,
            status,
            message: "m".into(),
            retry_after: None,
        }
    }

    fn outcome(s: &Screen) -> Option<(Outcome, Option<bool>, Option<String>)> {
        match s {
            Screen::End { ending, checked } => Some((
                ending.outcome,
                *checked,
                ending.error.as_ref().map(|e| e.kind.clone()),
            )),
            _ => None,
        }
    }

    #[test]
    fn a_name_matching_a_glob_is_refused_as_protected_and_others_pass() {
        let verdict = |n: &str| {
            if n.starts_with("prod-") {
                Verdict::Protected(format!("job name `{n}` matches `prod-*`"))
            } else {
                Verdict::Allowed
            }
        };
        let refused = after_name(Ok("prod-db".into()), verdict);
        assert_eq!(
            outcome(&refused),
            Some((Outcome::Refused, None, Some("protected".into())))
        );
        assert_eq!(after_name(Ok("test-db".into()), verdict), Screen::Pass);
        let gone = after_name(Err(err(ErrorClass::NotFound, Some(404))), verdict);
        assert_eq!(outcome(&gone).map(|o| o.0), Some(Outcome::AlreadyAbsent));
        let down = after_name(Err(err(ErrorClass::Unavailable, None)), verdict);
        assert!(matches!(down, Screen::Hold { .. }), "{down:?}");
        for class in [ErrorClass::Transient, ErrorClass::Permanent] {
            let again = after_name(Err(err(class, Some(500))), verdict);
            assert!(matches!(again, Screen::Again { .. }), "{again:?}");
        }
    }

    #[test]
    fn a_dry_run_check_plans_what_exists_and_reports_what_is_gone() {
        assert_eq!(
            outcome(&after_check(Ok(Presence::Present))),
            Some((Outcome::Planned, Some(true), None))
        );
        assert_eq!(
            outcome(&after_check(Ok(Presence::Absent))).map(|o| o.0),
            Some(Outcome::AlreadyAbsent)
        );
        let gone = after_check(Err(err(ErrorClass::NotFound, Some(404))));
        assert_eq!(outcome(&gone).map(|o| o.0), Some(Outcome::AlreadyAbsent));
        let busy = after_check(Err(err(ErrorClass::Transient, Some(503))));
        assert!(matches!(busy, Screen::Again { .. }), "{busy:?}");
    }
}

//! What one step decides for a request, whatever its system: end it ([`Ending`]) or what to
//! do next ([`Next`]). The mappings (`em::mappings`, `dcs`) return these; `step` and
//! `em::follow` perform them.

use crate::event::{ErrorInfo, Outcome};
use crate::ledger::TaskRecord;

/// How a request ended: its outcome and what the event reports with it.
#[derive(Debug, Clone, PartialEq)]
pub struct Ending {
    pub outcome: Outcome,
    pub error: Option<ErrorInfo>,
    /// The remote task as last seen, when this step saw it (else the ledger's record is used).
    pub task: Option<TaskRecord>,
    /// The status of the answer that ended it, when it was the DELETE's.
    pub http_status: Option<u16>,
}

impl Ending {
    /// An ending with no remote answer of its own to report (expired, timed out, refused
    /// before sending, retries exhausted): the outcome and why.
    pub fn because(outcome: Outcome, error: Option<ErrorInfo>) -> Self {
        Ending {
            outcome,
            error,
            task: None,
            http_status: None,
        }
    }
}

/// What should happen to a request after one remote call.
#[derive(Debug, Clone, PartialEq)]
pub enum Next {
    /// The request is over.
    Finish(Ending),
    /// A transient failure: try the same call again later (a DELETE counts an attempt).
    Again { error: ErrorInfo },
    /// The endpoint cannot be used (down: it does not answer, or refuses reaper's own
    /// credentials): not this request's failure. A DELETE's attempt is given back and the
    /// request waits, held by the scheduler until the endpoint is up again (design 1.7).
    Wait { reason: String },
    /// A task is running: poll it later.
    Poll {
        task: TaskRecord,
        http_status: Option<u16>,
    },
    /// The task cannot be followed: confirm the deletion by GET on the resource.
    Verify {
        task: Option<TaskRecord>,
        note: String,
        /// The DELETE's status, when this is its answer (a 2xx without a readable Task).
        http_status: Option<u16>,
    },
    /// A verification found the resource still there (its deletion is still under way):
    /// look again later. Like a running task, it is a remote confirmation that the work is
    /// not over, which is what a timeout needs.
    Present,
}

impl Next {
    /// The outcome, when this step ends the request.
    pub fn outcome(&self) -> Option<Outcome> {
        match self {
            Next::Finish(Ending { outcome, .. }) => Some(*outcome),
            _ => None,
        }
    }
}

//! Protected objects (design 1.6): the ids of `REAPER_PROTECT_FILE` and the EM job-name globs
//! of `REAPER_PROTECT_JOB_NAMES`, and the [`Protection`] handle the engine asks before any
//! DELETE. Fail closed: a bad file stops start-up ([`Protection::load`]); a file made bad
//! while running makes every verdict [`Verdict::Unavailable`] until it is valid again.
//!
//! Depends only on the request's [`Target`] and the configuration's types; knows nothing of
//! the engine, the ledger or any remote system (the job-name check needs the job's name,
//! which the engine reads).

mod names;
mod protect;
mod watch;

use crate::config::{ConfigError, GuardRails};
use crate::request::{Target, printable};
use names::NameRules;
use protect::{KEY, ProtectList};
use std::path::PathBuf;
use std::sync::{Arc, PoisonError, RwLock};
use tokio_util::sync::CancellationToken;

/// Whether a request may go ahead, as far as protected objects say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing protects the target.
    Allowed,
    /// A rule protects it: the rule as text for the outcome's message (`job 7c1e… is
    /// protected (REAPER_PROTECT_FILE line 3)`). The request ends `refused`/`protected`.
    Protected(String),
    /// The protect file changed and cannot be used (unreadable, malformed, or being
    /// rewritten): no DELETE may be sent; the request waits. The text says why.
    Unavailable(String),
}

/// The protection rules in force, shared: cheap to clone (an `Arc` inside), and kept up to
/// date by [`Protection::spawn_watcher`].
#[derive(Debug, Clone)]
pub struct Protection {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// The protect file and the content read at start-up (the watcher's starting point).
    file: Option<(PathBuf, Vec<u8>)>,
    names: NameRules,
    ids: RwLock<IdState>,
}

/// The protect file's ids as they stand.
#[derive(Debug, Clone)]
enum IdState {
    Loaded(Arc<ProtectList>),
    Unavailable(String),
}

impl Protection {
    /// The rules of `rails`, read now. A protect file that is missing, unreadable or malformed,
    /// or a bad glob, is an error naming its key (and the file's line): reaper does not start.
    pub fn load(rails: &GuardRails) -> Result<Protection, ConfigError> {
        let names = NameRules::new(&rails.protect_job_names)?;
        let (file, list) = match &rails.protect_file {
            None => (None, ProtectList::default()),
            Some(path) => {
                let bytes = watch::read(path).map_err(|e| ConfigError {
                    key: KEY.into(),
                    reason: format!("cannot read `{}`: {e}", path.display()),
                })?;
                let list = ProtectList::parse(path, &bytes)?;
                tracing::info!(
                    "{KEY} `{}`: {} protected ids; re-read when it changes",
                    path.display(),
                    list.len()
                );
                (Some((path.clone(), bytes)), list)
            }
        };
        Ok(Protection {
            inner: Arc::new(Inner {
                file,
                names,
                ids: RwLock::new(IdState::Loaded(Arc::new(list))),
            }),
        })
    }

    /// Whether a changed protect file cannot be used now: then no DELETE may be sent to
    /// any endpoint (every [`Protection::check`] answers [`Verdict::Unavailable`]).
    pub fn is_unavailable(&self) -> bool {
        matches!(self.ids(), IdState::Unavailable(_))
    }

    /// Whether the protect file lets `target` be deleted: [`Verdict::Protected`] when any of
    /// its ids is listed (a job's id protects its includes and links too), and
    /// [`Verdict::Unavailable`] while a changed file cannot be used. Job names are not
    /// checked here (see [`Protection::job_name_rules_apply`]).
    pub fn check(&self, target: &Target) -> Verdict {
        match self.ids() {
            IdState::Unavailable(why) => Verdict::Unavailable(why),
            IdState::Loaded(list) => match list.find(target) {
                Some(rule) => Verdict::Protected(rule),
                None => Verdict::Allowed,
            },
        }
    }

    /// Whether the engine must read the job's name (`GET /api/jobs/{job_id}`) and ask
    /// [`Protection::check_name`] before deleting `target`: job-name globs are configured
    /// and the target is one of the four `em.job*` types (design 1.6).
    pub fn job_name_rules_apply(&self, target: &Target) -> bool {
        !self.inner.names.is_empty()
            && matches!(
                target,
                Target::EmJob { .. }
                    | Target::EmJobInclude { .. }
                    | Target::EmJobLinkedRepository { .. }
                    | Target::EmJobLinkedJob { .. }
            )
    }

    /// The glob (as configured) that protects the EM job named `name`, ignoring case.
    pub fn protected_name(&self, name: &str) -> Option<String> {
        self.inner.names.matching(name).map(str::to_string)
    }

    /// [`Protection::protected_name`] as a verdict, with the rule as text for the outcome's
    /// message: ``job name `prod-db` matches `prod-*` (REAPER_PROTECT_JOB_NAMES)``.
    pub fn check_name(&self, name: &str) -> Verdict {
        match self.inner.names.matching(name) {
            Some(glob) => Verdict::Protected(format!(
                "job name `{}` matches `{glob}` (REAPER_PROTECT_JOB_NAMES)",
                printable(name)
            )),
            None => Verdict::Allowed,
        }
    }

    /// Re-reads the protect file when it changes (read every second, in force within about
    /// 2 s) until `shutdown`. Without a protect file the task ends at once. Start it once.
    pub fn spawn_watcher(&self, shutdown: CancellationToken) -> tokio::task::JoinHandle<()> {
        tokio::spawn(watch::run(self.clone(), watch::POLL, shutdown))
    }

    /// The protect file's path and the content read at start-up, if there is a file.
    fn file(&self) -> Option<(PathBuf, Vec<u8>)> {
        self.inner.file.clone()
    }

    fn ids(&self) -> IdState {
        let ids = self
            .inner
            .ids
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        ids.clone()
    }

    fn set_ids(&self, state: IdState) {
        *self
            .inner
            .ids
            .write()
            .unwrap_or_else(PoisonError::into_inner) = state;
    }
}

#[cfg(test)]
mod tests;

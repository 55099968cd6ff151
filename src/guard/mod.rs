//! Protected objects (design 1.6): the ids of `REAPER_PROTECT_FILE` and the EM job-name globs
//! of `REAPER_PROTECT_JOB_NAMES` — plus, for an endpoint whose `[[em]]` / `[[dcs]]` table has
//! its own `protect_file` / `protect_job_names`, those too (design 1.8: they add up) — and the
//! [`Protection`] handle the engine asks before any DELETE ([`Protections`]: one per
//! endpoint). Fail closed: a bad file stops start-up ([`Protection::load`]); a file made bad
//! while running makes every verdict [`Verdict::Unavailable`] until it is valid again.
//!
//! Depends only on the request's [`Target`] and the configuration's types; knows nothing of
//! the engine, the ledger or any remote system (the job-name check needs the job's name,
//! which the engine reads).

mod endpoints;
mod names;
mod protect;
mod watch;

pub use endpoints::Protections;

use crate::config::{ConfigError, GuardRails};
use crate::request::{Target, printable};
use names::NameRules;
use protect::{KEY, ProtectList};
use std::path::{Path, PathBuf};
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

/// The protection rules in force for one endpoint, shared: cheap to clone (`Arc`s inside),
/// and kept up to date by [`Protection::spawn_watcher`].
#[derive(Debug, Clone)]
pub struct Protection {
    /// The top-level rules first, then the endpoint's own, if its table has any: they add
    /// up (design 1.8), so an endpoint's rules can never lift a top-level one.
    layers: Vec<Arc<Layer>>,
}

/// One set of rules — a protect file and job-name globs — from the top-level settings or
/// from one endpoint's table.
#[derive(Debug)]
struct Layer {
    /// How verdicts and errors name the file: `REAPER_PROTECT_FILE`, or
    /// ``protect_file of `em-b` ``.
    file_key: String,
    /// How verdicts name the globs: `REAPER_PROTECT_JOB_NAMES`, or
    /// ``protect_job_names of `em-b` ``.
    names_key: String,
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

impl Layer {
    /// The rules of `file` and `globs`, read now; errors name `file_key`.
    fn load(
        (file_key, names_key): (String, String),
        file: Option<&Path>,
        globs: &[String],
    ) -> Result<Arc<Layer>, ConfigError> {
        let names = NameRules::new(globs)?;
        let (file, list) = match file {
            None => (None, ProtectList::default()),
            Some(path) => {
                let bytes = watch::read(path).map_err(|e| ConfigError {
                    key: file_key.clone(),
                    reason: format!("cannot read `{}`: {e}", path.display()),
                })?;
                let list = ProtectList::parse_as(&file_key, path, &bytes)?;
                tracing::info!(
                    "{file_key} `{}`: {} protected ids; re-read when it changes",
                    path.display(),
                    list.len()
                );
                (Some((path.to_path_buf(), bytes)), list)
            }
        };
        Ok(Arc::new(Layer {
            file_key,
            names_key,
            file,
            names,
            ids: RwLock::new(IdState::Loaded(Arc::new(list))),
        }))
    }

    fn ids(&self) -> IdState {
        let ids = self.ids.read().unwrap_or_else(PoisonError::into_inner);
        ids.clone()
    }

    fn set_ids(&self, state: IdState) {
        *self.ids.write().unwrap_or_else(PoisonError::into_inner) = state;
    }
}

impl Protection {
    /// The rules of `rails` (its protect file and job-name globs), read now. A protect file
    /// that is missing, unreadable or malformed, or a bad glob, is an error naming its key
    /// (and the file's line): reaper does not start.
    pub fn load(rails: &GuardRails) -> Result<Protection, ConfigError> {
        let keys = (KEY.to_string(), names::KEY.to_string());
        let layer = Layer::load(
            keys,
            rails.protect_file.as_deref(),
            &rails.protect_job_names,
        )?;
        Ok(Protection {
            layers: vec![layer],
        })
    }

    /// These rules and, on top of them, those of the endpoint `endpoint`'s own `file` and
    /// `globs` (from its table), read now; errors name the endpoint.
    pub fn with_endpoint_rules(
        &self,
        endpoint: &str,
        file: Option<&Path>,
        globs: &[String],
    ) -> Result<Protection, ConfigError> {
        let keys = (
            format!("protect_file of `{endpoint}`"),
            format!("protect_job_names of `{endpoint}`"),
        );
        let mut layers = self.layers.clone();
        layers.push(Layer::load(keys, file, globs)?);
        Ok(Protection { layers })
    }

    /// Whether a changed protect file cannot be used now: then no DELETE may be sent (every
    /// [`Protection::check`] that no rule protects answers [`Verdict::Unavailable`]).
    pub fn is_unavailable(&self) -> bool {
        self.layers
            .iter()
            .any(|l| matches!(l.ids(), IdState::Unavailable(_)))
    }

    /// Whether the protect files let `target` be deleted: [`Verdict::Protected`] when any of
    /// its ids is listed in any of them (a job's id protects its includes and links too), and
    /// [`Verdict::Unavailable`] while a changed file cannot be used. Job names are not
    /// checked here (see [`Protection::job_name_rules_apply`]).
    pub fn check(&self, target: &Target) -> Verdict {
        let mut unavailable = None;
        for layer in &self.layers {
            match layer.ids() {
                IdState::Unavailable(why) => {
                    unavailable.get_or_insert(why);
                }
                IdState::Loaded(list) => {
                    if let Some(rule) = list.find(target) {
                        return Verdict::Protected(rule);
                    }
                }
            }
        }
        unavailable.map_or(Verdict::Allowed, Verdict::Unavailable)
    }

    /// Whether the engine must read the job's name (`GET /api/jobs/{job_id}`) and ask
    /// [`Protection::check_name`] before deleting `target`: job-name globs are configured
    /// and the target is one of the four `em.job*` types (design 1.6).
    pub fn job_name_rules_apply(&self, target: &Target) -> bool {
        self.layers.iter().any(|l| !l.names.is_empty())
            && matches!(
                target,
                Target::EmJob { .. }
                    | Target::EmJobInclude { .. }
                    | Target::EmJobLinkedRepository { .. }
                    | Target::EmJobLinkedJob { .. }
            )
    }

    /// The glob (as configured) that protects the EM job named `name`, ignoring case, and the
    /// key it was configured under.
    fn matching(&self, name: &str) -> Option<(&str, &str)> {
        self.layers.iter().find_map(|l| {
            l.names
                .matching(name)
                .map(|glob| (glob, l.names_key.as_str()))
        })
    }

    /// The glob (as configured) that protects the EM job named `name`, ignoring case.
    pub fn protected_name(&self, name: &str) -> Option<String> {
        self.matching(name).map(|(glob, _)| glob.to_string())
    }

    /// [`Protection::protected_name`] as a verdict, with the rule as text for the outcome's
    /// message: ``job name `prod-db` matches `prod-*` (REAPER_PROTECT_JOB_NAMES)``.
    pub fn check_name(&self, name: &str) -> Verdict {
        match self.matching(name) {
            Some((glob, key)) => Verdict::Protected(format!(
                "job name `{}` matches `{glob}` ({key})",
                printable(name)
            )),
            None => Verdict::Allowed,
        }
    }

    /// Re-reads each protect file when it changes (read every second, in force within about
    /// 2 s) until `shutdown`. Without a protect file the task ends at once. Start it once.
    pub fn spawn_watcher(&self, shutdown: CancellationToken) -> tokio::task::JoinHandle<()> {
        tokio::spawn(watch::run(self.clone(), watch::POLL, shutdown))
    }
}

#[cfg(test)]
mod tests;

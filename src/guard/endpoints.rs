//! Every endpoint's protection (design 1.8): the top-level rules, and on top of them the
//! endpoint's own where its `[[em]]` / `[[dcs]]` table has a `protect_file` or
//! `protect_job_names`. Each file is read once at start-up (fail closed for every endpoint)
//! and watched once; a file that cannot be used holds the DELETEs of the endpoints it
//! applies to, and only theirs.

use super::Protection;
use crate::config::{Config, ConfigError};
use std::collections::HashMap;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// The protection of each configured endpoint.
#[derive(Debug, Clone)]
pub struct Protections {
    /// The top-level rules alone: those of an endpoint without rules of its own, and of a
    /// request whose endpoint is not configured (refused, but protection answers first).
    global: Protection,
    by_endpoint: HashMap<String, Protection>,
}

impl Protections {
    /// The rules of every endpoint of `cfg`, read now. A protect file that is missing,
    /// unreadable or malformed, or a bad glob, is an error naming its key (or its endpoint)
    /// and the file's line: reaper does not start.
    pub fn load(cfg: &Config) -> Result<Self, ConfigError> {
        let global = Protection::load(&cfg.guard)?;
        let names = cfg.em.iter().map(|e| &e.name);
        let names = names.chain(cfg.dcs.iter().map(|d| &d.name));
        let mut by_endpoint = HashMap::new();
        for name in names {
            let own = cfg
                .endpoint_guards
                .get(name)
                .filter(|o| o.protect_file.is_some() || !o.protect_job_names.is_empty());
            let protection = match own {
                None => global.clone(),
                Some(o) => global.with_endpoint_rules(
                    name,
                    o.protect_file.as_deref(),
                    &o.protect_job_names,
                )?,
            };
            by_endpoint.insert(name.clone(), protection);
        }
        Ok(Protections {
            global,
            by_endpoint,
        })
    }

    /// The protection of the requests to `endpoint`.
    pub fn of(&self, endpoint: &str) -> &Protection {
        self.by_endpoint.get(endpoint).unwrap_or(&self.global)
    }

    /// The configured endpoints whose protection cannot be used now (a changed protect file
    /// of theirs, or the top-level one, is unreadable, malformed or settling): their unsent
    /// work waits.
    pub fn unavailable(&self) -> Vec<String> {
        self.by_endpoint
            .iter()
            .filter(|(_, p)| p.is_unavailable())
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// Re-reads every protect file when it changes — each once, however many endpoints it
    /// applies to — until `shutdown`. Start it once.
    pub fn spawn_watcher(&self, shutdown: CancellationToken) -> tokio::task::JoinHandle<()> {
        self.watched().spawn_watcher(shutdown)
    }

    /// Every set of rules once: what the watcher watches.
    pub(super) fn watched(&self) -> Protection {
        let mut layers = self.global.layers.clone();
        for p in self.by_endpoint.values() {
            for layer in &p.layers {
                if !layers.iter().any(|l| Arc::ptr_eq(l, layer)) {
                    layers.push(Arc::clone(layer));
                }
            }
        }
        Protection { layers }
    }
}

#[cfg(test)]
mod tests;

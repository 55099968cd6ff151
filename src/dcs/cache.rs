//! The per-project cache of IAM tokens and their renewal gates, bounded: a worker that sees
//! requests for many projects over months keeps at most [`MAX_PROJECTS`] of them. When a new
//! project needs room, the entries of no more use go first (a token due for renewal that
//! nobody is renewing), then the least recently used. An entry whose gate is held (a renewal
//! in flight) is never evicted, so renewal stays single-flight per project.
//!
//! Owns only the bookkeeping: fetching tokens is `token.rs`'s.

use super::token::Token;
use hashlink::LruCache;
use std::sync::Arc;

/// Projects whose tokens are kept at most (beyond it only while renewals are in flight).
pub const MAX_PROJECTS: usize = 1024;

/// One renewal at a time per project.
pub(super) type Gate = Arc<tokio::sync::Mutex<()>>;

struct Entry {
    token: Option<Arc<Token>>,
    gate: Gate,
}

impl Entry {
    /// Nobody holds (or waits for) its gate.
    fn is_idle(&self) -> bool {
        Arc::strong_count(&self.gate) == 1
    }

    /// Idle, and without a token worth keeping.
    fn is_spent(&self) -> bool {
        self.is_idle() && self.token.as_ref().is_none_or(|t| !t.is_fresh())
    }
}

/// Tokens and gates by project id, least recently used first.
pub(super) struct ProjectTokens {
    entries: LruCache<String, Entry>,
    max: usize,
}

impl Default for ProjectTokens {
    fn default() -> Self {
        Self::with_max(MAX_PROJECTS)
    }
}

impl ProjectTokens {
    /// A cache of at most `max` projects (at least one).
    pub fn with_max(max: usize) -> Self {
        ProjectTokens {
            entries: LruCache::new_unbounded(),
            max: max.max(1),
        }
    }

    /// The project's cached token, if any; counts as a use.
    pub fn token(&mut self, project_id: &str) -> Option<Arc<Token>> {
        self.entries.get(project_id)?.token.clone()
    }

    /// The project's renewal gate, making room for the project if it is new.
    pub fn gate(&mut self, project_id: &str) -> Gate {
        if let Some(e) = self.entries.get(project_id) {
            return Arc::clone(&e.gate);
        }
        self.make_room();
        let gate = Gate::default();
        let entry = Entry {
            token: None,
            gate: Arc::clone(&gate),
        };
        self.entries.insert(project_id.to_string(), entry);
        gate
    }

    /// Keeps `token` as the project's token.
    pub fn store(&mut self, project_id: &str, token: Arc<Token>) {
        if let Some(e) = self.entries.get_mut(project_id) {
            e.token = Some(token);
            return;
        }
        self.make_room();
        let entry = Entry {
            token: Some(token),
            gate: Gate::default(),
        };
        self.entries.insert(project_id.to_string(), entry);
    }

    /// Projects held.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Frees one place when the cache is full: spent entries first, then idle ones from the
    /// least recently used on. When every entry has a renewal in flight, the cache grows for
    /// now (by at most the number of concurrent renewals) and shrinks at the next insert.
    fn make_room(&mut self) {
        if self.entries.len() < self.max {
            return;
        }
        self.entries.retain(|_, e| !e.is_spent());
        while self.entries.len() >= self.max {
            let lru_idle = self
                .entries
                .iter()
                .find(|(_, e)| e.is_idle())
                .map(|(k, _)| k.clone());
            let Some(key) = lru_idle else { break };
            self.entries.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;
    use std::time::Duration;
    use tokio::time::Instant;

    fn token(value: &str, fresh: bool) -> Arc<Token> {
        let renew_at = if fresh {
            Instant::now() + Duration::from_secs(3600)
        } else {
            Instant::now()
        };
        Arc::new(Token {
            value: Secret::new(value),
            renew_at: Some(renew_at),
        })
    }

    fn value(c: &mut ProjectTokens, project: &str) -> Option<String> {
        c.token(project).map(|t| t.value.expose().to_string())
    }

    #[test]
    fn the_least_recently_used_project_goes_when_the_cache_is_full() {
        let mut c = ProjectTokens::with_max(3);
        for p in ["a", "b", "c"] {
            c.store(p, token(p, true));
        }
        assert!(
            c.token("a").is_some(),
            "a is used again: b is now the oldest"
        );
        c.store("d", token("d", true));
        assert_eq!(c.len(), 3);
        assert_eq!(value(&mut c, "b"), None);
        for p in ["a", "c", "d"] {
            assert_eq!(value(&mut c, p).as_deref(), Some(p));
        }
        for i in 0..100 {
            c.store(&format!("p{i}"), token("x", true));
        }
        assert_eq!(c.len(), 3, "bounded however many projects come by");
    }

    #[test]
    fn spent_tokens_go_before_fresh_ones_even_when_used_more_recently() {
        let mut c = ProjectTokens::with_max(3);
        c.store("fresh-old", token("f", true));
        c.store("stale", token("s", false));
        c.store("fresh-new", token("n", true));
        c.store("new", token("x", true));
        assert_eq!(
            value(&mut c, "stale"),
            None,
            "the token due for renewal went"
        );
        assert!(c.token("fresh-old").is_some() && c.token("fresh-new").is_some());
    }

    #[test]
    fn a_project_with_a_renewal_in_flight_keeps_its_gate() {
        let mut c = ProjectTokens::with_max(2);
        let held = c.gate("busy");
        let guard = held.try_lock().expect("a new gate is free");
        c.store("b", token("b", true));
        c.store("c", token("c", true));
        assert!(
            Arc::ptr_eq(&held, &c.gate("busy")),
            "the same gate: single flight holds"
        );
        drop(guard);
        assert_eq!(c.len(), 2);
        // Once nobody holds it, the busy project is evictable like any other.
        drop(held);
        c.store("d", token("d", true));
        c.store("e", token("e", true));
        assert_eq!(c.len(), 2);
        assert!(c.token("busy").is_none());
    }

    #[test]
    fn a_cache_where_every_renewal_is_in_flight_grows_only_for_as_long() {
        let mut c = ProjectTokens::with_max(1);
        let a = c.gate("a");
        let b = c.gate("b");
        assert_eq!(c.len(), 2, "both renewals keep their gates");
        drop((a, b));
        c.store("c", token("c", true));
        assert_eq!(c.len(), 1);
    }
}

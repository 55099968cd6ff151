//! Which endpoints this worker may call now (design 1.8). RabbitMQ elects one active worker per
//! request queue; the worker marks the endpoints of each queue it won as allowed here and
//! takes them back the moment it loses the queue. Everything that calls an endpoint asks
//! first: the scheduler hands out no work of an endpoint that is not allowed (not even polls
//! of running tasks), and probers and the log-off wait. Knows nothing of how the election
//! is run.

use std::collections::BTreeSet;
use tokio::sync::watch;

/// The endpoints this worker may call.
#[derive(Debug)]
pub struct Active {
    /// No election: every endpoint may be called (tools and tests that run an engine alone).
    everything: bool,
    allowed: watch::Sender<BTreeSet<String>>,
}

impl Active {
    /// Every endpoint may be called, always: for an engine that is not part of a worker.
    pub fn everything() -> Self {
        Active {
            everything: true,
            allowed: watch::Sender::new(BTreeSet::new()),
        }
    }

    /// No endpoint may be called until [`Active::allow`] says so: a worker starts as a
    /// standby.
    pub fn standby() -> Self {
        Active {
            everything: false,
            allowed: watch::Sender::new(BTreeSet::new()),
        }
    }

    /// The worker won (`true`) or lost (`false`) the right to call `endpoints`.
    pub fn allow(&self, endpoints: &[String], allowed: bool) {
        self.allowed.send_if_modified(|set| {
            let mut changed = false;
            for e in endpoints {
                changed |= if allowed {
                    set.insert(e.clone())
                } else {
                    set.remove(e)
                };
            }
            changed
        });
    }

    /// Whether `endpoint` may be called now.
    pub fn allows(&self, endpoint: &str) -> bool {
        self.everything || self.allowed.borrow().contains(endpoint)
    }

    /// Those of `endpoints` that may not be called now.
    pub fn standby_among<'a>(&self, endpoints: impl Iterator<Item = &'a String>) -> Vec<String> {
        if self.everything {
            return Vec::new();
        }
        let allowed = self.allowed.borrow();
        endpoints
            .filter(|e| !allowed.contains(e.as_str()))
            .cloned()
            .collect()
    }

    /// Waits until `endpoint` may be called.
    pub async fn until_allowed(&self, endpoint: &str) {
        if self.everything {
            return;
        }
        let mut rx = self.allowed.subscribe();
        // The sender lives as long as `self`: `wait_for` cannot fail while we borrow it.
        let _ = rx.wait_for(|set| set.contains(endpoint)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_standby_allows_nothing_until_told_and_stops_at_once_when_it_loses() {
        let a = Active::standby();
        let names = ["em-a".to_string(), "dcs".to_string()];
        assert!(!a.allows("em-a"));
        assert_eq!(a.standby_among(names.iter()), names.to_vec());
        let waiting = tokio::time::timeout(Duration::from_millis(50), a.until_allowed("em-a"));
        assert!(waiting.await.is_err(), "a standby's prober waits");
        a.allow(&names[..1], true);
        assert!(a.allows("em-a") && !a.allows("dcs"));
        assert_eq!(a.standby_among(names.iter()), vec!["dcs".to_string()]);
        a.until_allowed("em-a").await;
        a.allow(&names[..1], false);
        assert!(!a.allows("em-a"));
    }

    #[test]
    fn an_engine_alone_may_call_everything() {
        let a = Active::everything();
        assert!(a.allows("anything"));
        assert!(a.standby_among(["x".to_string()].iter()).is_empty());
    }
}

//! What reached the simulator: call counts per route template, statuses, DELETEs and GETs
//! per concrete path, tasks stopped, logons, and the busiest second. Owns only counters; the server decides
//! what to record and when.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// A snapshot of the simulator's counters (also served as JSON at `GET /_sim/stats`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct SimStats {
    /// Calls per `"METHOD /route/template"`, e.g. `"DELETE /api/jobs/{id}"`.
    pub calls: BTreeMap<String, u64>,
    /// Answers per status code, e.g. `"202"`.
    pub statuses: BTreeMap<String, u64>,
    /// DELETEs that passed auth and reached a handler, per concrete path (404s included).
    pub deletes: BTreeMap<String, u64>,
    /// EM GETs that passed auth and reached a handler, per concrete path (404s included):
    /// resource checks (`/api/jobs/…`), task polls (`/api/tasks/…`), session look-ups.
    #[serde(default)]
    pub gets: BTreeMap<String, u64>,
    /// Running EM tasks stopped by `DELETE /api/tasks/{id}` (their deletion never happens).
    #[serde(default)]
    pub tasks_stopped: u64,
    /// Successful logons.
    pub logons: u64,
    /// Logons refused (wrong user name or password).
    #[serde(default)]
    pub logons_refused: u64,
    /// Successful logoffs.
    pub logoffs: u64,
    /// DCS: IAM tokens issued.
    #[serde(default)]
    pub token_issues: u64,
    /// Most requests that arrived within any one second (sliding window).
    pub max_calls_per_second: u64,
    pub total_calls: u64,
}

impl SimStats {
    /// Calls counted under one `"METHOD /route/template"` key, e.g.
    /// `count("DELETE /api/tasks/{id}")`; 0 when none came.
    pub fn count(&self, key: &str) -> u64 {
        self.calls.get(key).copied().unwrap_or(0)
    }

    /// Calls of one method on any route, EM and DCS, refused ones included: e.g.
    /// `count_method("DELETE")` is every DELETE that arrived.
    pub fn count_method(&self, method: &str) -> u64 {
        self.calls
            .iter()
            .filter(|(key, _)| key.split(' ').next() == Some(method))
            .map(|(_, n)| n)
            .sum()
    }
}

/// The live counters behind `SimStats`.
#[derive(Default)]
pub(crate) struct StatsRecorder {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    stats: SimStats,
    /// Arrival times within the last second.
    window: VecDeque<Instant>,
}

const WINDOW: Duration = Duration::from_secs(1);

impl StatsRecorder {
    fn with<R>(&self, f: impl FnOnce(&mut Inner) -> R) -> R {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut inner)
    }

    /// A request arrived for `route` (`"METHOD /template"`).
    pub fn call(&self, route: String, now: Instant) {
        self.with(|i| {
            *i.stats.calls.entry(route).or_default() += 1;
            i.stats.total_calls += 1;
            while i
                .window
                .front()
                .is_some_and(|t| now.saturating_duration_since(*t) >= WINDOW)
            {
                i.window.pop_front();
            }
            i.window.push_back(now);
            i.stats.max_calls_per_second = i.stats.max_calls_per_second.max(i.window.len() as u64);
        });
    }

    /// An answer left with `status`.
    pub fn status(&self, status: u16) {
        self.with(|i| *i.stats.statuses.entry(status.to_string()).or_default() += 1);
    }

    /// A DELETE reached its handler.
    pub fn delete(&self, path: &str) {
        self.with(|i| *i.stats.deletes.entry(path.to_string()).or_default() += 1);
    }

    /// An EM GET reached its handler.
    pub fn get(&self, path: &str) {
        self.with(|i| *i.stats.gets.entry(path.to_string()).or_default() += 1);
    }

    /// A running task was stopped.
    pub fn task_stopped(&self) {
        self.with(|i| i.stats.tasks_stopped += 1);
    }

    pub fn logon(&self) {
        self.with(|i| i.stats.logons += 1);
    }

    pub fn logon_refused(&self) {
        self.with(|i| i.stats.logons_refused += 1);
    }

    pub fn logoff(&self) {
        self.with(|i| i.stats.logoffs += 1);
    }

    pub fn token_issue(&self) {
        self.with(|i| i.stats.token_issues += 1);
    }

    pub fn snapshot(&self) -> SimStats {
        self.with(|i| i.stats.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_busiest_second_is_a_sliding_window() {
        let r = StatsRecorder::default();
        let t0 = Instant::now();
        for ms in [0, 100, 900, 1_300, 1_350, 1_380] {
            r.call("GET /x".into(), t0 + Duration::from_millis(ms));
        }
        let s = r.snapshot();
        // 900, 1300, 1350, 1380 lie within one second.
        assert_eq!(s.max_calls_per_second, 4);
        assert_eq!(s.total_calls, 6);
        assert_eq!(s.calls["GET /x"], 6);
    }

    #[test]
    fn calls_are_counted_per_key_and_per_method() {
        let r = StatsRecorder::default();
        let now = Instant::now();
        for key in [
            "DELETE /api/jobs/{id}",
            "DELETE /v2/x",
            "GET /api/jobs/{id}",
        ] {
            r.call(key.into(), now);
        }
        r.call("DELETE /api/jobs/{id}".into(), now);
        let s = r.snapshot();
        assert_eq!(s.count("DELETE /api/jobs/{id}"), 2);
        assert_eq!(s.count("DELETE /api/tasks/{id}"), 0);
        assert_eq!(s.count_method("DELETE"), 3);
        assert_eq!(s.count_method("GET"), 1);
        assert_eq!(s.count_method("DEL"), 0);
    }
}

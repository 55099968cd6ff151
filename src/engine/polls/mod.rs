//! Polls that learn: per endpoint and task operation (`DeleteJob`, `UpdateJob`, …), how long
//! tasks took, as far as polls could tell, and from that when to poll the next tasks of the
//! kind. The samples live in the ledger (`task_durations`: a restart keeps them); this is
//! their in-memory copy, loaded on first use and fed as tasks end, with the fit of each
//! kind (`fit`), the rule that plans a poll from it (`plan`) and the pace that keeps the
//! polls of an endpoint within its budget (`pace`). While a kind has fewer than
//! [`MIN_SAMPLES`] samples, or with `REAPER_POLL_LATENESS=off`, polls follow the backoff
//! policy (`REAPER_POLL_*`).
//!
//! Knows nothing of HTTP or of the request's steps: the engine asks it for delays and tells
//! it what it saw.

pub mod fit;
pub mod pace;
pub mod plan;

use crate::config::Config;
use crate::ledger::{DurationSample, KEPT_SAMPLES, Ledger, TaskDuration};
use crate::retry::Backoff;
use fit::Fit;
use pace::Pace;
use plan::{Rules, Task};
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::OnceCell;

/// Samples of a kind needed before its polls follow what was learned.
pub const MIN_SAMPLES: usize = 10;

/// An endpoint and a task operation.
type Kind = (String, String);

/// What is known of one kind: its recent samples and their fit.
#[derive(Default)]
struct Known {
    recent: VecDeque<TaskDuration>,
    fit: Option<Fit>,
    /// Samples added since the last fit.
    unfitted: usize,
}

impl Known {
    /// Adds a sample; refits when enough is known (after every sample at first, then every
    /// few: a fit costs a few hundred microseconds). Returns whether the kind was just
    /// learned for the first time.
    fn add(&mut self, d: TaskDuration) -> bool {
        if self.recent.len() >= KEPT_SAMPLES {
            self.recent.pop_front();
        }
        self.recent.push_back(d);
        self.unfitted += 1;
        let n = self.recent.len();
        if n < MIN_SAMPLES || self.unfitted <= n / 16 {
            return false;
        }
        let first = self.fit.is_none();
        self.refit();
        first && self.fit.is_some()
    }

    fn refit(&mut self) {
        if self.recent.len() >= MIN_SAMPLES {
            self.fit = Fit::of(self.recent.make_contiguous(), self.fit);
        }
        self.unfitted = 0;
    }
}

/// Plans the polls of one worker's EM tasks.
pub struct PollPlanner {
    ledger: Ledger,
    policy: Backoff,
    /// `None`: learning is off (`REAPER_POLL_LATENESS=off`).
    rules: Option<Rules>,
    /// Each endpoint's rate budget, calls a second (0: unlimited).
    rates: HashMap<String, f64>,
    kinds: OnceCell<Mutex<HashMap<Kind, Known>>>,
    paces: Mutex<HashMap<String, Pace>>,
}

/// The operation a task is known by: its `Operation`, else the request's target type.
pub fn operation_of(task_operation: Option<&str>, target_type: &str) -> String {
    task_operation
        .filter(|o| !o.is_empty())
        .unwrap_or(target_type)
        .to_string()
}

impl PollPlanner {
    /// The planner of a worker with configuration `cfg`, learning into `ledger`.
    pub fn new(ledger: Ledger, cfg: &Config) -> Self {
        let rules = cfg.poll_lateness.map(|lateness| Rules {
            policy: cfg.poll,
            lateness,
        });
        let rates = cfg
            .em
            .iter()
            .map(|e| (e.name.clone(), e.budget.rate_per_sec))
            .collect();
        PollPlanner {
            ledger,
            policy: cfg.poll,
            rules,
            rates,
            kinds: OnceCell::new(),
            paces: Mutex::new(HashMap::new()),
        }
    }

    /// The delay before the first poll of a task of `operation` just recorded on `endpoint`.
    pub async fn first_delay(&self, endpoint: &str, operation: &str) -> anyhow::Result<Duration> {
        let task = Task {
            elapsed: Duration::ZERO,
            polls: 0,
        };
        self.delay(endpoint, operation, task, 1.0).await
    }

    /// The delay before the next poll of `task` (of `operation`, on `endpoint`), planned
    /// after a poll made at `now` (ms).
    pub async fn next_delay(
        &self,
        endpoint: &str,
        operation: &str,
        task: Task,
        now: i64,
    ) -> anyhow::Result<Duration> {
        let stretch = self.pace(endpoint, now);
        self.delay(endpoint, operation, task, stretch).await
    }

    async fn delay(
        &self,
        endpoint: &str,
        operation: &str,
        task: Task,
        stretch: f64,
    ) -> anyhow::Result<Duration> {
        let Some(rules) = self.rules else {
            return Ok(self.policy.delay(task.polls + 1));
        };
        let fit = self.fit(endpoint, operation).await?;
        Ok(rules.delay(fit.as_ref(), task, stretch, &mut rand::rng()))
    }

    /// The fit of a kind, once [`MIN_SAMPLES`] are known.
    async fn fit(&self, endpoint: &str, operation: &str) -> anyhow::Result<Option<Fit>> {
        let kinds = self
            .kinds()
            .await?
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let kind = (endpoint.to_string(), operation.to_string());
        Ok(kinds.get(&kind).and_then(|k| k.fit))
    }

    /// Counts a poll of `endpoint` at `now`; how much learned polls are spread out.
    fn pace(&self, endpoint: &str, now: i64) -> f64 {
        let rate = self.rates.get(endpoint).copied().unwrap_or(0.0);
        let mut paces = self.paces.lock().unwrap_or_else(|e| e.into_inner());
        let pace = paces
            .entry(endpoint.to_string())
            .or_insert_with(|| Pace::new(rate));
        pace.poll(now)
    }

    /// Learns a sample the ledger has just recorded.
    pub async fn learn(&self, sample: &DurationSample) -> anyhow::Result<()> {
        if self.rules.is_none() {
            return Ok(());
        }
        let mut kinds = self
            .kinds()
            .await?
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let kind = (sample.endpoint.clone(), sample.operation.clone());
        let known = kinds.entry(kind).or_default();
        if known.add(sample.duration)
            && let Some(fit) = known.fit
        {
            tracing::info!(
                endpoint = %sample.endpoint,
                operation = %sample.operation,
                median = ?Duration::from_millis(fit.at_z(0.0) as u64),
                first_poll = ?Duration::from_millis(fit.at_z(plan::Z_FIRST) as u64),
                "polls of this kind of task now follow the durations learned"
            );
        }
        Ok(())
    }

    /// The known kinds, loaded from the ledger on first use.
    async fn kinds(&self) -> anyhow::Result<&Mutex<HashMap<Kind, Known>>> {
        self.kinds
            .get_or_try_init(|| async {
                let mut kinds: HashMap<Kind, Known> = HashMap::new();
                for s in self.ledger.task_durations().await? {
                    let known = kinds.entry((s.endpoint, s.operation)).or_default();
                    known.add(s.duration);
                }
                kinds.values_mut().for_each(Known::refit);
                let learned = kinds.values().filter(|k| k.fit.is_some()).count();
                tracing::debug!(
                    kinds = kinds.len(),
                    learned,
                    "task durations loaded from the ledger"
                );
                anyhow::Ok(Mutex::new(kinds))
            })
            .await
    }
}

#[cfg(test)]
mod tests;

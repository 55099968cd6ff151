//! The simulated EM's faults that a test may change while the simulator runs: `SimConfig`
//! gives their first values, `POST /_sim/faults` (or `SimHandle::set_faults`) changes them,
//! e.g. "60% of tasks fail, then failures stop". Owns only these four numbers; the EM side
//! reads them for each call and each new task.

use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::config::SimConfig;

/// The share of calls or tasks each fault hits, each in `[0, 1]` (also the JSON answered by
/// `GET` and `POST /_sim/faults`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Faults {
    /// Share of new tasks that finish with `Success="false"` (tasks already started keep
    /// their draw).
    pub task_failure_ratio: f64,
    /// Share of API calls (not logon) answered 500/502/503 before anything is done.
    pub error_ratio: f64,
    /// Share of API calls (not logon) answered with the throttling status and `Retry-After`.
    pub throttle_ratio: f64,
    /// Share of 202 answers to resource DELETEs sent without a readable Task.
    pub unreadable_task_ratio: f64,
}

impl Faults {
    /// The faults `cfg` starts with.
    pub fn of(cfg: &SimConfig) -> Self {
        Faults {
            task_failure_ratio: cfg.task_failure_ratio,
            error_ratio: cfg.error_ratio,
            throttle_ratio: cfg.throttle_ratio,
            unreadable_task_ratio: cfg.unreadable_task_ratio,
        }
    }
}

/// A change of some faults (the body of `POST /_sim/faults`): the fields given replace the
/// current values, the others stay. An unknown field is refused, so a typo changes nothing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultsUpdate {
    pub task_failure_ratio: Option<f64>,
    pub error_ratio: Option<f64>,
    pub throttle_ratio: Option<f64>,
    pub unreadable_task_ratio: Option<f64>,
}

impl FaultsUpdate {
    /// `faults` with this change applied, or the first field that is not a share in
    /// `[0, 1]` (then nothing changes).
    pub fn applied_to(&self, faults: Faults) -> Result<Faults, String> {
        let pick = |name: &str, new: Option<f64>, old: f64| match new {
            Some(v) if !(0.0..=1.0).contains(&v) => {
                Err(format!("`{name}` must be a number from 0 to 1, not {v}"))
            }
            Some(v) => Ok(v),
            None => Ok(old),
        };
        Ok(Faults {
            task_failure_ratio: pick(
                "task_failure_ratio",
                self.task_failure_ratio,
                faults.task_failure_ratio,
            )?,
            error_ratio: pick("error_ratio", self.error_ratio, faults.error_ratio)?,
            throttle_ratio: pick("throttle_ratio", self.throttle_ratio, faults.throttle_ratio)?,
            unreadable_task_ratio: pick(
                "unreadable_task_ratio",
                self.unreadable_task_ratio,
                faults.unreadable_task_ratio,
            )?,
        })
    }
}

/// The faults in force, shared by every connection.
pub(crate) struct LiveFaults(Mutex<Faults>);

impl LiveFaults {
    pub fn new(faults: Faults) -> Self {
        LiveFaults(Mutex::new(faults))
    }

    /// The faults in force now.
    pub fn get(&self) -> Faults {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Applies `update` (all of it or, when a field is out of range, none of it).
    pub fn update(&self, update: &FaultsUpdate) -> Result<Faults, String> {
        let mut faults = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *faults = update.applied_to(*faults)?;
        Ok(*faults)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_update_changes_only_the_fields_it_gives() {
        let live = LiveFaults::new(Faults::of(&SimConfig {
            error_ratio: 0.1,
            task_failure_ratio: 0.6,
            ..SimConfig::default()
        }));
        let update: FaultsUpdate = serde_json::from_str(r#"{"task_failure_ratio": 0}"#).unwrap();
        let now = live.update(&update).unwrap();
        assert_eq!(now.task_failure_ratio, 0.0);
        assert_eq!(now.error_ratio, 0.1);
        assert_eq!(live.get(), now);
    }

    #[test]
    fn an_out_of_range_share_or_an_unknown_field_changes_nothing() {
        let live = LiveFaults::new(Faults::of(&SimConfig::default()));
        let bad = FaultsUpdate {
            error_ratio: Some(0.5),
            throttle_ratio: Some(1.5),
            ..FaultsUpdate::default()
        };
        let err = live.update(&bad).unwrap_err();
        assert!(err.contains("throttle_ratio"), "{err}");
        assert_eq!(live.get().error_ratio, 0.0);
        let nan = FaultsUpdate {
            error_ratio: Some(f64::NAN),
            ..FaultsUpdate::default()
        };
        assert!(live.update(&nan).is_err());
        let typo = serde_json::from_str::<FaultsUpdate>(r#"{"task_failure_rate": 0}"#);
        assert!(typo.unwrap_err().to_string().contains("task_failure_rate"));
    }
}

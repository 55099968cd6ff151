//! Strict-mode inventory: the jobs and job children that exist on the simulated backup
//! server. Parsed and validated once at the edge (`load` / `from_json`); the rest of the
//! simulator trusts its GUIDs. Owns no run-time state: deletions are tracked by `world`.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The resources of a strict-mode simulator.
///
/// JSON shape: `{"jobs":[{"id":"<guid>","name":"CRM Backup","includes":["<guid>"],"linked_repositories":["<guid>"],"linked_jobs":["<guid>"]}]}`
/// (`name` and the three lists may be omitted; a job without a name is called `job-<n>`, `n`
/// being its place in the list, from 1).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawInventory", into = "RawInventory")]
pub struct Inventory {
    pub jobs: Vec<InventoryJob>,
}

/// One job and its children.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InventoryJob {
    pub id: Uuid,
    /// The job's `Name` (what `GET /api/jobs/{id}` answers); `None`: `job-<n>`.
    pub name: Option<String>,
    /// `ObjectInJobId`s (VMs / containers processed by the job).
    pub includes: Vec<Uuid>,
    pub linked_repositories: Vec<Uuid>,
    pub linked_jobs: Vec<Uuid>,
}

impl Inventory {
    /// Reads an inventory JSON file.
    pub fn load(path: impl AsRef<Path>) -> anyhow::Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading inventory {}", path.display()))?;
        Self::from_json(&text).with_context(|| format!("parsing inventory {}", path.display()))
    }

    /// Parses an inventory from JSON text; every id must be a GUID.
    pub fn from_json(text: &str) -> anyhow::Result<Self> {
        Ok(serde_json::from_str(text)?)
    }

    /// The inventory as pretty JSON (the shape `load` reads).
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("an Inventory always serialises")
    }

    /// A random inventory of `jobs` jobs with `includes_per_job` includes and one linked
    /// repository and one linked job each (for demos and load tests).
    pub fn random(jobs: usize, includes_per_job: usize) -> Self {
        let jobs = (0..jobs)
            .map(|_| InventoryJob {
                id: Uuid::new_v4(),
                name: None,
                includes: (0..includes_per_job).map(|_| Uuid::new_v4()).collect(),
                linked_repositories: vec![Uuid::new_v4()],
                linked_jobs: vec![Uuid::new_v4()],
            })
            .collect();
        Inventory { jobs }
    }
}

/// A job's name and children as sets, for lookups by the simulator.
#[derive(Debug, Default)]
pub(crate) struct JobChildren {
    pub name: String,
    pub includes: BTreeSet<Uuid>,
    pub linked_repositories: BTreeSet<Uuid>,
    pub linked_jobs: BTreeSet<Uuid>,
}

/// Indexes an inventory by job id (a job listed twice has its children merged and keeps
/// its first place's name).
pub(crate) fn index(inv: &Inventory) -> HashMap<Uuid, JobChildren> {
    let mut map: HashMap<Uuid, JobChildren> = HashMap::new();
    for (n, job) in inv.jobs.iter().enumerate() {
        let entry = map.entry(job.id).or_insert_with(|| JobChildren {
            name: job.name.clone().unwrap_or_else(|| format!("job-{}", n + 1)),
            ..JobChildren::default()
        });
        entry.includes.extend(job.includes.iter().copied());
        entry
            .linked_repositories
            .extend(job.linked_repositories.iter().copied());
        entry.linked_jobs.extend(job.linked_jobs.iter().copied());
    }
    map
}

// ---------------------------------------------------------------- wire shape

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInventory {
    jobs: Vec<RawJob>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawJob {
    id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(default)]
    includes: Vec<String>,
    #[serde(default)]
    linked_repositories: Vec<String>,
    #[serde(default)]
    linked_jobs: Vec<String>,
}

fn parse_guids(what: &str, ids: &[String]) -> Result<Vec<Uuid>, String> {
    ids.iter()
        .map(|s| Uuid::parse_str(s.trim()).map_err(|e| format!("{what} id `{s}`: {e}")))
        .collect()
}

impl TryFrom<RawInventory> for Inventory {
    type Error = String;
    fn try_from(raw: RawInventory) -> Result<Self, Self::Error> {
        let jobs = raw
            .jobs
            .into_iter()
            .map(|j| {
                let id =
                    Uuid::parse_str(j.id.trim()).map_err(|e| format!("job id `{}`: {e}", j.id))?;
                if j.name.as_ref().is_some_and(|n| n.trim().is_empty()) {
                    return Err(format!(
                        "job {id}: an empty name (omit `name` for `job-<n>`)"
                    ));
                }
                Ok(InventoryJob {
                    id,
                    name: j.name,
                    includes: parse_guids("include", &j.includes)?,
                    linked_repositories: parse_guids("linked repository", &j.linked_repositories)?,
                    linked_jobs: parse_guids("linked job", &j.linked_jobs)?,
                })
            })
            .collect::<Result<_, String>>()?;
        Ok(Inventory { jobs })
    }
}

impl From<Inventory> for RawInventory {
    fn from(inv: Inventory) -> Self {
        let strings = |ids: &[Uuid]| ids.iter().map(Uuid::to_string).collect();
        RawInventory {
            jobs: inv
                .jobs
                .iter()
                .map(|j| RawJob {
                    id: j.id.to_string(),
                    name: j.name.clone(),
                    includes: strings(&j.includes),
                    linked_repositories: strings(&j.linked_repositories),
                    linked_jobs: strings(&j.linked_jobs),
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_inventory_round_trips_through_json() {
        let inv = Inventory::random(2, 3);
        assert_eq!(Inventory::from_json(&inv.to_json()).unwrap(), inv);
    }

    #[test]
    fn omitted_lists_are_empty_and_bad_guids_are_rejected() {
        let ok =
            Inventory::from_json(r#"{"jobs":[{"id":"5b89dae5-6f08-45ec-b068-08f0bd08394a"}]}"#)
                .unwrap();
        assert!(ok.jobs[0].includes.is_empty());
        let bad = Inventory::from_json(r#"{"jobs":[{"id":"urn:veeam:Job:x"}]}"#);
        assert!(bad.is_err());
    }

    #[test]
    fn jobs_keep_their_names_and_unnamed_ones_are_numbered() {
        let inv = Inventory::from_json(
            r#"{"jobs":[
                {"id":"5b89dae5-6f08-45ec-b068-08f0bd08394a","name":"prod-crm"},
                {"id":"d1b85018-2769-45be-89bc-03f66b60e6cb"},
                {"id":"5b89dae5-6f08-45ec-b068-08f0bd08394a","name":"ignored"}]}"#,
        )
        .unwrap();
        assert_eq!(inv.jobs[0].name.as_deref(), Some("prod-crm"));
        assert_eq!(Inventory::from_json(&inv.to_json()).unwrap(), inv);
        let names: Vec<String> = {
            let idx = index(&inv);
            inv.jobs[..2]
                .iter()
                .map(|j| idx[&j.id].name.clone())
                .collect()
        };
        assert_eq!(names, ["prod-crm", "job-2"]);
        let empty = r#"{"jobs":[{"id":"5b89dae5-6f08-45ec-b068-08f0bd08394a","name":" "}]}"#;
        let err = Inventory::from_json(empty).unwrap_err().to_string();
        assert!(err.contains("empty name"), "{err}");
    }
}

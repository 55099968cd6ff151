//! The deletable resources of the simulated EM: their identity (`ResourceKey`), the GUID
//! rule for ids in paths, and the small entity bodies and messages EM answers for them.
//! Pure values: existence and deletion are tracked by `world`.

use serde_json::json;
use uuid::Uuid;

use crate::em::codec::{Format, JobRef, VEEAM_NS};

/// What a path names under `/api/jobs/{id}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum ResourceKind {
    Job,
    Include,
    LinkedRepository,
    LinkedJob,
}

impl ResourceKind {
    /// The kind named by the path segment after `/jobs/{id}/`.
    pub fn from_segment(segment: &str) -> Option<Self> {
        [
            ResourceKind::Include,
            ResourceKind::LinkedRepository,
            ResourceKind::LinkedJob,
        ]
        .into_iter()
        .find(|k| k.segment().is_some_and(|s| s.eq_ignore_ascii_case(segment)))
    }

    fn segment(self) -> Option<&'static str> {
        match self {
            ResourceKind::Job => None,
            ResourceKind::Include => Some("includes"),
            ResourceKind::LinkedRepository => Some("linkedBackupRepositories"),
            ResourceKind::LinkedJob => Some("linkedJobs"),
        }
    }

    /// The route template used as a stats key, without the method.
    pub fn template(self) -> String {
        match self.segment() {
            None => "/api/jobs/{id}".into(),
            Some(s) => format!("/api/jobs/{{id}}/{s}/{{id}}"),
        }
    }

    /// The `Operation` of the task a DELETE starts.
    pub fn operation(self) -> &'static str {
        match self {
            ResourceKind::Job => "DeleteJob",
            _ => "UpdateJob",
        }
    }

    fn entity_type(self) -> &'static str {
        match self {
            ResourceKind::Job => "Job",
            ResourceKind::Include => "ObjectInJob",
            ResourceKind::LinkedRepository => "LinkedBackupRepository",
            ResourceKind::LinkedJob => "LinkedJob",
        }
    }

    fn urn_type(self) -> &'static str {
        match self {
            ResourceKind::Job | ResourceKind::LinkedJob => "Job",
            ResourceKind::Include => "ObjectInJob",
            ResourceKind::LinkedRepository => "Repository",
        }
    }
}

/// One resource: a job (`item == job`) or a child of a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct ResourceKey {
    pub kind: ResourceKind,
    pub job: Uuid,
    pub item: Uuid,
}

impl ResourceKey {
    pub fn job(job: Uuid) -> Self {
        ResourceKey {
            kind: ResourceKind::Job,
            job,
            item: job,
        }
    }

    pub fn child(kind: ResourceKind, job: Uuid, item: Uuid) -> Self {
        ResourceKey { kind, job, item }
    }

    /// The resource's path under the server root.
    pub fn path(&self) -> String {
        match self.kind.segment() {
            None => format!("/api/jobs/{}", self.job),
            Some(s) => format!("/api/jobs/{}/{s}/{}", self.job, self.item),
        }
    }

    /// EM's message when the resource does not exist.
    pub fn not_found_message(&self) -> String {
        let (job, item) = (self.job, self.item);
        match self.kind {
            ResourceKind::Job => format!("Job with id [{job}] was not found."),
            ResourceKind::Include => {
                format!("Object in job with id [{item}] was not found in job [{job}].")
            }
            ResourceKind::LinkedRepository => {
                format!("Linked backup repository with id [{item}] was not found in job [{job}].")
            }
            ResourceKind::LinkedJob => {
                format!("Linked job with id [{item}] was not found in job [{job}].")
            }
        }
    }

    /// The reference `GET /api/jobs/{id}` answers for this resource's job, named `name`.
    pub fn job_ref(&self, base: &str, name: String) -> JobRef {
        JobRef {
            name,
            uid: format!("urn:veeam:Job:{}", self.job),
            href: format!("{base}{}", ResourceKey::job(self.job).path()),
        }
    }

    /// A small entity body for `GET` on an existing job child (a job answers its `job_ref`).
    pub fn encode_entity(&self, format: Format, base: &str) -> String {
        let kind = self.kind.entity_type();
        let href = format!("{base}{}", self.path());
        let uid = format!("urn:veeam:{}:{}", self.kind.urn_type(), self.item);
        let short = &self.item.simple().to_string()[..8];
        let name = format!("sim-{}-{short}", kind.to_ascii_lowercase());
        let include = self.kind == ResourceKind::Include;
        match format {
            Format::Json => {
                let mut v =
                    json!({"Name": name, "UID": uid, "Links": [], "Href": href, "Type": kind});
                if include {
                    v["ObjectInJobId"] = json!(self.item.to_string());
                }
                v.to_string()
            }
            Format::Xml => {
                let child = if include {
                    format!("<ObjectInJobId>{}</ObjectInJobId>", self.item)
                } else {
                    String::new()
                };
                format!(
                    "<{kind} xmlns=\"{VEEAM_NS}\" Type=\"{kind}\" Href=\"{href}\" Name=\"{name}\" UID=\"{uid}\">\
                     <Links />{child}</{kind}>"
                )
            }
        }
    }
}

/// Parses an id from a path: only the bare hyphenated GUID form is accepted (a
/// `urn:veeam:Job:<guid>` is not).
pub(crate) fn parse_path_guid(s: &str) -> Option<Uuid> {
    if s.len() != 36 {
        return None;
    }
    Uuid::try_parse(s).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_bare_hyphenated_guids_are_accepted_in_paths() {
        let g = "5b89dae5-6f08-45ec-b068-08f0bd08394a";
        assert!(parse_path_guid(g).is_some());
        assert!(parse_path_guid(&g.to_uppercase()).is_some());
        assert!(parse_path_guid(&format!("urn:veeam:Job:{g}")).is_none());
        assert!(parse_path_guid(&g.replace('-', "")).is_none());
        assert!(parse_path_guid("task-1").is_none());
    }

    #[test]
    fn a_job_reference_and_a_child_entity_carry_their_urns() {
        let id = parse_path_guid("5b89dae5-6f08-45ec-b068-08f0bd08394a").unwrap();
        let job = ResourceKey::job(id).job_ref("http://h", "CRM".into());
        assert_eq!(
            job.uid,
            "urn:veeam:Job:5b89dae5-6f08-45ec-b068-08f0bd08394a"
        );
        assert_eq!(
            job.href,
            "http://h/api/jobs/5b89dae5-6f08-45ec-b068-08f0bd08394a"
        );
        let repo = ResourceKey::child(ResourceKind::LinkedRepository, id, id);
        let body = repo.encode_entity(Format::Xml, "http://h");
        assert!(body.contains("UID=\"urn:veeam:Repository:5b89dae5"));
        assert!(body.contains("Href=\"http://h/api/jobs/5b89dae5"));
        let json: serde_json::Value =
            serde_json::from_str(&repo.encode_entity(Format::Json, "http://h")).unwrap();
        assert_eq!(json["Type"], "LinkedBackupRepository");
    }
}

//! The protect file (`REAPER_PROTECT_FILE`, design 1.6): its format, and which of a target's
//! ids it protects. Pure: the text comes in, a list or an error naming the key, the file and
//! the line comes out; reading and re-reading the file is `watch`'s business.
//!
//! The format: one id a line; `#` starts a comment (a whole line or the end of one); blank
//! lines are ignored. An id is an EM GUID (any case, braces allowed), an EM URN
//! (`urn:veeam:<Type>:<guid>`, any type: its GUID counts), or another id as a request carries
//! it (an EM task id, a DCS project, instance or task id: `[A-Za-z0-9._-]`, 1–128 characters).
//! GUIDs are compared in their normalised lower-case form, wherever they stand; other ids as
//! written. Anything else on a line (two ids, a comma-separated list, a URN that is not
//! Veeam's or holds no GUID, a path) is malformed: it could never match, so it is a mistake.

use crate::config::ConfigError;
use crate::request::{Guid, Segment, Target, printable};
use std::collections::HashMap;
use std::path::Path;

/// The key whose file this is, as errors and messages name it.
pub(crate) const KEY: &str = "REAPER_PROTECT_FILE";

/// The ids of a protect file, normalised, each with the line that lists it first.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct ProtectList {
    ids: HashMap<String, usize>,
    /// How rules and errors name the file: [`KEY`], or an endpoint's `protect_file`.
    key: String,
}

impl ProtectList {
    /// Parses the protect file at `path` (named in errors), whose content is `bytes`.
    #[cfg(test)]
    pub(crate) fn parse(path: &Path, bytes: &[u8]) -> Result<Self, ConfigError> {
        Self::parse_as(KEY, path, bytes)
    }

    /// Parses the protect file at `path` (named in errors), whose content is `bytes`; its
    /// rules and errors name it `key`.
    pub(crate) fn parse_as(key: &str, path: &Path, bytes: &[u8]) -> Result<Self, ConfigError> {
        let malformed = |line: usize, why: &str| ConfigError {
            key: key.into(),
            reason: format!("`{}` line {line}: {why}", path.display()),
        };
        let text = std::str::from_utf8(bytes).map_err(|e| {
            let line = bytes[..e.valid_up_to()]
                .iter()
                .filter(|b| **b == b'\n')
                .count();
            malformed(line + 1, "is not UTF-8 text")
        })?;
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut ids = HashMap::new();
        for (i, raw) in text.lines().enumerate() {
            let content = raw.split('#').next().unwrap_or_default().trim();
            if content.is_empty() {
                continue;
            }
            let id = entry(content).map_err(|why| malformed(i + 1, &why))?;
            ids.entry(id).or_insert(i + 1);
        }
        Ok(ProtectList {
            ids,
            key: key.to_string(),
        })
    }

    /// How many distinct ids the file protects.
    pub(crate) fn len(&self) -> usize {
        self.ids.len()
    }

    /// The rule protecting `target`, as text for the outcome's message (`job 7c1e… is
    /// protected (REAPER_PROTECT_FILE line 3)`), when any of its ids is listed.
    pub(crate) fn find(&self, target: &Target) -> Option<String> {
        ids(target).into_iter().find_map(|(role, id)| {
            self.ids
                .get(&normalised(id))
                .map(|line| format!("{role} {id} is protected ({} line {line})", self.key))
        })
    }
}

/// One line's id, normalised for comparison, or why it is not one.
fn entry(content: &str) -> Result<String, String> {
    let shown = printable(content);
    if content.chars().any(char::is_whitespace) {
        return Err(format!("`{shown}` is not one id (whitespace inside)"));
    }
    if content
        .get(..4)
        .is_some_and(|p| p.eq_ignore_ascii_case("urn:"))
    {
        return urn_guid(content).ok_or_else(|| {
            format!("`{shown}` is not a Veeam URN with a GUID (`urn:veeam:<Type>:<guid>`)")
        });
    }
    if content.starts_with('{') || content.ends_with('}') {
        return content
            .strip_prefix('{')
            .and_then(|c| c.strip_suffix('}'))
            .and_then(|c| Guid::parse(c).ok())
            .map(|g| g.as_str().to_string())
            .ok_or_else(|| format!("`{shown}` is not a GUID in braces"));
    }
    Segment::parse(content).map_err(|_| {
        format!(
            "`{shown}` is not a GUID, a `urn:veeam:<Type>:<guid>` nor an id of \
             [A-Za-z0-9._-] (1-128 characters)"
        )
    })?;
    Ok(normalised(content))
}

/// The GUID of `urn:veeam:<Type>:<guid>` (`urn` and `veeam` in any case, any alphanumeric
/// type), lower-cased.
fn urn_guid(urn: &str) -> Option<String> {
    let parts: Vec<&str> = urn.splitn(4, ':').collect();
    let [_, nid, kind, guid] = parts[..] else {
        return None;
    };
    let kind_ok = !kind.is_empty() && kind.chars().all(|c| c.is_ascii_alphanumeric());
    if !nid.eq_ignore_ascii_case("veeam") || !kind_ok {
        return None;
    }
    Guid::parse(guid).ok().map(|g| g.as_str().to_string())
}

/// An id as compared: a GUID in lower case, anything else as written.
fn normalised(id: &str) -> String {
    match Guid::parse(id) {
        Ok(guid) => guid.as_str().to_string(),
        Err(_) => id.to_string(),
    }
}

/// Every id a target carries, with the role it plays there (job first, so a job's include
/// or link names the job when both are listed).
fn ids(target: &Target) -> Vec<(&'static str, &str)> {
    match target {
        Target::EmJob { job_id } => vec![("job", job_id.as_str())],
        Target::EmJobInclude { job_id, include_id } => {
            vec![
                ("job", job_id.as_str()),
                ("job include", include_id.as_str()),
            ]
        }
        Target::EmJobLinkedRepository {
            job_id,
            repository_id,
        } => vec![
            ("job", job_id.as_str()),
            ("repository", repository_id.as_str()),
        ],
        Target::EmJobLinkedJob {
            job_id,
            linked_job_id,
        } => vec![
            ("job", job_id.as_str()),
            ("linked job", linked_job_id.as_str()),
        ],
        Target::EmTask { task_id } => vec![("task", task_id.as_str())],
        Target::DcsBackgroundTask {
            project_id,
            instance_id,
            task_id,
        } => vec![
            ("DCS project", project_id.as_str()),
            ("DCS instance", instance_id.as_str()),
            ("DCS task", task_id.as_str()),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const JOB: &str = "7c1e0a52-1f0e-4b8a-9a43-2f6a1d0c9b11";
    const OTHER: &str = "d1b85018-2769-45be-89bc-03f66b60e6cb";

    fn parse(text: &str) -> Result<ProtectList, ConfigError> {
        ProtectList::parse(Path::new("/etc/reaper/protect.txt"), text.as_bytes())
    }

    /// A target of type `kind` with the given fields.
    fn target(kind: &str, fields: &[(&str, &str)]) -> Target {
        let mut json = serde_json::json!({ "type": kind });
        for (name, value) in fields {
            json[*name] = serde_json::json!(value);
        }
        Target::from_wire(&json).unwrap()
    }

    fn dcs(project: &str, instance: &str, task: &str) -> Target {
        let ids = [
            ("project_id", project),
            ("instance_id", instance),
            ("task_id", task),
        ];
        target("dcs.background_task", &ids)
    }

    /// A list with an id of each kind a target may carry.
    fn sample() -> ProtectList {
        parse(&format!(
            "{JOB}\nurn:veeam:ObjectInJob:{OTHER}\ntask-9\nproj-1\n\
             5560DF16-CEBF-4473-95C4-335CB2F3C0D3\nt-77\n"
        ))
        .unwrap()
    }

    #[test]
    fn guids_urns_braces_and_comments_are_read_and_normalised() {
        let list = parse(&format!(
            "# production jobs\n\n  {}  # the big one\n{{{OTHER}}}\nurn:veeam:Repository:{}\n\
             URN:VEEAM:Job:{JOB}\nproj-0a1b\r\n\u{3000}\n",
            JOB.to_uppercase(),
            "27A1D57F-7C15-43C6-9162-D05AFF1C9BB9"
        ))
        .unwrap();
        assert_eq!(list.len(), 4, "{list:?}");
        assert_eq!(list.ids[JOB], 3, "the first line listing an id counts");
        assert_eq!(list.ids[OTHER], 4);
        assert_eq!(list.ids["27a1d57f-7c15-43c6-9162-d05aff1c9bb9"], 5);
        assert_eq!(list.ids["proj-0a1b"], 7);
        assert_eq!(
            parse("").unwrap().len(),
            0,
            "an empty file protects nothing"
        );
        assert_eq!(parse("\u{feff}# only a comment\n").unwrap().len(), 0);
    }

    #[test]
    fn a_malformed_line_is_named_by_key_path_and_number() {
        for (text, line, why) in [
            (format!("{JOB}\n\n{JOB} {OTHER}\n"), 3, "whitespace inside"),
            (format!("# ok\n{JOB},{OTHER}\n"), 2, "is not a GUID"),
            ("urn:veeam:Job:not-a-guid\n".into(), 1, "not a Veeam URN"),
            (format!("urn:vmware:Job:{JOB}\n"), 1, "not a Veeam URN"),
            (format!("urn:veeam::{JOB}\n"), 1, "not a Veeam URN"),
            (format!("{{{JOB}\n"), 1, "not a GUID in braces"),
            ("a\nb\n/api/jobs/x\n".into(), 3, "[A-Za-z0-9._-]"),
            ("ok\n..\n".into(), 2, "[A-Za-z0-9._-]"),
            ("ok\njob-é\n".into(), 2, "[A-Za-z0-9._-]"),
        ] {
            let e = parse(&text).unwrap_err();
            assert_eq!(e.key, KEY);
            let msg = e.to_string();
            let at = format!("`/etc/reaper/protect.txt` line {line}: ");
            assert!(msg.contains(&at) && msg.contains(why), "{text:?}: {msg}");
        }
        let e = ProtectList::parse(Path::new("p"), b"ok\n\xff\n").unwrap_err();
        assert!(e.to_string().contains("line 2: is not UTF-8 text"), "{e}");
    }

    #[test]
    fn any_id_of_any_target_type_is_matched_and_named_by_its_role() {
        let list = sample();
        let free = "11111111-2222-4333-8444-555555555555";
        let urn = format!("urn:veeam:Job:{JOB}");
        let cases = [
            (target("em.job", &[("job_id", JOB)]), "job"),
            (
                target("em.job_include", &[("job_id", JOB), ("include_id", free)]),
                "job",
            ),
            (
                target("em.job_include", &[("job_id", free), ("include_id", OTHER)]),
                "job include",
            ),
            (
                target(
                    "em.job_linked_repository",
                    &[("job_id", JOB), ("repository_id", free)],
                ),
                "job",
            ),
            (
                target(
                    "em.job_linked_job",
                    &[("job_id", free), ("linked_job_id", &urn)],
                ),
                "linked job",
            ),
            (target("em.task", &[("task_id", "task-9")]), "task"),
            (dcs("proj-1", "i", "t"), "DCS project"),
            (
                dcs("p", "5560df16-cebf-4473-95c4-335cb2f3c0d3", "t"),
                "DCS instance",
            ),
            (dcs("p", "i", "t-77"), "DCS task"),
        ];
        for (t, role) in cases {
            let rule = list
                .find(&t)
                .unwrap_or_else(|| panic!("{t:?} is not protected"));
            assert!(rule.starts_with(&format!("{role} ")), "{t:?}: {rule}");
            assert!(
                rule.contains(" is protected (REAPER_PROTECT_FILE line "),
                "{rule}"
            );
        }
    }

    #[test]
    fn the_rule_names_the_line_and_other_ids_are_free() {
        let list = sample();
        let free = "11111111-2222-4333-8444-555555555555";
        assert_eq!(
            list.find(&target("em.job", &[("job_id", JOB)])),
            Some(format!(
                "job {JOB} is protected (REAPER_PROTECT_FILE line 1)"
            ))
        );
        for t in [
            target("em.job", &[("job_id", free)]),
            target("em.task", &[("task_id", "TASK-9")]),
            dcs("Proj-1", "i", "t"),
        ] {
            assert_eq!(
                list.find(&t),
                None,
                "{t:?}: ids other than GUIDs keep their case"
            );
        }
    }
}

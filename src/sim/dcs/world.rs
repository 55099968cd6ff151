//! The simulated DCS's state: IAM tokens (project-scoped, with a lifetime), background tasks
//! per project and instance, and the API gateway's throttling window.
//!
//! Pure and synchronous, like EM's `world`: callers pass `now` and fresh tokens in. Non-strict:
//! every well-formed task id (32 hex characters) exists until it is deleted; a task is
//! `EXECUTING` for `executing_for` after the simulator first sees it (listing or DELETE),
//! then `SUCCESS`. Each instance lists three tasks of its own from its first listing on.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

/// A refusal: HTTP status and the v2 body's `error_code` and `error_msg`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DcsRefusal {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
}

fn refusal(status: u16, code: &'static str, message: impl Into<String>) -> DcsRefusal {
    DcsRefusal {
        status,
        code,
        message: message.into(),
    }
}

/// A background task as listed at one instant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TaskView {
    pub id: String,
    pub name: &'static str,
    pub executing: bool,
    /// How long ago the simulator first saw it.
    pub age: Duration,
}

struct IssuedToken {
    project: String,
    expires_at: Instant,
}

struct TaskRec {
    name: &'static str,
    first_seen: Instant,
    deleted: bool,
}

#[derive(Default)]
struct InstanceTasks {
    seeded: bool,
    tasks: BTreeMap<String, TaskRec>,
}

/// The names of the tasks an instance lists from the start.
const SEEDED: [&str; 3] = ["modify", "restart", "extend"];

/// Tokens, tasks and the throttling window.
pub(crate) struct DcsWorld {
    ttl: Duration,
    executing_for: Duration,
    rate_limit: Option<u32>,
    static_token: Option<String>,
    forbidden: HashSet<String>,
    window: VecDeque<Instant>,
    tokens: HashMap<String, IssuedToken>,
    instances: HashMap<(String, String), InstanceTasks>,
}

/// Whether `id` is a well-formed task id: 32 hex characters.
pub(crate) fn is_task_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

impl DcsWorld {
    pub fn new(
        ttl: Duration,
        executing_for: Duration,
        rate_limit: Option<u32>,
        static_token: Option<String>,
        forbidden: impl IntoIterator<Item = String>,
    ) -> Self {
        DcsWorld {
            ttl,
            executing_for,
            rate_limit,
            static_token: static_token.filter(|t| !t.is_empty()),
            forbidden: forbidden.into_iter().collect(),
            window: VecDeque::new(),
            tokens: HashMap::new(),
            instances: HashMap::new(),
        }
    }

    /// The API gateway: whether one more call fits in the last second's budget.
    pub fn admit(&mut self, now: Instant) -> bool {
        let Some(limit) = self.rate_limit else {
            return true;
        };
        while self
            .window
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= Duration::from_secs(1))
        {
            self.window.pop_front();
        }
        if self.window.len() >= limit as usize {
            return false;
        }
        self.window.push_back(now);
        true
    }

    /// Records a token IAM just issued for `project`.
    pub fn register_token(&mut self, token: String, project: &str, now: Instant) {
        let expires_at = now + self.ttl;
        self.tokens.insert(
            token,
            IssuedToken {
                project: project.to_string(),
                expires_at,
            },
        );
    }

    /// Lets every issued token expire now.
    pub fn expire_tokens(&mut self, now: Instant) {
        for t in self.tokens.values_mut() {
            t.expires_at = t.expires_at.min(now);
        }
    }

    /// Checks `X-Auth-Token` for a call on `project`.
    pub fn authorize(
        &self,
        token: Option<&str>,
        project: &str,
        now: Instant,
    ) -> Result<(), DcsRefusal> {
        let Some(token) = token.filter(|t| !t.is_empty()) else {
            return Err(refusal(
                401,
                "DCS.1003",
                "The request carries no X-Auth-Token.",
            ));
        };
        if self.static_token.as_deref() == Some(token) {
            return Ok(());
        }
        let Some(issued) = self.tokens.get(token) else {
            return Err(refusal(401, "DCS.1001", "The token is invalid."));
        };
        if now >= issued.expires_at {
            return Err(refusal(401, "DCS.1002", "The token has expired."));
        }
        if issued.project != project {
            return Err(refusal(
                401,
                "DCS.1004",
                format!("The token is not scoped to project {project}."),
            ));
        }
        Ok(())
    }

    /// `DELETE /v2/{project}/instances/{instance}/tasks/{task}`.
    pub fn delete(
        &mut self,
        project: &str,
        instance: &str,
        task: &str,
        now: Instant,
    ) -> Result<(), DcsRefusal> {
        if self.forbidden.contains(project) {
            return Err(refusal(
                403,
                "DCS.2003",
                "No permission to delete background tasks (dcs:instance:deleteBackgroundTask).",
            ));
        }
        if !is_task_id(task) {
            return Err(refusal(400, "DCS.4070", "Invalid task ID format."));
        }
        let executing_for = self.executing_for;
        let rec = self
            .instance(project, instance)
            .tasks
            .entry(task.to_string())
            .or_insert_with(|| TaskRec {
                name: "modify",
                first_seen: now,
                deleted: false,
            });
        if rec.deleted {
            return Err(refusal(
                404,
                "DCS.4001",
                format!("The background task {task} does not exist."),
            ));
        }
        if now.saturating_duration_since(rec.first_seen) < executing_for {
            return Err(refusal(
                400,
                "DCS.4957",
                "This operation is not allowed in the current task state: the task is still executing.",
            ));
        }
        rec.deleted = true;
        Ok(())
    }

    /// `GET /v2/{project}/instances/{instance}/tasks`: the tasks not deleted, oldest first.
    pub fn list(&mut self, project: &str, instance: &str, now: Instant) -> Vec<TaskView> {
        let executing_for = self.executing_for;
        let inst = self.instance(project, instance);
        if !inst.seeded {
            inst.seeded = true;
            for (i, name) in SEEDED.iter().enumerate() {
                let seed = format!("{project}/{instance}/{i}");
                let id = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, seed.as_bytes())
                    .simple()
                    .to_string();
                inst.tasks.entry(id).or_insert(TaskRec {
                    name,
                    first_seen: now,
                    deleted: false,
                });
            }
        }
        let mut views: Vec<TaskView> = inst
            .tasks
            .iter()
            .filter(|(_, r)| !r.deleted)
            .map(|(id, r)| {
                let age = now.saturating_duration_since(r.first_seen);
                TaskView {
                    id: id.clone(),
                    name: r.name,
                    executing: age < executing_for,
                    age,
                }
            })
            .collect();
        views.sort_by(|a, b| b.age.cmp(&a.age).then_with(|| a.id.cmp(&b.id)));
        views
    }

    fn instance(&mut self, project: &str, instance: &str) -> &mut InstanceTasks {
        self.instances
            .entry((project.to_string(), instance.to_string()))
            .or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TASK: &str = "8abf6e1e72c12e7c0172c15b508500aa";

    fn world(executing_for: Duration) -> DcsWorld {
        DcsWorld::new(
            Duration::from_secs(10),
            executing_for,
            Some(2),
            Some("static".into()),
            ["ro".to_string()],
        )
    }

    fn code(r: Result<(), DcsRefusal>) -> Option<(u16, &'static str)> {
        r.err().map(|r| (r.status, r.code))
    }

    #[test]
    fn tokens_are_project_scoped_and_expire() {
        let mut w = world(Duration::ZERO);
        let t0 = Instant::now();
        w.register_token("t1".into(), "p1", t0);
        let cases = [
            (Some("t1"), "p1", t0, None),
            (Some("t1"), "p2", t0, Some((401, "DCS.1004"))),
            (
                Some("t1"),
                "p1",
                t0 + Duration::from_secs(10),
                Some((401, "DCS.1002")),
            ),
            (Some("nope"), "p1", t0, Some((401, "DCS.1001"))),
            (None, "p1", t0, Some((401, "DCS.1003"))),
            (Some("static"), "any", t0 + Duration::from_secs(99), None),
        ];
        for (token, project, now, want) in cases {
            assert_eq!(
                code(w.authorize(token, project, now)),
                want,
                "{token:?} {project}"
            );
        }
        w.expire_tokens(t0);
        assert_eq!(
            code(w.authorize(Some("t1"), "p1", t0)),
            Some((401, "DCS.1002"))
        );
    }

    #[test]
    fn a_task_is_deleted_once_and_not_while_executing() {
        let mut w = world(Duration::from_secs(1));
        let t0 = Instant::now();
        assert_eq!(code(w.delete("p", "i", TASK, t0)), Some((400, "DCS.4957")));
        let later = t0 + Duration::from_secs(1);
        assert_eq!(code(w.delete("p", "i", TASK, later)), None);
        assert_eq!(
            code(w.delete("p", "i", TASK, later)),
            Some((404, "DCS.4001"))
        );
        assert_eq!(
            code(w.delete("p", "i2", TASK, later)),
            Some((400, "DCS.4957")),
            "another instance's task"
        );
        assert_eq!(
            code(w.delete("p", "i", "not-hex", later)),
            Some((400, "DCS.4070"))
        );
        assert_eq!(
            code(w.delete("ro", "i", TASK, later)),
            Some((403, "DCS.2003"))
        );
    }

    #[test]
    fn an_instance_lists_its_tasks_until_they_are_deleted() {
        let mut w = world(Duration::from_secs(1));
        let t0 = Instant::now();
        let first = w.list("p", "i", t0);
        assert_eq!(first.len(), 3);
        assert!(first.iter().all(|t| t.executing && is_task_id(&t.id)));
        let later = t0 + Duration::from_secs(2);
        w.delete("p", "i", &first[0].id, later).unwrap();
        let second = w.list("p", "i", later);
        assert_eq!(second.len(), 2);
        assert!(second.iter().all(|t| !t.executing));
        assert_ne!(
            w.list("p", "other", later)[0].id,
            first[1].id,
            "ids differ per instance"
        );
    }

    #[test]
    fn the_gateway_admits_the_rate_per_sliding_second() {
        let mut w = world(Duration::ZERO);
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let admitted: Vec<bool> = [0, 100, 200, 999, 1_000, 1_050, 1_100]
            .into_iter()
            .map(|n| w.admit(ms(n)))
            .collect();
        assert_eq!(admitted, [true, true, false, false, true, false, true]);
    }
}

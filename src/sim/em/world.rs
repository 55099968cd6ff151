//! The simulated EM's state: logon sessions, their tasks, and which resources exist.
//!
//! Pure and synchronous: callers pass `now` and every random draw in, so the rules are
//! testable without a clock or HTTP. Task state is computed lazily from timestamps; the
//! deletions that tasks perform are applied by `settle`, which pops due entries from one
//! min-heap (no timer per task), so 100,000 tasks cost a map entry and a heap entry each.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use uuid::Uuid;

use super::inventory::JobChildren;
use super::resource::{ResourceKey, ResourceKind};

/// A refusal: the HTTP status and the `Message` of the Error body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub status: u16,
    pub message: String,
}

impl Refusal {
    fn new(status: u16, message: impl Into<String>) -> Self {
        Refusal {
            status,
            message: message.into(),
        }
    }
}

/// A task as seen by its session at one instant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TaskView {
    pub task_id: String,
    pub operation: &'static str,
    /// `None` while running; `Some((success, message))` once finished.
    pub result: Option<(bool, String)>,
}

/// A task whose end a poll saw for the first time: how long it ran, and how long after its
/// end that poll came (what `reaper bench` reports of polls).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskSighting {
    pub duration: Duration,
    pub late: Duration,
}

/// The most recent sightings kept.
const KEPT_SIGHTINGS: usize = 100_000;

struct TaskRec {
    key: ResourceKey,
    started_at: Instant,
    finishes_at: Instant,
    success: bool,
    /// Identifies the pending deletion this task drives.
    seq: u64,
    /// A poll has seen it ended.
    seen_ended: bool,
}

impl TaskRec {
    /// The first poll to see it ended: how late.
    fn first_sighting(&mut self, now: Instant) -> Option<TaskSighting> {
        if now < self.finishes_at || self.seen_ended {
            return None;
        }
        self.seen_ended = true;
        Some(TaskSighting {
            duration: self.finishes_at - self.started_at,
            late: now - self.finishes_at,
        })
    }

    fn view(&self, task_id: &str, now: Instant) -> TaskView {
        let result = (now >= self.finishes_at).then(|| {
            if self.success {
                (true, "Ok".to_string())
            } else {
                (false, failure_message(&self.key))
            }
        });
        TaskView {
            task_id: task_id.to_string(),
            operation: self.key.kind.operation(),
            result,
        }
    }
}

fn failure_message(key: &ResourceKey) -> String {
    format!(
        "Failed to process {}: the job is locked by another operation.",
        key.path()
    )
}

struct Session {
    id: Uuid,
    last_seen: Instant,
    next_task: u64,
    tasks: HashMap<String, TaskRec>,
}

struct Pending {
    seq: u64,
    success: bool,
}

/// Sessions, tasks and resources.
pub(crate) struct World {
    idle_timeout: Duration,
    /// Strict mode: the only resources that exist (minus `deleted`).
    inventory: Option<HashMap<Uuid, JobChildren>>,
    /// Token → session.
    sessions: HashMap<String, Session>,
    /// Deletions done: the resource is absent.
    deleted: HashSet<ResourceKey>,
    /// Deletions under way: the resource still exists but cannot be deleted again.
    pending: HashMap<ResourceKey, Pending>,
    /// When each pending deletion finishes, earliest first (entries may be stale).
    due: BinaryHeap<Reverse<(Instant, u64, ResourceKey)>>,
    next_seq: u64,
    /// Tasks seen ended by a poll, oldest first.
    sightings: VecDeque<TaskSighting>,
}

impl World {
    pub fn new(idle_timeout: Duration, inventory: Option<HashMap<Uuid, JobChildren>>) -> Self {
        World {
            idle_timeout,
            inventory,
            sessions: HashMap::new(),
            deleted: HashSet::new(),
            pending: HashMap::new(),
            due: BinaryHeap::new(),
            next_seq: 0,
            sightings: VecDeque::new(),
        }
    }

    /// Applies every deletion whose task has finished by `now`.
    pub fn settle(&mut self, now: Instant) {
        while let Some(Reverse((at, seq, key))) = self.due.peek().copied() {
            if at > now {
                break;
            }
            self.due.pop();
            if self.pending.get(&key).is_some_and(|p| p.seq == seq)
                && let Some(p) = self.pending.remove(&key)
                && p.success
            {
                self.deleted.insert(key);
            }
        }
    }

    // ------------------------------------------------------------ sessions

    /// Opens a session for `token`; returns its GUID. Forgets expired sessions on the way.
    pub fn logon(&mut self, token: String, now: Instant) -> Uuid {
        let idle = self.idle_timeout;
        self.sessions
            .retain(|_, s| now.saturating_duration_since(s.last_seen) <= idle);
        let id = Uuid::new_v4();
        let session = Session {
            id,
            last_seen: now,
            next_task: 1,
            tasks: HashMap::new(),
        };
        self.sessions.insert(token, session);
        id
    }

    /// Checks a token and resets its session's idle timer.
    pub fn authorize(&mut self, token: Option<&str>, now: Instant) -> Result<(), Refusal> {
        let unauthorized = || Refusal::new(401, "Unauthorized: no valid logon session.");
        let token = token.ok_or_else(unauthorized)?;
        let session = self.sessions.get_mut(token).ok_or_else(unauthorized)?;
        if now.saturating_duration_since(session.last_seen) > self.idle_timeout {
            self.sessions.remove(token);
            return Err(unauthorized());
        }
        session.last_seen = now;
        Ok(())
    }

    /// Logs off the session with this GUID (any live session: EM does not check ownership).
    pub fn logoff(&mut self, session_id: Uuid) -> Result<(), Refusal> {
        let before = self.sessions.len();
        self.sessions.retain(|_, s| s.id != session_id);
        if self.sessions.len() == before {
            return Err(Refusal::new(
                404,
                format!("Logon session with id [{session_id}] was not found."),
            ));
        }
        Ok(())
    }

    /// Whether a live session has this GUID (`GET /api/logonSessions/{id}`).
    pub fn find_session(&self, session_id: Uuid) -> Result<(), Refusal> {
        if self.sessions.values().any(|s| s.id == session_id) {
            return Ok(());
        }
        Err(Refusal::new(
            404,
            format!("Logon session with id [{session_id}] was not found."),
        ))
    }

    /// Forgets every session (their tokens answer 401 from now on).
    pub fn expire_all(&mut self) {
        self.sessions.clear();
    }

    fn session(&mut self, token: &str) -> Result<&mut Session, Refusal> {
        self.sessions
            .get_mut(token)
            .ok_or_else(|| Refusal::new(401, "Unauthorized: no valid logon session."))
    }

    // ------------------------------------------------------------ resources

    /// Whether a resource exists (a deletion under way does not make it absent).
    pub fn exists(&self, key: &ResourceKey) -> bool {
        if self.deleted.contains(&ResourceKey::job(key.job)) || self.deleted.contains(key) {
            return false;
        }
        let Some(inventory) = &self.inventory else {
            return true;
        };
        let Some(children) = inventory.get(&key.job) else {
            return false;
        };
        match key.kind {
            ResourceKind::Job => true,
            ResourceKind::Include => children.includes.contains(&key.item),
            ResourceKind::LinkedRepository => children.linked_repositories.contains(&key.item),
            ResourceKind::LinkedJob => children.linked_jobs.contains(&key.item),
        }
    }

    /// `GET` on a resource.
    pub fn get_resource(&mut self, key: &ResourceKey, now: Instant) -> Result<(), Refusal> {
        self.settle(now);
        if self.exists(key) {
            Ok(())
        } else {
            Err(Refusal::new(404, key.not_found_message()))
        }
    }

    /// A job's `Name`: the inventory's, else (no inventory) `job-` and the GUID's first
    /// eight hex digits.
    pub fn job_name(&self, job: Uuid) -> String {
        match self.inventory.as_ref().and_then(|i| i.get(&job)) {
            Some(children) => children.name.clone(),
            None => format!("job-{}", &job.simple().to_string()[..8]),
        }
    }

    /// `DELETE` on a resource: starts a task in the caller's session that runs for
    /// `duration` and then succeeds (the resource is gone) or fails (it stays).
    pub fn delete_resource(
        &mut self,
        token: &str,
        key: ResourceKey,
        now: Instant,
        duration: Duration,
        success: bool,
    ) -> Result<TaskView, Refusal> {
        self.settle(now);
        if !self.exists(&key) || self.pending.contains_key(&key) {
            return Err(Refusal::new(404, key.not_found_message()));
        }
        if key.kind == ResourceKind::Include && self.is_last_include(&key) {
            return Err(Refusal::new(
                400,
                "The last object in a job cannot be removed: a job must contain at least one object.",
            ));
        }
        self.next_seq += 1;
        let seq = self.next_seq;
        let finishes_at = now + duration;
        let session = self.session(token)?;
        let task_id = format!("task-{}", session.next_task);
        session.next_task += 1;
        let rec = TaskRec {
            key,
            started_at: now,
            finishes_at,
            success,
            seq,
            seen_ended: false,
        };
        let view = rec.view(&task_id, now);
        session.tasks.insert(task_id, rec);
        self.pending.insert(key, Pending { seq, success });
        self.due.push(Reverse((finishes_at, seq, key)));
        Ok(view)
    }

    /// Strict mode only: no other include of the job would remain.
    fn is_last_include(&self, key: &ResourceKey) -> bool {
        let Some(children) = self.inventory.as_ref().and_then(|i| i.get(&key.job)) else {
            return false;
        };
        !children.includes.iter().any(|item| {
            let other = ResourceKey::child(ResourceKind::Include, key.job, *item);
            *item != key.item
                && !self.deleted.contains(&other)
                && !self.pending.contains_key(&other)
        })
    }

    // ------------------------------------------------------------ tasks

    fn no_such_task(task_id: &str) -> Refusal {
        Refusal::new(
            500,
            format!("There is no task with id [{task_id}] in current rest session"),
        )
    }

    /// Why the caller's session has no task `task_id`: it is another session's (EM's
    /// lost-task 500, as a real EM answers) or nobody's (404).
    fn missing_task(&self, token: &str, task_id: &str) -> Refusal {
        let elsewhere = self
            .sessions
            .iter()
            .any(|(t, s)| t != token && s.tasks.contains_key(task_id));
        if elsewhere {
            Self::no_such_task(task_id)
        } else {
            Refusal::new(404, format!("Task with id [{task_id}] was not found."))
        }
    }

    /// `GET /tasks/{id}` in the caller's session.
    pub fn get_task(
        &mut self,
        token: &str,
        task_id: &str,
        now: Instant,
    ) -> Result<TaskView, Refusal> {
        self.settle(now);
        let found = self.session(token)?.tasks.get_mut(task_id).map(|rec| {
            let sighting = rec.first_sighting(now);
            (rec.view(task_id, now), sighting)
        });
        let Some((view, sighting)) = found else {
            return Err(self.missing_task(token, task_id));
        };
        if let Some(s) = sighting {
            if self.sightings.len() >= KEPT_SIGHTINGS {
                self.sightings.pop_front();
            }
            self.sightings.push_back(s);
        }
        Ok(view)
    }

    /// The tasks polls saw ended, oldest first (the most recent [`KEPT_SIGHTINGS`]).
    pub fn sightings(&self) -> Vec<TaskSighting> {
        self.sightings.iter().copied().collect()
    }

    /// `DELETE /tasks/{id}`: removes the task; a running one is stopped and its deletion
    /// never happens (then `true`). A task of another logon session is not the caller's to
    /// remove: EM answers its lost-task 500, as for a poll.
    pub fn delete_task(
        &mut self,
        token: &str,
        task_id: &str,
        now: Instant,
    ) -> Result<bool, Refusal> {
        self.settle(now);
        let Some(rec) = self.session(token)?.tasks.remove(task_id) else {
            return Err(self.missing_task(token, task_id));
        };
        let running = now < rec.finishes_at;
        if running && self.pending.get(&rec.key).is_some_and(|p| p.seq == rec.seq) {
            self.pending.remove(&rec.key);
        }
        Ok(running)
    }
}

#[cfg(test)]
mod tests;

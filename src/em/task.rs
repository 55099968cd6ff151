//! Calls on a task of reaper's own logon session: polling it (`GET /api/tasks/{id}`) and
//! stopping it (`DELETE /api/tasks/{id}`, seed 000). EM tasks belong to the session that
//! created them, so both first check that the task's session is the current one, and read
//! every sign of a lost task (another session, 401, 404, EM's "no task with id … in current
//! rest session" 500) as one answer: the task is lost to reaper, confirm on the resource.
//!
//! (Deleting a task as a request's own target, `em.task`, is a plain [`EmClient::delete`]:
//! that task was not created by reaper, so no session is checked.)

use super::client::EmClient;
use super::codec::{self, Task};
use super::error::{EmError, ErrorClass, is_lost_task_message};
use crate::http::Answer;
use reqwest::{Method, StatusCode};

/// What a task poll answered.
#[derive(Debug, Clone, PartialEq)]
pub enum Poll {
    Task(Task),
    /// The task belongs to a session that is gone (re-logon, restart, or EM's 500
    /// "no task with id … in current rest session"): confirm the outcome another way.
    SessionLost,
}

/// What stopping a task answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// EM removed the task (204, seed 000): a running task is stopped and its change never
    /// happens; a task that had already finished keeps its effect.
    Stopped { status: u16 },
    /// The task belongs to a session that is gone, or EM no longer knows it: reaper cannot
    /// stop it; confirm the outcome on the resource.
    SessionLost,
}

/// A call on one of the current session's tasks: lost, or EM's answer to read.
enum OwnTask {
    Lost,
    Answered(Answer),
}

impl EmClient {
    /// Polls `GET /api/tasks/{task_id}`, for a task created under session `session_guid`.
    pub async fn get_task(&self, task_id: &str, session_guid: &str) -> Result<Poll, EmError> {
        let answer = match self
            .own_task(Method::GET, task_id, session_guid, "poll")
            .await?
        {
            OwnTask::Lost => return Ok(Poll::SessionLost),
            OwnTask::Answered(answer) => answer,
        };
        match answer.status {
            StatusCode::OK => codec::decode_task(self.format, &answer.body)
                .map(Poll::Task)
                .map_err(|e| EmError::transport(e.to_string())),
            _ => Err(self.error(answer)),
        }
    }

    /// Stops a running task of the current session: `DELETE /api/tasks/{task_id}` (seed 000,
    /// 204), for a task created under session `session_guid`. Budgeted like every call.
    pub async fn stop_task(&self, task_id: &str, session_guid: &str) -> Result<Stop, EmError> {
        let answer = match self
            .own_task(Method::DELETE, task_id, session_guid, "stop_task")
            .await?
        {
            OwnTask::Lost => return Ok(Stop::SessionLost),
            OwnTask::Answered(answer) => answer,
        };
        match answer.status {
            s if s.is_success() => Ok(Stop::Stopped { status: s.as_u16() }),
            _ => Err(self.error(answer)),
        }
    }

    /// Sends `method` on `/api/tasks/{task_id}` when `session_guid` is the current session
    /// (never re-sent after a 401: a renewed session does not know the task).
    async fn own_task(
        &self,
        method: Method,
        task_id: &str,
        session_guid: &str,
        operation: &'static str,
    ) -> Result<OwnTask, EmError> {
        match self.current_session() {
            Some(s) if s.guid == session_guid => {}
            _ => return Ok(OwnTask::Lost),
        }
        // Task ids are checked when EM's answer is decoded; a row recorded before that check
        // existed is followed up by verification rather than by a URL built from it.
        if crate::request::Segment::parse(task_id).is_err() {
            return Ok(OwnTask::Lost);
        }
        let path = format!("/api/tasks/{task_id}");
        let (answer, session) = match self.call(method, &path, operation, false).await {
            Err(e) if e.class == ErrorClass::Unauthorized => return Ok(OwnTask::Lost),
            other => other?,
        };
        if session.guid != session_guid {
            return Ok(OwnTask::Lost);
        }
        match answer.status {
            // 401: the session expired (and was renewed by `call`); 404: EM forgot the task.
            StatusCode::UNAUTHORIZED | StatusCode::NOT_FOUND => Ok(OwnTask::Lost),
            StatusCode::INTERNAL_SERVER_ERROR => {
                let err = self.error(answer);
                if is_lost_task_message(&err.message) {
                    Ok(OwnTask::Lost)
                } else {
                    Err(err)
                }
            }
            _ => Ok(OwnTask::Answered(answer)),
        }
    }
}

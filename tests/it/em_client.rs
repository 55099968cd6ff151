//! The EM client against the simulator over real HTTP: every seed page's call in XML and
//! JSON, the single-flight re-logon, session-scoped tasks, and error bodies.

use reaper::cli::harness::em_settings;
use reaper::config::{EmSettings, Secret};
use reaper::em::codec::{Format, TaskState};
use reaper::em::{DeleteAnswer, EmClient, ErrorClass, Poll, Presence, Stop};
use reaper::health::EndpointHealth;
use reaper::limit::{Budget, Limiter};
use reaper::sim::{Inventory, InventoryJob, SimConfig, SimHandle};
use std::sync::Arc;
use std::time::Duration;

use crate::common::em_http::start_sim as sim;

const JOB: &str = "5b89dae5-6f08-45ec-b068-08f0bd08394a";
const JOB2: &str = "d1b85018-2769-45be-89bc-03f66b60e6cb";
const CHILD: &str = "27a1d57f-7c15-43c6-9162-d05aff1c9bb9";

fn fast() -> SimConfig {
    SimConfig {
        task_duration: (Duration::from_millis(150), Duration::from_millis(150)),
        ..SimConfig::default()
    }
}

fn client(sim: &SimHandle, format: Format) -> EmClient {
    client_with(sim, format, "reaper")
}

fn client_with(sim: &SimHandle, format: Format, password: &str) -> EmClient {
    let budget = Budget {
        rate_per_sec: 0.0,
        burst: 1,
        max_in_flight: 256,
    };
    let settings = EmSettings {
        password: Secret::new(password).into(),
        ..em_settings(sim, format, budget)
    };
    let limiter = Arc::new(Limiter::new(settings.budget));
    let health = Arc::new(EndpointHealth::detached("em"));
    EmClient::new(&settings, limiter, health).unwrap()
}

async fn until_finished(c: &EmClient, task: &str, session: &str) -> reaper::em::codec::Task {
    for _ in 0..100 {
        match c.get_task(task, session).await.unwrap() {
            Poll::Task(t) if t.state.is_terminal() => return t,
            Poll::Task(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            Poll::SessionLost => panic!("session lost"),
        }
    }
    panic!("task {task} never finished")
}

/// Seeds 001–003: DELETE → 202 + Task (Running), GET task → Finished, Success="true", "Ok".
#[tokio::test]
async fn every_seed_delete_answers_a_task_that_finishes_ok_in_xml_and_json() {
    let cases = [
        (format!("/api/jobs/{JOB}"), "DeleteJob"),
        (format!("/api/jobs/{JOB2}/includes/{CHILD}"), "UpdateJob"),
        (
            format!("/api/jobs/{JOB2}/linkedBackupRepositories/{CHILD}"),
            "UpdateJob",
        ),
        (format!("/api/jobs/{JOB2}/linkedJobs/{CHILD}"), "UpdateJob"),
    ];
    for format in [Format::Xml, Format::Json] {
        let s = sim(fast()).await;
        let c = client(&s, format);
        for (path, operation) in &cases {
            let DeleteAnswer::Task {
                task,
                session,
                status,
            } = c.delete(path).await.unwrap()
            else {
                panic!("{path}: expected a task")
            };
            assert_eq!(status, 202);
            assert_eq!(task.state, TaskState::Running);
            assert_eq!(&task.operation, operation);
            assert!(task.task_id.starts_with("task-"));
            assert_eq!(task.links[0].rel, "Delete");
            let done = until_finished(&c, &task.task_id, &session).await;
            assert_eq!(done.state, TaskState::Finished);
            let r = done.finished_result().unwrap();
            assert!(r.success, "{format:?} {path}");
            assert_eq!(r.message, "Ok");
            assert_eq!(
                c.presence(path).await.unwrap(),
                Presence::Absent,
                "{path} is gone"
            );
        }
        let stats = s.stats();
        assert_eq!(stats.logons, 1);
        let accept_calls: u64 = stats.statuses.get("400").copied().unwrap_or(0);
        assert_eq!(
            accept_calls, 0,
            "one Accept value: never a mixed-Accept 400"
        );
        s.shutdown().await;
    }
}

/// Seed 000: DELETE /api/tasks/{id} → 204, and the task is gone.
#[tokio::test]
async fn deleting_a_task_answers_204_in_xml_and_json() {
    for format in [Format::Xml, Format::Json] {
        let s = sim(SimConfig {
            task_duration: (Duration::from_secs(30), Duration::from_secs(30)),
            ..fast()
        })
        .await;
        let c = client(&s, format);
        let (task, session) = started(&c, JOB).await;
        let answer = c.delete(&format!("/api/tasks/{task}")).await.unwrap();
        assert_eq!(answer, DeleteAnswer::Done { status: 204 });
        assert_eq!(
            c.get_task(&task, &session).await.unwrap(),
            Poll::SessionLost,
            "the task is gone"
        );
        assert_eq!(
            c.presence(&format!("/api/jobs/{JOB}")).await.unwrap(),
            Presence::Present,
            "stopped, not deleted"
        );
        s.shutdown().await;
    }
}

#[tokio::test]
async fn two_hundred_concurrent_calls_hitting_a_401_cause_exactly_one_logon() {
    let s = sim(fast()).await;
    let c = Arc::new(client(&s, Format::Xml));
    c.presence(&format!("/api/jobs/{JOB}")).await.unwrap();
    assert_eq!(s.stats().logons, 1);
    s.expire_sessions();
    let calls = (0..200).map(|_| {
        let c = Arc::clone(&c);
        tokio::spawn(async move {
            c.delete(&format!("/api/jobs/{}", uuid::Uuid::new_v4()))
                .await
        })
    });
    for r in futures_util::future::join_all(calls).await {
        assert!(matches!(r.unwrap().unwrap(), DeleteAnswer::Task { .. }));
    }
    let stats = s.stats();
    assert_eq!(stats.logons, 2, "one re-logon for all 200 callers");
    assert_eq!(
        stats.calls.get("DELETE /api/jobs/{id}"),
        Some(&400),
        "each call retried once after its 401"
    );
    s.shutdown().await;
}

#[tokio::test]
async fn a_task_of_a_lost_session_is_reported_lost_not_polled() {
    let s = sim(SimConfig {
        task_duration: (Duration::from_secs(30), Duration::from_secs(30)),
        ..fast()
    })
    .await;
    let c = client(&s, Format::Json);
    let DeleteAnswer::Task { task, session, .. } =
        c.delete(&format!("/api/jobs/{JOB}")).await.unwrap()
    else {
        panic!()
    };
    // EM's own answer for a task unknown to the current session: 500 "… in current rest session".
    s.expire_sessions();
    assert_eq!(
        c.get_task(&task.task_id, &session).await.unwrap(),
        Poll::SessionLost
    );
    // Now a new session exists; the old task id is not asked again.
    let before = s
        .stats()
        .calls
        .get("GET /api/tasks/{id}")
        .copied()
        .unwrap_or(0);
    assert_eq!(
        c.get_task(&task.task_id, &session).await.unwrap(),
        Poll::SessionLost
    );
    assert_eq!(
        s.stats()
            .calls
            .get("GET /api/tasks/{id}")
            .copied()
            .unwrap_or(0),
        before
    );
    assert_ne!(c.session_guid().unwrap(), session);
    s.shutdown().await;
}

#[tokio::test]
async fn em_error_bodies_reach_the_caller_in_both_formats() {
    let inventory = Inventory {
        jobs: vec![InventoryJob {
            id: JOB.parse().unwrap(),
            includes: vec![CHILD.parse().unwrap()],
            ..InventoryJob::default()
        }],
    };
    for format in [Format::Xml, Format::Json] {
        let s = sim(SimConfig {
            inventory: Some(inventory.clone()),
            ..fast()
        })
        .await;
        let c = client(&s, format);
        let last = c
            .delete(&format!("/api/jobs/{JOB}/includes/{CHILD}"))
            .await
            .unwrap_err();
        assert_eq!(
            (last.class, last.status),
            (ErrorClass::Permanent, Some(400))
        );
        assert!(
            last.message.to_lowercase().contains("last"),
            "{}",
            last.message
        );
        let missing = c.delete(&format!("/api/jobs/{JOB2}")).await.unwrap_err();
        assert_eq!(
            (missing.class, missing.status),
            (ErrorClass::NotFound, Some(404))
        );
        assert!(!missing.message.is_empty());
        s.shutdown().await;
    }
}

#[tokio::test]
async fn wrong_credentials_take_the_endpoint_down_after_one_logon_and_never_echo_the_password() {
    let s = sim(SimConfig {
        password: "right".into(),
        ..fast()
    })
    .await;
    let c = client_with(&s, Format::Xml, "hunter2-wrong");
    let e = c.delete(&format!("/api/jobs/{JOB}")).await.unwrap_err();
    assert_eq!(e.class, ErrorClass::Unavailable, "the endpoint is down");
    assert_eq!(e.status, Some(401));
    assert!(!format!("{e} {e:?}").contains("hunter2"), "{e:?}");
    assert!(e.to_string().contains("REAPER_EM_USERNAME"), "{e}");
    assert!(c.health().is_down());
    // Down: the next call is refused without another logon (no account lockout).
    let again = c.delete(&format!("/api/jobs/{JOB}")).await.unwrap_err();
    assert_eq!(again.class, ErrorClass::Unavailable);
    assert!(again.to_string().contains("is down"), "{again}");
    assert_eq!(s.stats().logons_refused, 1);
    // The prober's logon still goes out, and is refused again.
    assert!(c.probe().await.unwrap_err().contains("logon refused"));
    assert_eq!(s.stats().logons_refused, 2);
    s.shutdown().await;
}

#[tokio::test]
async fn log_off_ends_the_session_on_the_server() {
    let s = sim(fast()).await;
    let c = client(&s, Format::Xml);
    c.presence(&format!("/api/jobs/{JOB}")).await.unwrap();
    c.log_off().await.unwrap();
    assert_eq!(s.stats().logoffs, 1);
    assert_eq!(c.session_guid(), None);
    s.shutdown().await;
}

/// The engine's name check: `GET /api/jobs/{id}`, one budgeted call, the `Name` in either
/// format; a job EM does not know is absent; an id that cannot go into a URL is not sent.
#[tokio::test]
async fn job_name_reads_the_name_in_xml_and_json_and_an_unknown_job_is_absent() {
    let inventory = Inventory {
        jobs: vec![
            InventoryJob {
                id: JOB.parse().unwrap(),
                name: Some("prod-crm".into()),
                ..InventoryJob::default()
            },
            InventoryJob {
                id: JOB2.parse().unwrap(),
                ..InventoryJob::default()
            },
        ],
    };
    for format in [Format::Xml, Format::Json] {
        let inventory = Some(inventory.clone());
        let s = sim(SimConfig {
            inventory,
            ..fast()
        })
        .await;
        let c = client(&s, format);
        assert_eq!(c.job_name(JOB).await.unwrap(), "prod-crm");
        assert_eq!(c.job_name(JOB2).await.unwrap(), "job-2");
        let absent = c.job_name(CHILD).await.unwrap_err();
        assert!(absent.is_absent(), "{absent}");
        assert_eq!(absent.status, Some(404));
        let bad = c
            .job_name(&format!("urn:veeam:Job:{JOB}/x"))
            .await
            .unwrap_err();
        assert_eq!(bad.class, ErrorClass::Permanent);
        assert!(bad.to_string().starts_with("not sent to EM"), "{bad}");
        assert_eq!(
            s.stats().count("GET /api/jobs/{id}"),
            3,
            "the bad id is not sent"
        );
        s.shutdown().await;
    }
}

/// Seed 000 for `cancel --stop-running`: a running task of the current session is stopped
/// (204) and its deletion never happens; a task of another or a forgotten session is lost.
#[tokio::test]
async fn stop_task_stops_a_running_task_of_the_current_session_in_xml_and_json() {
    for format in [Format::Xml, Format::Json] {
        let s = sim(SimConfig {
            task_duration: (Duration::from_secs(30), Duration::from_secs(30)),
            ..fast()
        })
        .await;
        let c = client(&s, format);
        let (task, session) = started(&c, JOB).await;
        let stopped = c.stop_task(&task, &session).await.unwrap();
        assert_eq!(stopped, Stop::Stopped { status: 204 });
        assert_eq!(s.stats().tasks_stopped, 1, "it was running");
        let job = format!("/api/jobs/{JOB}");
        assert_eq!(c.presence(&job).await.unwrap(), Presence::Present);
        let again = c.stop_task(&task, &session).await.unwrap();
        assert_eq!(again, Stop::SessionLost, "404: EM no longer knows it");
        let not_ours = c.stop_task(&task, "another-session").await.unwrap();
        assert_eq!(not_ours, Stop::SessionLost);
        assert_eq!(s.stats().count("DELETE /api/tasks/{id}"), 2, "not sent");

        let (task, session) = started(&c, JOB2).await;
        s.expire_sessions();
        assert_eq!(
            c.stop_task(&task, &session).await.unwrap(),
            Stop::SessionLost
        );
        assert_eq!(s.stats().tasks_stopped, 1, "a lost task is not stopped");
        s.shutdown().await;
    }
}

/// Deletes job `id`: its task id and the session it belongs to.
async fn started(c: &EmClient, id: &str) -> (String, String) {
    match c.delete(&format!("/api/jobs/{id}")).await.unwrap() {
        DeleteAnswer::Task { task, session, .. } => (task.task_id, session),
        other => panic!("no task: {other:?}"),
    }
}

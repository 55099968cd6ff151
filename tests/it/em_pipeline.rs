//! Enterprise Manager end to end through RabbitMQ: every EM target type in both formats,
//! session expiry while tasks poll, and the outcomes of refusals, failures, task removal and
//! deletes of what is already gone.

use crate::common::*;
use reaper::em::codec::Format;
use reaper::event::Outcome;
use reaper::request::RequestWire;
use reaper::sim::{Inventory, InventoryJob, SimConfig};
use std::time::Duration;

fn quick() -> SimConfig {
    SimConfig {
        task_duration: (Duration::from_millis(200), Duration::from_millis(300)),
        ..SimConfig::default()
    }
}

fn request(id: &str, target: serde_json::Value) -> RequestWire {
    RequestWire {
        request_id: Some(id.into()),
        target,
        ..Default::default()
    }
}

async fn every_em_type_in(format: Format) {
    let mut env = TestEnv::new(quick()).await;
    env.cfg.em[0].format = format;
    let mut events = env.watcher().await;
    let worker = env.start_worker();
    let (job, child) = (guid(), guid());
    let requests = vec![
        request(
            "job",
            serde_json::json!({"type": "em.job", "job_id": format!("urn:veeam:Job:{job}")}),
        ),
        request(
            "include",
            serde_json::json!({"type": "em.job_include", "job_id": guid(), "include_id": child}),
        ),
        request(
            "repo",
            serde_json::json!({"type": "em.job_linked_repository", "job_id": guid(), "repository_id": guid()}),
        ),
        request(
            "linked",
            serde_json::json!({"type": "em.job_linked_job", "job_id": guid(), "linked_job_id": guid()}),
        ),
    ];
    env.publisher().await.publish_all(&requests).await.unwrap();
    let got = collect(&mut events, 4, Duration::from_secs(30)).await;
    for (id, op) in [
        ("job", "DeleteJob"),
        ("include", "UpdateJob"),
        ("repo", "UpdateJob"),
        ("linked", "UpdateJob"),
    ] {
        let ev = &got[id][0].1;
        assert_eq!(ev.data.outcome, Outcome::Deleted, "{id}: {:?}", ev.data);
        let task = ev.data.task.as_ref().unwrap();
        assert_eq!(task.operation.as_deref(), Some(op), "{id}");
        assert_eq!(task.message.as_deref(), Some("Ok"));
    }
    let stats = env.sim.stats();
    assert_eq!(
        stats.deletes.get(&format!("/api/jobs/{job}")),
        Some(&1),
        "the URN was normalised: {stats:?}"
    );
    assert_eq!(stats.statuses.get("400"), None, "never a mixed Accept list");
    worker.stop().await;
    env.cleanup().await;
}

#[tokio::test]
async fn every_em_target_type_is_deleted_with_xml() {
    every_em_type_in(Format::Xml).await;
}

#[tokio::test]
async fn every_em_target_type_is_deleted_with_json() {
    every_em_type_in(Format::Json).await;
}

#[tokio::test]
async fn session_expiry_while_tasks_poll_ends_every_request_deleted_by_verification_with_one_new_logon()
 {
    let env = TestEnv::new(SimConfig {
        task_duration: (Duration::from_millis(1500), Duration::from_millis(2000)),
        ..SimConfig::default()
    })
    .await;
    let mut events = env.watcher().await;
    let worker = env.start_worker();
    let (_, ledger) = jobs_polling(&env, "exp", 30).await;
    env.sim.expire_sessions();
    let got = collect(&mut events, 30, Duration::from_secs(60)).await;
    assert_each_once(&got, Outcome::Deleted);
    let stats = env.sim.stats();
    assert_eq!(stats.logons, 2, "one new logon, not one per task");
    assert_eq!(
        stats.calls.get("DELETE /api/logonSessions/{id}"),
        Some(&1),
        "the replaced session was logged off: {stats:?}"
    );
    assert!(stats.deletes.values().all(|n| *n == 1));
    assert!(
        stats.calls.get("GET /api/jobs/{id}").copied().unwrap_or(0) >= 30,
        "verified by GET: {stats:?}"
    );
    let history = ledger.history("exp-0").await.unwrap();
    assert!(
        history.iter().any(|t| t.state == "verifying"),
        "{history:?}"
    );
    worker.stop().await;
    env.cleanup().await;
}

#[tokio::test]
async fn refusals_failures_and_absent_resources_end_with_their_outcomes_and_em_messages() {
    let (job, last_include) = (guid(), guid());
    let inventory = Inventory {
        jobs: vec![InventoryJob {
            id: job.parse().unwrap(),
            includes: vec![last_include.parse().unwrap()],
            ..InventoryJob::default()
        }],
    };
    let env = TestEnv::new(SimConfig {
        inventory: Some(inventory),
        ..quick()
    })
    .await;
    let mut events = env.watcher().await;
    let worker = env.start_worker();
    let publisher = env.publisher().await;
    publisher
        .publish_all(&[
            request("last-include", serde_json::json!({"type": "em.job_include", "job_id": job, "include_id": last_include})),
            request("unknown-job", serde_json::json!({"type": "em.job", "job_id": guid()})),
        ])
        .await
        .unwrap();
    let got = collect(&mut events, 2, Duration::from_secs(30)).await;
    let refused = &got["last-include"][0];
    assert_eq!(refused.0, "delete.failed");
    assert_eq!(refused.1.data.outcome, Outcome::Refused);
    let e = refused.1.data.error.as_ref().unwrap();
    assert_eq!(e.http_status, Some(400));
    assert!(
        e.message.to_lowercase().contains("last"),
        "EM's Message: {e:?}"
    );
    let absent = &got["unknown-job"][0];
    assert_eq!(
        absent.0, "delete.succeeded",
        "already_absent counts as success by default"
    );
    assert_eq!(absent.1.data.outcome, Outcome::AlreadyAbsent);
    assert_eq!(absent.1.data.http_status, Some(404));
    assert_eq!(
        env.sim
            .stats()
            .calls
            .get("DELETE /api/jobs/{id}/includes/{id}"),
        Some(&1),
        "a refusal is not retried"
    );
    worker.stop().await;
    env.cleanup().await;
}

#[tokio::test]
async fn a_task_that_fails_ends_task_failed_with_its_message() {
    let env = TestEnv::new(SimConfig {
        task_failure_ratio: 1.0,
        ..quick()
    })
    .await;
    let mut events = env.watcher().await;
    let worker = env.start_worker();
    env.publisher()
        .await
        .publish_all(&[job_request("fails", &guid())])
        .await
        .unwrap();
    let got = collect(&mut events, 1, Duration::from_secs(30)).await;
    let (key, ev) = &got["fails"][0];
    assert_eq!(key, "delete.failed");
    assert_eq!(ev.data.outcome, Outcome::TaskFailed);
    assert_eq!(ev.data.task.as_ref().unwrap().success, Some(false));
    assert!(!ev.data.error.as_ref().unwrap().message.is_empty());
    worker.stop().await;
    env.cleanup().await;
}

#[tokio::test]
async fn removing_a_running_task_answers_204_and_its_job_request_times_out() {
    let mut env = TestEnv::new(SimConfig {
        task_duration: (Duration::from_secs(60), Duration::from_secs(60)),
        ..SimConfig::default()
    })
    .await;
    env.cfg.task_timeout = Duration::from_secs(2);
    let mut events = env.watcher().await;
    let worker = env.start_worker();
    let publisher = env.publisher().await;
    publisher
        .publish_all(&[job_request("slow-job", &guid())])
        .await
        .unwrap();
    let ledger = env.ledger().await;
    wait_until(
        "the job's task is recorded",
        Duration::from_secs(10),
        || async {
            ledger
                .get("slow-job")
                .await
                .unwrap()
                .is_some_and(|r| r.task_id.is_some())
        },
    )
    .await;
    let task_id = ledger
        .get("slow-job")
        .await
        .unwrap()
        .unwrap()
        .task_id
        .unwrap();
    publisher
        .publish_all(&[request(
            "stop-task",
            serde_json::json!({"type": "em.task", "task_id": task_id}),
        )])
        .await
        .unwrap();
    let got = collect(&mut events, 2, Duration::from_secs(30)).await;
    let stop = &got["stop-task"][0].1;
    assert_eq!(stop.data.outcome, Outcome::Deleted);
    assert_eq!(stop.data.http_status, Some(204));
    assert!(stop.data.task.is_none(), "a 204 has no task to follow");
    let job = &got["slow-job"][0].1;
    assert_eq!(
        job.data.outcome,
        Outcome::TimedOut,
        "the stopped task never deleted the job"
    );
    worker.stop().await;
    env.cleanup().await;
}

#[tokio::test]
async fn a_202_without_a_readable_task_is_verified_and_its_delete_never_sent_again() {
    let env = TestEnv::new(SimConfig {
        unreadable_task_ratio: 1.0,
        ..quick()
    })
    .await;
    let mut events = env.watcher().await;
    let worker = env.start_worker();
    let requests: Vec<_> = (0..20)
        .map(|i| job_request(&format!("garbled-{i}"), &guid()))
        .collect();
    env.publisher().await.publish_all(&requests).await.unwrap();
    let got = collect(&mut events, 20, Duration::from_secs(60)).await;
    assert_each_once(&got, Outcome::Deleted);
    for (id, evs) in &got {
        assert_eq!(evs[0].1.data.http_status, Some(202), "{id}");
        assert_eq!(evs[0].1.data.attempts, 1, "{id}");
    }
    let stats = env.sim.stats();
    assert_eq!(stats.deletes.len(), 20, "{stats:?}");
    assert!(
        stats.deletes.values().all(|n| *n == 1),
        "exactly one DELETE per resource: {:?}",
        stats.deletes
    );
    assert!(
        stats.calls.get("GET /api/jobs/{id}").copied().unwrap_or(0) >= 20,
        "each deletion was confirmed on the resource: {stats:?}"
    );
    worker.stop().await;
    env.cleanup().await;
}

#[tokio::test]
async fn tasks_that_finish_while_the_worker_is_down_past_the_task_timeout_end_deleted() {
    let mut env = TestEnv::new(SimConfig {
        task_duration: (Duration::from_secs(2), Duration::from_secs(2)),
        ..SimConfig::default()
    })
    .await;
    env.cfg.task_timeout = Duration::from_secs(3);
    let mut events = env.watcher().await;
    let worker = env.start_worker();
    let (_, ledger) = jobs_polling(&env, "down", 10).await;
    worker.kill().await;
    // Down longer than the task timeout; the tasks finish meanwhile.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let worker = env.start_worker();
    let got = collect(&mut events, 10, Duration::from_secs(60)).await;
    assert_each_once(&got, Outcome::Deleted);
    let stats = env.sim.stats();
    assert!(
        stats.deletes.values().all(|n| *n == 1),
        "{:?}",
        stats.deletes
    );
    drop(ledger);
    worker.stop().await;
    env.cleanup().await;
}

#[tokio::test]
async fn a_restart_with_thousands_of_open_tasks_spreads_them_and_serves_a_new_request() {
    let mut env = TestEnv::new(SimConfig {
        task_duration: (Duration::from_secs(600), Duration::from_secs(600)),
        ..SimConfig::default()
    })
    .await;
    // Polls far apart, so that the calls counted below are the resumed verifications alone,
    // not the next polls of tasks verified already.
    env.cfg.poll = reaper::retry::Backoff {
        initial: Duration::from_secs(60),
        max: Duration::from_secs(60),
        ..reaper::retry::Backoff::POLL
    };
    let mut events = env.watcher().await;
    let worker = env.start_worker();
    let (_, ledger) = jobs_polling(&env, "open", 2000).await;
    worker.kill().await;
    let before = env.sim.stats().total_calls;
    let restarted = std::time::Instant::now();
    let worker = env.start_worker();
    let newcomer = request(
        "newcomer",
        serde_json::json!({"type": "em.task", "task_id": "task-999999"}),
    );
    env.publisher()
        .await
        .publish_all(&[newcomer])
        .await
        .unwrap();
    let got = collect(&mut events, 1, Duration::from_secs(20)).await;
    assert_eq!(got["newcomer"][0].1.data.outcome, Outcome::AlreadyAbsent);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let window = env.sim.stats().total_calls - before;
    let elapsed = restarted.elapsed().as_secs_f64();
    // Without a budget, the 2000 verifications resume at 100 a second (a slow machine only
    // makes that slower), not all at once: the calls since the restart stay near that pace.
    assert!(
        (window as f64) <= 100.0 * elapsed + 100.0,
        "no burst of calls after the restart: {window} calls in {elapsed:.1} s"
    );
    assert!(window > 0, "the backlog resumes");
    drop(ledger);
    worker.stop().await;
    env.cleanup().await;
}

#[tokio::test]
async fn a_task_of_another_logon_session_is_refused_and_says_why() {
    let env = TestEnv::new(SimConfig {
        task_duration: (Duration::from_secs(600), Duration::from_secs(600)),
        ..SimConfig::default()
    })
    .await;
    // Another client (an operator's script) starts a task in its own logon session.
    let settings = env.cfg.em[0].clone();
    let limiter = std::sync::Arc::new(reaper::limit::Limiter::new(settings.budget));
    let health = std::sync::Arc::new(reaper::health::EndpointHealth::detached("other"));
    let other = reaper::em::EmClient::new(&settings, limiter, health).unwrap();
    let answer = other
        .delete(&format!("/api/jobs/{}", guid()))
        .await
        .unwrap();
    let reaper::em::DeleteAnswer::Task { task, .. } = answer else {
        panic!("{answer:?}")
    };
    let mut events = env.watcher().await;
    let worker = env.start_worker();
    env.publisher()
        .await
        .publish_all(&[request(
            "foreign-task",
            serde_json::json!({"type": "em.task", "task_id": task.task_id}),
        )])
        .await
        .unwrap();
    let got = collect(&mut events, 1, Duration::from_secs(30)).await;
    let data = &got["foreign-task"][0].1.data;
    assert_eq!(data.outcome, Outcome::Refused);
    assert_eq!(data.attempts, 1, "refused at once, not retried");
    let message = &data.error.as_ref().unwrap().message;
    assert!(
        message.contains("belong to the logon session that created them"),
        "{message}"
    );
    worker.stop().await;
    other.log_off().await.unwrap();
    env.cleanup().await;
}

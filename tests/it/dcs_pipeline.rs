//! DCS requests end to end: RabbitMQ → intake → ledger → the simulated DCS (and IAM) over
//! HTTP → outbox → events, mixed with EM requests, through token expiry, still-running tasks,
//! API-gateway throttling and refusals.

use crate::common::*;
use reaper::config::{DcsAuth, Secret};
use reaper::event::{CloudEvent, Outcome};
use reaper::sim::SimConfig;
use std::collections::HashMap;
use std::time::Duration;

const PROJECT: &str = "a4d31cb6-3d72-4fdc-8ec9-6e3a41e47f71";
const OTHER_PROJECT: &str = "0605767c8f8c4e5ea8bb0e0d6e9d9c5f";
const INSTANCE: &str = "5560df16-cebf-4473-95c4-d1b573c16e79";
const DELETE_KEY: &str = "DELETE /v2/{project_id}/instances/{instance_id}/tasks/{task_id}";

fn quick_tasks() -> SimConfig {
    SimConfig {
        task_duration: (Duration::from_millis(200), Duration::from_millis(400)),
        ..SimConfig::default()
    }
}

/// The one event of each request, asserting there is exactly one.
fn one_each(
    got: &HashMap<String, Vec<(String, CloudEvent)>>,
) -> HashMap<String, (String, CloudEvent)> {
    got.iter()
        .map(|(id, evs)| {
            assert_eq!(evs.len(), 1, "exactly one event for {id}: {evs:?}");
            (id.clone(), evs[0].clone())
        })
        .collect()
}

fn dcs_batch(prefix: &str, n: usize, project: &str) -> Vec<reaper::request::RequestWire> {
    (0..n)
        .map(|i| dcs_request(&format!("{prefix}-{i}"), project, INSTANCE, &task_id()))
        .collect()
}

#[tokio::test]
async fn a_mixed_batch_of_em_and_dcs_requests_gets_one_correct_event_each() {
    let env = TestEnv::new(quick_tasks()).await;
    let env = env.with_iam_dcs();
    let mut events = env.watcher().await;
    let worker = env.start_worker();

    let gone = task_id();
    let mut requests: Vec<_> = (0..15)
        .map(|i| job_request(&format!("em-{i}"), &guid()))
        .collect();
    requests.extend(dcs_batch("dcs-a", 10, PROJECT));
    requests.extend(dcs_batch("dcs-b", 5, OTHER_PROJECT));
    requests.push(dcs_request("dcs-gone-1", PROJECT, INSTANCE, &gone));
    env.publisher().await.publish_all(&requests).await.unwrap();
    let first = collect(&mut events, requests.len(), Duration::from_secs(60)).await;
    // The same task again, as a new request: DCS answers 404 → already_absent.
    let again = dcs_request("dcs-gone-2", PROJECT, INSTANCE, &gone);
    let bad = dcs_request("dcs-bad-id", PROJECT, INSTANCE, "not-hex");
    env.publisher()
        .await
        .publish_all(&[again, bad])
        .await
        .unwrap();
    let second = collect(&mut events, 2, Duration::from_secs(30)).await;

    let got = one_each(&first);
    assert_eq!(got.len(), 31);
    for r in &requests {
        let id = r.request_id.as_ref().unwrap();
        let (key, ev) = &got[id];
        assert_eq!(key, "delete.succeeded", "{id}: {:?}", ev.data);
        assert_eq!(ev.data.outcome, Outcome::Deleted);
        assert_eq!(ev.data.attempts, 1);
        assert_eq!(ev.data.target.as_ref().unwrap(), &r.target);
        if id.starts_with("em-") {
            assert_eq!(ev.data.http_status, Some(202));
            assert!(ev.data.task.is_some());
        } else {
            assert_eq!(ev.data.http_status, Some(200));
            assert_eq!(ev.data.task, None, "DCS deletes synchronously: no task");
            assert_eq!(ev.data.error, None);
        }
    }
    let second = one_each(&second);
    let (key, ev) = &second["dcs-gone-2"];
    assert_eq!(key, "delete.succeeded");
    assert_eq!(ev.data.outcome, Outcome::AlreadyAbsent);
    let e = ev.data.error.as_ref().unwrap();
    assert_eq!(
        (e.http_status, e.code.as_deref()),
        (Some(404), Some("DCS.4001"))
    );
    let (key, ev) = &second["dcs-bad-id"];
    assert_eq!(key, "delete.failed");
    assert_eq!(ev.data.outcome, Outcome::Refused);
    let e = ev.data.error.as_ref().unwrap();
    assert_eq!(
        (e.http_status, e.code.as_deref()),
        (Some(400), Some("DCS.4070"))
    );
    assert_eq!(e.message, "Invalid task ID format.");

    let stats = env.sim.stats();
    assert_eq!(stats.calls.get(DELETE_KEY), Some(&18), "{stats:?}");
    assert_eq!(stats.calls.get("DELETE /api/jobs/{id}"), Some(&15));
    let gone_path = format!("/v2/{PROJECT}/instances/{INSTANCE}/tasks/{gone}");
    for (path, n) in &stats.deletes {
        let want = if *path == gone_path { 2 } else { 1 };
        assert_eq!(*n, want, "{path}");
    }
    assert_eq!(stats.token_issues, 2, "one IAM token per project");
    assert_eq!(stats.logons, 1);
    worker.stop().await;
    env.cleanup().await;
}

#[tokio::test]
async fn tokens_expiring_mid_batch_are_renewed_once_per_expiry_and_no_request_fails() {
    let env = TestEnv::new(SimConfig::default()).await;
    let mut env = env.with_iam_dcs();
    // Stretch the batch over about three seconds.
    env.cfg.dcs[0].budget.rate_per_sec = 10.0;
    env.cfg.dcs[0].budget.burst = 1;
    let mut events = env.watcher().await;
    let worker = env.start_worker();
    let requests = dcs_batch("exp", 30, PROJECT);
    env.publisher().await.publish_all(&requests).await.unwrap();

    wait_until(
        "ten deletes went through",
        Duration::from_secs(30),
        || async { env.sim.stats().statuses.get("200").copied().unwrap_or(0) >= 10 },
    )
    .await;
    env.sim.expire_dcs_tokens();
    let got = one_each(&collect(&mut events, 30, Duration::from_secs(60)).await);
    for (id, (_, ev)) in &got {
        assert_eq!(ev.data.outcome, Outcome::Deleted, "{id}: {:?}", ev.data);
        assert_eq!(ev.data.attempts, 1, "the 401 is retried inside the attempt");
    }
    let stats = env.sim.stats();
    assert_eq!(
        stats.token_issues, 2,
        "one token, one renewal after the expiry: {stats:?}"
    );
    assert!(stats.statuses.get("401").is_some_and(|n| *n >= 1));
    assert_eq!(stats.statuses.get("200"), Some(&30));
    worker.stop().await;
    env.cleanup().await;
}

#[tokio::test]
async fn short_lived_tokens_are_renewed_before_expiry_once_each() {
    let ttl = Duration::from_secs(2);
    let env = TestEnv::new(SimConfig {
        dcs_token_ttl: ttl,
        ..SimConfig::default()
    })
    .await;
    let mut env = env.with_iam_dcs();
    env.cfg.dcs[0].budget.rate_per_sec = 10.0;
    env.cfg.dcs[0].budget.burst = 1;
    let mut events = env.watcher().await;
    let worker = env.start_worker();
    let started = std::time::Instant::now();
    env.publisher()
        .await
        .publish_all(&dcs_batch("ttl", 40, PROJECT))
        .await
        .unwrap();
    let got = one_each(&collect(&mut events, 40, Duration::from_secs(60)).await);
    let elapsed = started.elapsed();
    assert!(
        got.values()
            .all(|(_, ev)| ev.data.outcome == Outcome::Deleted)
    );
    let stats = env.sim.stats();
    // A token is renewed when 90% of its life is over: at most one per 1.8 s of batch.
    let most = (elapsed.as_secs_f64() / (ttl.as_secs_f64() * 0.9)).ceil() as u64 + 1;
    assert!(
        (2..=most).contains(&stats.token_issues),
        "{} tokens in {elapsed:?}: {stats:?}",
        stats.token_issues
    );
    assert_eq!(stats.statuses.get("200"), Some(&40));
    worker.stop().await;
    env.cleanup().await;
}

#[tokio::test]
async fn a_task_still_executing_is_retried_until_it_is_deleted() {
    let env = TestEnv::new(SimConfig {
        dcs_task_executing_for: Duration::from_secs(1),
        ..SimConfig::default()
    })
    .await;
    let mut env = env.with_iam_dcs();
    env.cfg.max_attempts = 40;
    let mut events = env.watcher().await;
    let worker = env.start_worker();
    let requests = dcs_batch("busy", 5, PROJECT);
    env.publisher().await.publish_all(&requests).await.unwrap();
    let got = one_each(&collect(&mut events, 5, Duration::from_secs(60)).await);
    for (id, (key, ev)) in &got {
        assert_eq!(key, "delete.succeeded");
        assert_eq!(ev.data.outcome, Outcome::Deleted, "{id}: {:?}", ev.data);
        assert!(ev.data.attempts >= 2, "{id} was retried: {:?}", ev.data);
        assert_eq!(ev.data.error, None);
    }
    let stats = env.sim.stats();
    assert!(
        stats.statuses.get("400").is_some_and(|n| *n >= 5),
        "{stats:?}"
    );
    assert_eq!(stats.statuses.get("200"), Some(&5));
    // The retry history is in the ledger.
    let ledger = env.ledger().await;
    let counts = ledger.counts().await.unwrap();
    assert_eq!(
        (counts[0].state.as_str(), counts[0].count),
        ("succeeded", 5)
    );
    worker.stop().await;
    env.cleanup().await;
}

#[tokio::test]
async fn a_throttling_gateway_slows_the_batch_down_and_every_request_succeeds() {
    let env = TestEnv::new(SimConfig {
        dcs_rate_limit: Some(5),
        ..SimConfig::default()
    })
    .await;
    let mut env = env.with_iam_dcs();
    env.cfg.max_attempts = 30;
    let mut events = env.watcher().await;
    let worker = env.start_worker();
    let requests = dcs_batch("thr", 20, PROJECT);
    env.publisher().await.publish_all(&requests).await.unwrap();
    let got = one_each(&collect(&mut events, 20, Duration::from_secs(90)).await);
    assert!(
        got.values()
            .all(|(k, ev)| k == "delete.succeeded" && ev.data.outcome == Outcome::Deleted),
        "{got:?}"
    );
    let stats = env.sim.stats();
    assert!(
        stats.statuses.get("429").is_some_and(|n| *n >= 1),
        "{stats:?}"
    );
    assert_eq!(stats.deletes.len(), 20);
    assert!(
        stats.deletes.values().all(|n| *n == 1),
        "each task deleted once"
    );
    assert!(stats.max_calls_per_second <= 40, "{stats:?}");
    worker.stop().await;
    env.cleanup().await;
}

#[tokio::test]
async fn a_refused_dcs_delete_reports_the_error_code_message_and_request_id() {
    let env = TestEnv::new(SimConfig {
        dcs_static_token: Some("static-pipeline-token".into()),
        dcs_forbidden_projects: vec![OTHER_PROJECT.into()],
        ..SimConfig::default()
    })
    .await;
    let mut env = env.with_dcs(DcsAuth::Static(Secret::new("static-pipeline-token").into()));
    env.cfg.dcs[0].not_found_is_absent = false;
    let mut events = env.watcher().await;
    let worker = env.start_worker();
    let gone = task_id();
    let requests = vec![
        dcs_request("ok", PROJECT, INSTANCE, &gone),
        dcs_request("forbidden", OTHER_PROJECT, INSTANCE, &task_id()),
    ];
    env.publisher().await.publish_all(&requests).await.unwrap();
    let first = one_each(&collect(&mut events, 2, Duration::from_secs(30)).await);
    env.publisher()
        .await
        .publish_all(&[dcs_request("gone", PROJECT, INSTANCE, &gone)])
        .await
        .unwrap();
    let second = one_each(&collect(&mut events, 1, Duration::from_secs(30)).await);

    assert_eq!(first["ok"].1.data.outcome, Outcome::Deleted);
    let (key, ev) = &first["forbidden"];
    assert_eq!(key, "delete.failed");
    assert_eq!(ev.data.outcome, Outcome::Refused);
    assert_eq!(ev.data.http_status, Some(403));
    assert_eq!(ev.data.attempts, 1, "a refusal is not retried");
    let e = ev.data.error.as_ref().unwrap();
    assert_eq!(e.kind, "http");
    assert_eq!(e.http_status, Some(403));
    assert_eq!(e.code.as_deref(), Some("DCS.2003"));
    assert!(e.message.contains("No permission"), "{e:?}");
    let rid = e.request_id.as_deref().expect("X-Request-Id is carried");
    assert_eq!(rid.len(), 32);

    // REAPER_DCS_NOT_FOUND=refused: a 404 is a refusal, not already_absent.
    let (key, ev) = &second["gone"];
    assert_eq!(key, "delete.failed");
    assert_eq!(ev.data.outcome, Outcome::Refused);
    let e = ev.data.error.as_ref().unwrap();
    assert_eq!(
        (e.http_status, e.code.as_deref()),
        (Some(404), Some("DCS.4001"))
    );
    assert!(e.request_id.is_some());
    let json = first["forbidden"].1.to_json();
    assert!(json.contains(rid), "the event carries X-Request-Id: {json}");
    assert!(!json.contains("static-pipeline-token"));
    assert_eq!(env.sim.stats().token_issues, 0);
    worker.stop().await;
    env.cleanup().await;
}

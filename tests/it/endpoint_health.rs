//! Endpoint health end to end (design 1.7): a wrong EM password, IAM refusing the DCS
//! password, and an EM that refuses connections each make the endpoint `down`. Meanwhile no
//! request ends and no attempt is spent, a handful of probes reach the endpoint, `/readyz` is
//! 503 naming it, and `endpoint.down` is published; once the secret file is fixed (or the EM
//! answers) every request is deleted without a restart, and `endpoint.up` is published.

use crate::common::*;
use reaper::broker::client::{Event, EventWatcher};
use reaper::config::{DcsAuth, SecretSource};
use reaper::event::{EndpointEvent, Outcome};
use reaper::ledger::Ledger;
use reaper::metrics::Health;
use reaper::request::RequestWire;
use reaper::sim::SimConfig;
use std::sync::Arc;
use std::time::Duration;

const N: usize = 50;
const PROJECT: &str = "a4d31cb6-3d72-4fdc-8ec9-6e3a41e47f71";
const INSTANCE: &str = "5560df16-cebf-4473-95c4-d1b573c16e79";
const WRONG: &str = "wrong-Pa55-word-4711";

fn quick() -> SimConfig {
    SimConfig {
        task_duration: (Duration::from_millis(200), Duration::from_millis(300)),
        ..SimConfig::default()
    }
}

fn em_batch(prefix: &str) -> Vec<RequestWire> {
    (0..N)
        .map(|i| job_request(&format!("{prefix}-{i}"), &guid()))
        .collect()
}

fn dcs_batch(prefix: &str) -> Vec<RequestWire> {
    (0..N)
        .map(|i| dcs_request(&format!("{prefix}-{i}"), PROJECT, INSTANCE, &task_id()))
        .collect()
}

/// A secret file holding `value`.
fn secret_file(env: &TestEnv, name: &str, value: &str) -> (std::path::PathBuf, SecretSource) {
    let path = env.dir.path().join(name);
    std::fs::write(&path, format!("{value}\n")).unwrap();
    let source = SecretSource::file(&path).unwrap();
    (path, source)
}

/// While `endpoint` is in trouble: for 10 s no request ends; no attempt is spent; `/readyz`
/// is 503 with the endpoint down for a reason mentioning `why`; `reaper_endpoint_up` is 0;
/// one `endpoint.down` event was published, without the secret.
async fn assert_held(
    events: &mut EventWatcher,
    metrics: &str,
    ledger: &Ledger,
    endpoint: &str,
    requests: &[RequestWire],
    why: &str,
) {
    let early = tokio::time::timeout(Duration::from_secs(10), events.next()).await;
    assert!(early.is_err(), "a request ended: {early:?}");
    for r in requests {
        let id = r.request_id.as_deref().unwrap();
        let row = ledger.get(id).await.unwrap().expect("recorded");
        assert_eq!(row.attempts, 0, "{id}: no attempt spent");
        assert!(row.outcome.is_none(), "{id}");
    }
    let (status, body) = readyz(metrics).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["broker"], "consuming", "{body}");
    let ep = &body["endpoints"][endpoint];
    assert_eq!(ep["state"], "down", "{body}");
    assert!(ep["reason"].as_str().unwrap().contains(why), "{body}");
    assert!(ep["since"].as_str().is_some(), "{body}");
    assert!(!body.to_string().contains(WRONG));
    let text = metrics_text(metrics).await;
    let gauge = format!("reaper_endpoint_up{{endpoint=\"{endpoint}\"}} 0");
    assert!(text.contains(&gauge), "{text}");
    assert!(text.contains("reaper_ready 0"), "{text}");
    let downs = events.take_endpoint_events();
    assert_eq!(downs.len(), 1, "one event for one change: {downs:?}");
    let (key, ev) = &downs[0];
    assert_eq!(key, "endpoint.down");
    assert_endpoint_event(ev, endpoint, "down");
    assert!(ev.data.reason.contains(why), "{:?}", ev.data);
}

fn assert_endpoint_event(ev: &EndpointEvent, endpoint: &str, state: &str) {
    assert_eq!(ev.kind, format!("reaper.endpoint.{state}"));
    assert_eq!(ev.subject.as_deref(), Some(endpoint));
    assert_eq!(
        (ev.data.endpoint.as_str(), ev.data.state.as_str()),
        (endpoint, state)
    );
    assert_eq!(ev.time, ev.data.since);
    let json = serde_json::to_string(ev).unwrap();
    assert!(!json.contains(WRONG), "no secret in the event: {json}");
}

/// Once the trouble is over: every request is deleted (once), `endpoint.up` is published,
/// `/readyz` is 200 with the endpoint up.
async fn assert_released(
    events: &mut EventWatcher,
    metrics: &str,
    endpoint: &str,
    timeout: Duration,
) {
    let got = collect(events, N, timeout).await;
    assert_each_once(&got, Outcome::Deleted);
    let mut ups = events.take_endpoint_events();
    if ups.is_empty() {
        let next = tokio::time::timeout(Duration::from_secs(10), events.next_event()).await;
        match next.expect("endpoint.up is published").unwrap() {
            (key, Event::Endpoint(ev)) => ups.push((key, *ev)),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(ups.len(), 1, "{ups:?}");
    assert_eq!(ups[0].0, "endpoint.up");
    assert_endpoint_event(&ups[0].1, endpoint, "up");
    let (status, body) = readyz(metrics).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["endpoints"][endpoint]["state"], "up", "{body}");
}

#[tokio::test]
async fn a_wrong_em_password_file_holds_every_request_until_the_file_is_fixed() {
    let mut env = TestEnv::new(quick()).await;
    let (path, password) = secret_file(&env, "em-password", WRONG);
    env.cfg.em[0].password = password;
    let health = Arc::new(Health::default());
    let metrics = serve_metrics(&env, Arc::clone(&health)).await;
    let mut events = env.watcher().await;
    let worker = Worker::start_with(env.cfg.clone(), health);
    let requests = em_batch("pw");
    env.publisher().await.publish_all(&requests).await.unwrap();
    let ledger = env.ledger().await;

    assert_held(
        &mut events,
        &metrics,
        &ledger,
        "em",
        &requests,
        "logon refused",
    )
    .await;
    let stats = env.sim.stats();
    assert_eq!(stats.logons, 0);
    assert!(
        (1..=6).contains(&stats.logons_refused),
        "a handful of logons, not one per request: {stats:?}"
    );
    assert!(stats.deletes.is_empty(), "{stats:?}");

    std::fs::write(&path, "reaper\n").unwrap();
    assert_released(&mut events, &metrics, "em", Duration::from_secs(60)).await;
    let stats = env.sim.stats();
    assert_eq!(stats.logons, 1, "one logon serves every request: {stats:?}");
    assert!(stats.deletes.values().all(|n| *n == 1), "{stats:?}");
    worker.stop().await;
    env.cleanup().await;
}

#[tokio::test]
async fn iam_refusing_the_dcs_password_file_holds_every_request_until_the_file_is_fixed() {
    let env = TestEnv::new(quick()).await;
    let (path, password) = secret_file(&env, "dcs-password", WRONG);
    let auth = match iam_auth(&env.sim) {
        DcsAuth::Iam {
            iam_url,
            domain,
            username,
            ..
        } => DcsAuth::Iam {
            iam_url,
            domain,
            username,
            password,
        },
        other => panic!("{other:?}"),
    };
    let env = env.with_dcs(auth);
    let health = Arc::new(Health::default());
    let metrics = serve_metrics(&env, Arc::clone(&health)).await;
    let mut events = env.watcher().await;
    let worker = Worker::start_with(env.cfg.clone(), health);
    let requests = dcs_batch("iam");
    env.publisher().await.publish_all(&requests).await.unwrap();
    let ledger = env.ledger().await;

    assert_held(
        &mut events,
        &metrics,
        &ledger,
        "dcs",
        &requests,
        "IAM refused",
    )
    .await;
    let stats = env.sim.stats();
    let asked = stats
        .calls
        .get("POST /v3/auth/tokens")
        .copied()
        .unwrap_or(0);
    assert!(
        (1..=6).contains(&asked),
        "a handful of IAM calls: {stats:?}"
    );
    assert_eq!(stats.token_issues, 0);
    assert!(stats.deletes.is_empty(), "{stats:?}");
    let (_, body) = readyz(&metrics).await;
    assert_eq!(
        body["endpoints"]["em"]["state"], "up",
        "EM is not affected: {body}"
    );

    std::fs::write(&path, "reaper\n").unwrap();
    assert_released(&mut events, &metrics, "dcs", Duration::from_secs(60)).await;
    let stats = env.sim.stats();
    assert_eq!(
        stats.token_issues, 1,
        "one token for the one project: {stats:?}"
    );
    assert!(stats.deletes.values().all(|n| *n == 1), "{stats:?}");
    worker.stop().await;
    env.cleanup().await;
}

#[tokio::test]
async fn a_deadline_still_applies_while_the_endpoint_is_down() {
    let mut env = TestEnv::new(quick()).await;
    env.cfg.em[0].url = format!("http://127.0.0.1:{}", free_port());
    let health = Arc::new(Health::default());
    let metrics = serve_metrics(&env, Arc::clone(&health)).await;
    let mut events = env.watcher().await;
    let worker = Worker::start_with(env.cfg.clone(), health);
    let deadline = chrono::Utc::now() + chrono::Duration::seconds(3);
    let late = RequestWire {
        not_after: Some(deadline.to_rfc3339()),
        ..job_request("deadline-1", &guid())
    };
    let waiting = job_request("deadline-2", &guid());
    env.publisher()
        .await
        .publish_all(&[late, waiting])
        .await
        .unwrap();
    let got = collect(&mut events, 1, Duration::from_secs(30)).await;
    let (key, ev) = &got["deadline-1"][0];
    assert_eq!(
        (key.as_str(), ev.data.outcome),
        ("delete.failed", Outcome::Expired)
    );
    assert_eq!(
        ev.data.attempts, 0,
        "the attempt that met the trouble was given back"
    );
    let finished = ev.data.finished_at.unwrap().timestamp_millis();
    assert!(finished >= deadline.timestamp_millis());
    assert_eq!(readyz(&metrics).await.0, 503, "still down when it expired");
    let ledger = env.ledger().await;
    let other = ledger.get("deadline-2").await.unwrap().unwrap();
    assert!(other.outcome.is_none(), "the other request waits");
    worker.stop().await;
    env.cleanup().await;
}

#[tokio::test]
async fn an_em_that_refuses_connections_holds_every_request_until_it_answers() {
    let mut env = TestEnv::new(quick()).await;
    let port = free_port();
    env.cfg.em[0].url = format!("http://127.0.0.1:{port}");
    let health = Arc::new(Health::default());
    let metrics = serve_metrics(&env, Arc::clone(&health)).await;
    let mut events = env.watcher().await;
    let worker = Worker::start_with(env.cfg.clone(), health);
    let requests = em_batch("conn");
    env.publisher().await.publish_all(&requests).await.unwrap();
    let ledger = env.ledger().await;

    assert_held(
        &mut events,
        &metrics,
        &ledger,
        "em",
        &requests,
        "connection",
    )
    .await;
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    let em = reaper::sim::spawn(quick(), addr)
        .await
        .expect("the port is free");
    // Probes back off to 16 s by now: the next one finds the EM.
    assert_released(&mut events, &metrics, "em", Duration::from_secs(90)).await;
    let stats = em.stats();
    assert_eq!(stats.logons, 1, "{stats:?}");
    assert_eq!(stats.deletes.len(), N, "{stats:?}");
    assert!(stats.deletes.values().all(|n| *n == 1), "{stats:?}");
    worker.stop().await;
    em.shutdown().await;
    env.cleanup().await;
}

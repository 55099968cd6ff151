//! Unit tests of one step: the engine, a real ledger file and the simulator over real HTTP,
//! without the broker. Each test moves one request by calling `step` itself, so what a single
//! step writes to the ledger and sends to the remote is seen on its own.

use super::super::Engine;
use crate::config::{Config, EmSettings, Secret};
use crate::em::EmClient;
use crate::em::codec::Format;
use crate::event::CloudEvent;
use crate::health::EndpointHealth;
use crate::http::HttpSettings;
use crate::ledger::{Ledger, RequestRow, State, now_ms};
use crate::limit::{Budget, Limiter};
use crate::request::DeleteRequest;
use crate::sim::{SimConfig, SimHandle};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// One engine with one EM endpoint (`em`) on its own simulator and ledger file.
struct World {
    sim: SimHandle,
    _dir: tempfile::TempDir,
    ledger: Ledger,
    engine: Engine,
    health: Arc<EndpointHealth>,
}

impl World {
    async fn new(sim: SimConfig, tune: impl FnOnce(&mut Config)) -> World {
        let sim = crate::sim::spawn(sim, "127.0.0.1:0".parse().unwrap())
            .await
            .expect("the simulator starts");
        let dir = tempfile::tempdir().unwrap();
        let settings = EmSettings {
            name: "em".into(),
            url: sim.base_url(),
            username: "reaper".into(),
            password: Secret::new("reaper").into(),
            format: Format::Xml,
            http: HttpSettings::default(),
            budget: Budget {
                rate_per_sec: 0.0,
                burst: 100,
                max_in_flight: 16,
            },
        };
        let mut cfg = Config {
            ledger: dir.path().join("ledger.db"),
            em: vec![settings.clone()],
            ..Config::default()
        };
        tune(&mut cfg);
        let health = Arc::new(EndpointHealth::detached("em"));
        let limiter = Arc::new(Limiter::new(settings.budget));
        let client = EmClient::new(&settings, limiter, Arc::clone(&health)).unwrap();
        let ledger = Ledger::open(&cfg.ledger).await.unwrap();
        let em = HashMap::from([("em".to_string(), Arc::new(client))]);
        let protections = crate::guard::Protections::load(&cfg).unwrap();
        let engine = Engine::new(
            ledger.clone(),
            Arc::new(cfg),
            em,
            HashMap::new(),
            protections,
            Arc::new(Notify::new()),
        );
        World {
            sim,
            _dir: dir,
            ledger,
            engine,
            health,
        }
    }

    /// Records the request `body` (JSON) for endpoint `em`, as intake does.
    async fn accept(&self, body: serde_json::Value) -> String {
        let req = DeleteRequest::decode(body.to_string().as_bytes(), None).unwrap();
        self.ledger.accept(&req, "em", now_ms()).await.unwrap();
        body["request_id"].as_str().unwrap().to_string()
    }

    async fn row(&self, id: &str) -> RequestRow {
        self.ledger
            .get(id)
            .await
            .unwrap()
            .expect("the request is recorded")
    }

    /// One step of request `id`, as the scheduler would run it; returns the row after it.
    async fn step(&self, id: &str) -> RequestRow {
        self.engine.step(self.row(id).await).await.unwrap();
        self.row(id).await
    }

    /// The events in the outbox, oldest first, with their routing keys.
    async fn outbox(&self) -> Vec<(String, CloudEvent)> {
        let rows = self.ledger.pending_events(i64::MAX, 100).await.unwrap();
        rows.into_iter()
            .map(|r| (r.routing_key, serde_json::from_str(&r.payload).unwrap()))
            .collect()
    }
}

fn quick() -> SimConfig {
    SimConfig {
        task_duration: (Duration::from_millis(50), Duration::from_millis(50)),
        ..SimConfig::default()
    }
}

fn job(request_id: &str) -> serde_json::Value {
    let job_id = uuid::Uuid::new_v4().to_string();
    serde_json::json!({"request_id": request_id, "target": {"type": "em.job", "job_id": job_id}})
}

#[tokio::test]
async fn a_dispatch_sends_one_delete_and_records_its_task_for_polling() {
    let w = World::new(quick(), |_| {}).await;
    let id = w.accept(job("d-1")).await;
    let row = w.step(&id).await;
    assert_eq!(row.state(), State::Polling, "{row:?}");
    assert_eq!(row.attempts, 1);
    assert!(
        row.task_id.is_some() && row.task_session.is_some(),
        "{row:?}"
    );
    assert!(row.submitted_at.is_some(), "{row:?}");
    assert_eq!(row.http_status, Some(202));
    assert_eq!(w.sim.stats().calls.get("DELETE /api/jobs/{id}"), Some(&1));
    assert!(w.outbox().await.is_empty(), "no notice unless enabled");
    w.sim.shutdown().await;
}

#[tokio::test]
async fn polls_follow_the_task_to_its_end_and_the_outcome_event_is_written_with_it() {
    let w = World::new(quick(), |_| {}).await;
    let id = w.accept(job("p-1")).await;
    let dispatched = w.step(&id).await;
    let mut row = dispatched.clone();
    for _ in 0..50 {
        if row.state().is_final() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        row = w.step(&id).await;
    }
    assert_eq!(row.state(), State::Succeeded, "{row:?}");
    assert_eq!(row.outcome.as_deref(), Some("deleted"));
    assert_eq!(row.task_id, dispatched.task_id);
    let events = w.outbox().await;
    assert_eq!(events.len(), 1, "one outcome event: {events:?}");
    let (key, ev) = &events[0];
    assert_eq!(key, "delete.succeeded");
    assert_eq!(ev.data.request_id.as_deref(), Some("p-1"));
    assert_eq!(
        ev.data.task.as_ref().map(|t| &t.id),
        dispatched.task_id.as_ref()
    );
    assert_eq!(row.event_id.as_deref(), Some(ev.id.as_str()));
    assert_eq!(w.sim.stats().calls.get("DELETE /api/jobs/{id}"), Some(&1));
    w.sim.shutdown().await;
}

#[tokio::test]
async fn a_poll_that_sees_the_task_end_records_how_long_it_took() {
    let sim = SimConfig {
        task_duration: (Duration::from_millis(300), Duration::from_millis(300)),
        ..SimConfig::default()
    };
    let w = World::new(sim, |_| {}).await;
    let id = w.accept(job("t-1")).await;
    let recorded = w.step(&id).await;
    let seen_running = w.step(&id).await;
    assert_eq!(seen_running.state(), State::Polling, "{seen_running:?}");
    assert!(seen_running.task_running_at.is_some(), "{seen_running:?}");
    let (mut last_running, mut row) = (seen_running.clone(), seen_running);
    while !row.state().is_final() {
        last_running = row;
        tokio::time::sleep(Duration::from_millis(100)).await;
        row = w.step(&id).await;
    }
    let running_at = last_running.task_running_at.unwrap();
    assert_eq!(row.outcome.as_deref(), Some("deleted"));
    let samples = w.ledger.task_durations().await.unwrap();
    assert_eq!(samples.len(), 1, "{samples:?}");
    let s = &samples[0];
    assert_eq!(
        (s.endpoint.as_str(), s.operation.as_str()),
        ("em", "DeleteJob")
    );
    let submitted = recorded.submitted_at.unwrap();
    assert_eq!(s.duration.running_ms, running_at - submitted);
    assert_eq!(s.duration.ended_ms, row.finished_at.unwrap() - submitted);
    assert!(
        s.duration.ended_ms >= 250,
        "not seen ended before it ended: {s:?}"
    );
    w.sim.shutdown().await;
}

#[tokio::test]
async fn the_submitted_notice_is_written_with_the_task_when_enabled() {
    let w = World::new(quick(), |c| c.publish_submitted = true).await;
    let id = w.accept(job("n-1")).await;
    let row = w.step(&id).await;
    assert_eq!(row.state(), State::Polling);
    let events = w.outbox().await;
    assert_eq!(events.len(), 1, "{events:?}");
    let (key, ev) = &events[0];
    assert_eq!(key, "delete.submitted");
    assert_eq!(ev.kind, "reaper.delete.submitted");
    assert_eq!(ev.data.task.as_ref().map(|t| &t.id), row.task_id.as_ref());
    assert!(ev.data.submitted_at.is_some() && ev.data.finished_at.is_none());
    w.sim.shutdown().await;
}

#[tokio::test]
async fn a_request_past_its_not_after_expires_without_a_call() {
    let w = World::new(quick(), |_| {}).await;
    let mut body = job("x-1");
    body["not_after"] = "2001-01-01T00:00:00Z".into();
    let id = w.accept(body).await;
    let row = w.step(&id).await;
    assert_eq!(row.state(), State::Failed, "{row:?}");
    assert_eq!(row.outcome.as_deref(), Some("expired"));
    assert_eq!(w.sim.stats().total_calls, 0, "nothing was sent");
    let events = w.outbox().await;
    assert_eq!(events[0].0, "delete.failed");
    assert_eq!(events[0].1.data.error.as_ref().unwrap().kind, "expired");
    w.sim.shutdown().await;
}

#[tokio::test]
async fn a_request_out_of_attempts_ends_as_retries_exhausted_without_a_call() {
    let w = World::new(quick(), |c| c.max_attempts = 1).await;
    let id = w.accept(job("e-1")).await;
    let now = now_ms();
    w.ledger
        .begin_attempt(&id, now, now + 60_000)
        .await
        .unwrap();
    let row = w.step(&id).await;
    assert_eq!(row.state(), State::Failed, "{row:?}");
    assert_eq!(row.outcome.as_deref(), Some("retries_exhausted"));
    assert_eq!(w.sim.stats().total_calls, 0, "nothing was sent");
    w.sim.shutdown().await;
}

#[tokio::test]
async fn a_dcs_target_without_a_dcs_endpoint_is_refused_without_a_call() {
    let w = World::new(quick(), |_| {}).await;
    let hex = || uuid::Uuid::new_v4().simple().to_string();
    let id = w
        .accept(serde_json::json!({"request_id": "r-1", "target": {
            "type": "dcs.background_task", "project_id": hex(), "instance_id": hex(),
            "task_id": hex()}}))
        .await;
    let row = w.step(&id).await;
    assert_eq!(row.state(), State::Failed, "{row:?}");
    assert_eq!(row.outcome.as_deref(), Some("refused"));
    let events = w.outbox().await;
    let error = events[0].1.data.error.as_ref().unwrap();
    assert!(error.message.contains("REAPER_DCS_URL"), "{error:?}");
    assert_eq!(w.sim.stats().total_calls, 0, "nothing was sent");
    w.sim.shutdown().await;
}

#[tokio::test]
async fn a_request_whose_endpoint_is_down_waits_and_spends_no_attempt() {
    let w = World::new(quick(), |_| {}).await;
    let id = w.accept(job("w-1")).await;
    w.health.trouble("test outage");
    let row = w.step(&id).await;
    assert!(!row.state().is_final(), "{row:?}");
    assert_eq!(row.attempts, 0);
    assert!(row.due_at.is_some(), "it is due again: {row:?}");
    assert_eq!(w.sim.stats().total_calls, 0, "nothing was sent");
    assert!(w.outbox().await.is_empty());
    w.sim.shutdown().await;
}

#[tokio::test]
async fn a_job_the_remote_does_not_have_ends_as_already_absent() {
    let sim = SimConfig {
        inventory: Some(Default::default()),
        ..quick()
    };
    let w = World::new(sim, |_| {}).await;
    let id = w.accept(job("a-1")).await;
    let mut row = w.step(&id).await;
    for _ in 0..5 {
        if row.state().is_final() {
            break;
        }
        row = w.step(&id).await;
    }
    assert_eq!(row.state(), State::Succeeded, "{row:?}");
    assert_eq!(row.outcome.as_deref(), Some("already_absent"));
    assert_eq!(w.outbox().await[0].0, "delete.succeeded");
    w.sim.shutdown().await;
}

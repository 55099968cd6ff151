//! The end-to-end path through every layer: RabbitMQ → intake → ledger → EM simulator over
//! HTTP → outbox → events, with real RabbitMQ, a real SQLite file and the real simulator.

use crate::common::*;
use reaper::event::{CloudEvent, Outcome};
use reaper::sim::SimConfig;
use std::collections::{HashMap, HashSet};
use std::time::Duration;

fn quick_tasks() -> SimConfig {
    SimConfig {
        task_duration: (Duration::from_millis(200), Duration::from_millis(400)),
        ..SimConfig::default()
    }
}

#[tokio::test]
async fn fifty_job_requests_end_in_fifty_succeeded_events_with_their_task_ids() {
    let env = TestEnv::new(quick_tasks()).await;
    let mut events = env.watcher().await;
    let worker = env.start_worker();
    let requests: Vec<_> = (0..50)
        .map(|i| job_request(&format!("r-{i}"), &guid()))
        .collect();
    env.publisher().await.publish_all(&requests).await.unwrap();

    let got = collect(&mut events, 50, Duration::from_secs(60)).await;
    assert_eq!(got.len(), 50);
    for r in &requests {
        let id = r.request_id.as_ref().unwrap();
        let evs = &got[id];
        assert_eq!(evs.len(), 1, "one event for {id}");
        let (key, ev) = &evs[0];
        assert_eq!(key, "delete.succeeded");
        assert_eq!(ev.kind, "reaper.delete.succeeded");
        assert_eq!(ev.data.outcome, Outcome::Deleted);
        let task = ev.data.task.as_ref().expect("the event names its task");
        assert!(task.id.starts_with("task-"), "{task:?}");
        assert_eq!(task.state.as_deref(), Some("Finished"));
        assert_eq!(task.success, Some(true));
        assert_eq!(ev.data.http_status, Some(202));
        assert_eq!(ev.data.attempts, 1);
        assert_eq!(ev.data.target.as_ref().unwrap(), &r.target);
        assert_eq!(ev.data.batch_id.as_deref(), Some("test-batch"));
        assert_eq!(ev.subject.as_deref(), Some(id.as_str()));
    }
    let stats = env.sim.stats();
    assert_eq!(
        stats.calls.get("DELETE /api/jobs/{id}"),
        Some(&50),
        "{stats:?}"
    );
    assert_eq!(stats.deletes.len(), 50);
    assert!(stats.deletes.values().all(|n| *n == 1));
    assert_eq!(stats.logons, 1, "one logon session shared by every call");

    worker.stop().await;
    assert_eq!(
        env.sim.stats().logoffs,
        1,
        "the session is logged off on shutdown"
    );
    let ledger = env.ledger().await;
    let counts = ledger.counts().await.unwrap();
    assert_eq!(counts.len(), 1);
    assert_eq!(
        (counts[0].state.as_str(), counts[0].count),
        ("succeeded", 50)
    );
    assert_eq!(ledger.unpublished_count().await.unwrap(), 0);
    env.cleanup().await;
}

#[tokio::test]
async fn a_duplicate_request_id_causes_one_delete_and_gets_the_same_event_id() {
    let env = TestEnv::new(quick_tasks()).await;
    let mut events = env.watcher().await;
    let worker = env.start_worker();
    let publisher = env.publisher().await;
    let request = job_request("dup-1", &guid());
    publisher
        .publish_all(std::slice::from_ref(&request))
        .await
        .unwrap();
    let first = collect(&mut events, 1, Duration::from_secs(30)).await;
    publisher
        .publish_all(std::slice::from_ref(&request))
        .await
        .unwrap();
    let second = collect(&mut events, 1, Duration::from_secs(30)).await;

    let (_, a) = &first["dup-1"][0];
    let (_, b) = &second["dup-1"][0];
    assert_eq!(a.id, b.id, "the duplicate gets the first outcome's event");
    assert_eq!(a.data, b.data);
    assert_eq!(env.sim.stats().calls.get("DELETE /api/jobs/{id}"), Some(&1));
    // Both deliveries were acked: nothing waits in the queue or went to the dead letters.
    worker.stop().await;
    for q in [
        &env.cfg.topology.request_queue,
        &env.cfg.topology.dead_letter_queue,
    ] {
        assert_eq!(queue_depth(&env.conn, q).await, 0, "{q} is empty");
    }
    env.cleanup().await;
}

#[tokio::test]
async fn a_poison_message_is_dead_lettered_whole_and_a_good_request_after_it_succeeds() {
    let env = TestEnv::new(quick_tasks()).await;
    let mut events = env.watcher().await;
    let worker = env.start_worker();
    let publisher = env.publisher().await;
    let poison = b"{\"request_id\": \"poison-1\", \"target\": {\"type\": \"em.job\", \"job_id\": \"../../x\"}}";
    publisher.publish_raw(poison, None).await.unwrap();
    publisher
        .publish_raw(b"\x00\x01 not json at all", Some("poison-2"))
        .await
        .unwrap();
    publisher
        .publish_raw(b"{\"no\": \"id\"}", None)
        .await
        .unwrap();
    publisher
        .publish_all(&[job_request("good-1", &guid())])
        .await
        .unwrap();

    let got = collect(&mut events, 3, Duration::from_secs(30)).await;
    for id in ["poison-1", "poison-2"] {
        let (key, ev) = &got[id][0];
        assert_eq!(key, "delete.failed");
        assert_eq!(ev.data.outcome, Outcome::Invalid);
        assert!(!ev.data.error.as_ref().unwrap().message.is_empty());
    }
    assert_eq!(got["good-1"][0].1.data.outcome, Outcome::Deleted);

    // All three bad messages are in the dead-letter queue, byte for byte.
    let dead = dead_letters(&env).await;
    assert_eq!(dead.len(), 3);
    assert!(dead.contains(&poison.to_vec()));
    assert!(dead.contains(&b"\x00\x01 not json at all".to_vec()));
    assert_eq!(env.sim.stats().calls.get("DELETE /api/jobs/{id}"), Some(&1));
    worker.stop().await;
    env.cleanup().await;
}

#[tokio::test]
async fn a_worker_dropped_while_tasks_poll_is_resumed_by_a_new_one_without_deleting_twice() {
    let env = TestEnv::new(SimConfig {
        task_duration: (Duration::from_millis(1500), Duration::from_millis(2500)),
        ..SimConfig::default()
    })
    .await;
    let mut events = env.watcher().await;
    let worker = env.start_worker();
    let (requests, _) = jobs_polling(&env, "crash", 20).await;
    worker.kill().await;
    assert_eq!(env.sim.stats().logoffs, 0, "a crash logs nothing off");

    let worker = env.start_worker();
    let got = collect(&mut events, 20, Duration::from_secs(60)).await;
    assert_eq!(got.len(), requests.len());
    assert_each_once(&got, Outcome::Deleted);
    let stats = env.sim.stats();
    assert_eq!(stats.deletes.len(), 20);
    assert!(
        stats.deletes.values().all(|n| *n == 1),
        "no job deleted twice: {:?}",
        stats.deletes
    );
    assert_eq!(stats.logons, 2, "one session per worker, not one per task");
    // The new session could not poll the old session's tasks: each was verified by GET.
    assert!(
        stats.calls.get("GET /api/jobs/{id}").copied().unwrap_or(0) >= 20,
        "{stats:?}"
    );
    worker.stop().await;
    let unique: HashSet<_> = got.values().map(|e| e[0].1.id.clone()).collect();
    assert_eq!(unique.len(), 20);
    env.cleanup().await;
}

#[tokio::test]
async fn a_dcs_request_without_a_dcs_endpoint_is_refused_with_a_message() {
    let env = TestEnv::new(quick_tasks()).await;
    let mut events = env.watcher().await;
    let worker = env.start_worker();
    let dcs = reaper::request::RequestWire {
        request_id: Some("dcs-1".into()),
        target: serde_json::json!({"type": "dcs.background_task",
            "project_id": "a4d31cb6-3d72-4fdc-8ec9-6e3a41e47f71",
            "instance_id": "5560df16-cebf-4473-95c4-d1b573c16e79",
            "task_id": "8abf6e1e72c12e7c0172c15b508500aa"}),
        ..Default::default()
    };
    env.publisher().await.publish_all(&[dcs]).await.unwrap();
    let got = collect(&mut events, 1, Duration::from_secs(30)).await;
    let (key, ev) = &got["dcs-1"][0];
    assert_eq!(key, "delete.failed");
    assert_eq!(ev.data.outcome, Outcome::Refused);
    let err = ev.data.error.as_ref().unwrap();
    assert!(err.message.contains("REAPER_DCS_URL"), "{err:?}");
    assert_eq!(env.sim.stats().total_calls, 0, "nothing was sent");
    worker.stop().await;
    env.cleanup().await;
}

#[tokio::test]
async fn an_event_no_queue_takes_stays_in_the_outbox_until_a_queue_is_bound() {
    let env = TestEnv::new(quick_tasks()).await;
    let worker = env.start_worker();
    env.publisher()
        .await
        .publish_all(&[job_request("unrouted-1", &guid())])
        .await
        .unwrap();
    let ledger = env.ledger().await;
    wait_for_state(&ledger, "succeeded", 1, Duration::from_secs(30)).await;
    // The publisher tried: the broker returned the mandatory event, so its row counts a
    // failed attempt and stays pending.
    wait_until(
        "the publisher has tried the event",
        Duration::from_secs(10),
        || async {
            let rows = ledger.pending_events(i64::MAX, 10).await.unwrap();
            rows.iter().any(|r| r.attempts >= 1)
        },
    )
    .await;
    let pending = ledger.pending_events(i64::MAX, 10).await.unwrap();
    assert_eq!(pending.len(), 1, "{pending:?}");
    assert_eq!(pending[0].request_id.as_deref(), Some("unrouted-1"));
    assert_eq!(pending[0].routing_key, "delete.succeeded");
    assert!(pending[0].attempts >= 1, "{pending:?}");
    assert_eq!(ledger.unpublished_count().await.unwrap(), 1);
    let mut events = env.watcher().await;
    let got = collect(&mut events, 1, Duration::from_secs(30)).await;
    assert_eq!(got["unrouted-1"][0].1.data.outcome, Outcome::Deleted);
    wait_until(
        "the event is marked published",
        Duration::from_secs(10),
        || async { ledger.unpublished_count().await.unwrap() == 0 },
    )
    .await;
    worker.stop().await;
    env.cleanup().await;
}

#[tokio::test]
async fn a_submitted_notice_precedes_the_outcome_when_enabled() {
    let mut env = TestEnv::new(quick_tasks()).await;
    env.cfg.publish_submitted = true;
    let mut events = env.watcher().await;
    let worker = env.start_worker();
    let job = guid();
    env.publisher()
        .await
        .publish_all(&[job_request("noticed-1", &job)])
        .await
        .unwrap();
    let (k1, first) = events.next().await.unwrap();
    let (k2, second) = events.next().await.unwrap();
    assert_eq!(
        (k1.as_str(), k2.as_str()),
        ("delete.submitted", "delete.succeeded")
    );
    assert_eq!(first.kind, "reaper.delete.submitted");
    assert_ne!(first.id, second.id);
    let task = first.data.task.as_ref().unwrap();
    assert_eq!(task.state.as_deref(), Some("Running"));
    assert_eq!(second.data.task.as_ref().unwrap().id, task.id);
    assert_submitted_data(&first, &job);
    // The outcome tells the same submission time as the notice, and its end.
    assert_eq!(second.data.submitted_at, first.data.submitted_at);
    assert!(second.data.finished_at >= second.data.submitted_at);
    worker.stop().await;
    env.cleanup().await;
}

/// The `data` of the `delete.submitted` notice of request `noticed-1` (job `job`): who and
/// what it is about, the task recorded, when it was submitted, and no end yet.
fn assert_submitted_data(notice: &reaper::event::CloudEvent, job: &str) {
    let d = &notice.data;
    assert_eq!(notice.subject.as_deref(), Some("noticed-1"));
    assert_eq!(d.request_id.as_deref(), Some("noticed-1"));
    assert_eq!(d.batch_id.as_deref(), Some("test-batch"));
    let target = d.target.as_ref().expect("the notice names its target");
    assert_eq!(target["type"], "em.job", "{target}");
    assert_eq!(target["job_id"], job, "{target}");
    let task = d.task.as_ref().expect("the notice names its task");
    assert!(!task.id.is_empty(), "{task:?}");
    assert_eq!(d.attempts, 1, "{d:?}");
    assert_eq!(d.error, None, "{d:?}");
    let submitted = d
        .submitted_at
        .expect("the notice says when it was submitted");
    let received = d.received_at.expect("the notice says when it was received");
    assert!(received <= submitted, "{d:?}");
    assert_eq!(d.finished_at, None, "a notice is no outcome: {d:?}");
}

/// Takes every message of the dead-letter queue.
async fn dead_letters(env: &TestEnv) -> Vec<Vec<u8>> {
    let ch = env.conn.create_channel().await.unwrap();
    let mut dead = Vec::new();
    while let Some(m) = ch
        .basic_get(
            env.cfg.topology.dead_letter_queue.as_str().into(),
            lapin::options::BasicGetOptions { no_ack: true },
        )
        .await
        .unwrap()
    {
        dead.push(m.delivery.data.clone());
    }
    dead
}

/// Bodies the worker must refuse, each with the request id an `invalid` event can name.
fn bad_bodies() -> Vec<(Option<&'static str>, Vec<u8>)> {
    let (job, other) = (guid(), guid());
    let em_job = |id: &str, job_id: &str| {
        format!(r#"{{"request_id":"{id}","target":{{"type":"em.job","job_id":"{job_id}"}}}}"#)
    };
    vec![
        (
            Some("bad-non-ascii"),
            em_job("bad-non-ascii", r"aaa\u00e9-not-a-guid").into_bytes(),
        ),
        (
            Some("bad-raw-utf8"),
            em_job("bad-raw-utf8", "aaaé-not-a-guid").into_bytes(),
        ),
        (
            None,
            format!(r#"{{"request_id":"bad-twice-a","request_id":"bad-twice-b","target":{{"type":"em.job","job_id":"{job}"}}}}"#)
                .into_bytes(),
        ),
        (
            Some("bad-dup-target"),
            format!(r#"{{"request_id":"bad-dup-target","target":{{"type":"em.job","job_id":"{job}","job_id":"{other}"}}}}"#)
                .into_bytes(),
        ),
        (
            Some("bad-urn-type"),
            em_job("bad-urn-type", &format!("urn:veeam:Repository:{job}")).into_bytes(),
        ),
    ]
}

/// Job deletions `good-{i}` for `i` in `range`.
fn good(range: std::ops::Range<usize>) -> Vec<reaper::request::RequestWire> {
    range
        .map(|i| job_request(&format!("good-{i}"), &guid()))
        .collect()
}

/// Each refused body that names its request id has one `invalid` event saying why.
fn assert_invalid_events(got: &HashMap<String, Vec<(String, CloudEvent)>>, with_id: &[&str]) {
    for id in with_id {
        let (key, ev) = &got[*id][0];
        assert_eq!(key, "delete.failed", "{id}");
        assert_eq!(ev.data.outcome, Outcome::Invalid, "{id}");
        assert_eq!(got[*id].len(), 1, "{id}");
    }
    let reason = |id: &str| got[id][0].1.data.error.clone().unwrap().message;
    for (id, why) in [
        ("bad-non-ascii", "not ASCII"),
        ("bad-dup-target", "target.job_id"),
        ("bad-urn-type", "urn:veeam:Job"),
    ] {
        assert!(reason(id).contains(why), "{id}: {}", reason(id));
    }
    assert!(!got.contains_key("bad-twice-a") && !got.contains_key("bad-twice-b"));
}

#[tokio::test]
async fn non_ascii_ids_duplicate_keys_and_wrong_urn_types_are_refused_and_the_worker_goes_on() {
    let env = TestEnv::new(quick_tasks()).await;
    let mut events = env.watcher().await;
    let worker = env.start_worker();
    let publisher = env.publisher().await;
    let bad = bad_bodies();
    publisher.publish_all(&good(0..5)).await.unwrap();
    for (_, body) in &bad {
        publisher.publish_raw(body, None).await.unwrap();
    }
    publisher.publish_all(&good(5..10)).await.unwrap();

    // Ten deletions and an `invalid` event for each bad body whose request id can be read.
    let with_id: Vec<&str> = bad.iter().filter_map(|(id, _)| *id).collect();
    let got = collect(&mut events, 10 + with_id.len(), Duration::from_secs(60)).await;
    assert_invalid_events(&got, &with_id);
    assert!(worker.is_running(), "the worker did not stop or restart");

    // Requests published after the bad ones are still taken and deleted.
    publisher.publish_all(&good(10..15)).await.unwrap();
    let later = collect(&mut events, 5, Duration::from_secs(60)).await;
    assert!(worker.is_running());
    let goods: HashMap<_, _> = got
        .into_iter()
        .chain(later)
        .filter(|(id, _)| id.starts_with("good-"))
        .collect();
    assert_eq!(goods.len(), 15);
    assert_each_once(&goods, Outcome::Deleted);
    let stats = env.sim.stats();
    assert_eq!(stats.count("DELETE /api/jobs/{id}"), 15, "{stats:?}");
    assert!(stats.deletes.values().all(|n| *n == 1), "{stats:?}");

    worker.stop().await;
    let mut dead = dead_letters(&env).await;
    let mut want: Vec<Vec<u8>> = bad.into_iter().map(|(_, body)| body).collect();
    dead.sort();
    want.sort();
    assert_eq!(dead, want, "every bad body is dead-lettered whole");
    let requests = &env.cfg.topology.request_queue;
    assert_eq!(queue_depth(&env.conn, requests).await, 0);
    env.cleanup().await;
}

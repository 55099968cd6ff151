//! The brakes and the operator's hands on a running worker, end to end (design 1.6): the
//! rolling delete cap across a restart, the failure breaker and its resume, cancelling a
//! batch half-way and a running task, and replaying what a guard rail refused.
//!
//! These tests run `reaper` commands (blocking) beside a worker in this process: on a
//! multi-thread runtime, so the worker goes on while a command waits for the ledger.

use crate::common::*;
use crate::controls::{endpoint_event, reaper, says, status, stdout};
use reaper::broker::client::{Event, EventWatcher};
use reaper::event::{CloudEvent, EndpointEvent, Outcome};
use reaper::limit::Budget;
use reaper::sim::{FaultsUpdate, SimConfig};
use std::collections::HashMap;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);

fn quick() -> SimConfig {
    SimConfig {
        task_duration: (Duration::from_millis(100), Duration::from_millis(200)),
        ..SimConfig::default()
    }
}

fn batch(prefix: &str, n: usize, batch_id: &str) -> Vec<reaper::request::RequestWire> {
    (0..n)
        .map(|i| reaper::request::RequestWire {
            batch_id: Some(batch_id.into()),
            ..job_request(&format!("{prefix}-{i}"), &guid())
        })
        .collect()
}

/// Outcomes by request id; each request must have exactly one event.
fn outcomes(got: &HashMap<String, Vec<(String, CloudEvent)>>) -> HashMap<String, Outcome> {
    got.iter()
        .map(|(id, evs)| {
            assert_eq!(evs.len(), 1, "{id}: one outcome event: {evs:?}");
            (id.clone(), evs[0].1.data.outcome)
        })
        .collect()
}

/// The DELETEs the simulator saw on jobs (a worker's log-off is a DELETE too).
fn job_deletes(env: &TestEnv) -> u64 {
    let stats = env.sim.stats();
    let jobs = stats
        .deletes
        .iter()
        .filter(|(path, _)| path.starts_with("/api/jobs/"));
    jobs.map(|(_, n)| n).sum()
}

fn count(o: &HashMap<String, Outcome>, outcome: Outcome) -> usize {
    o.values().filter(|x| **x == outcome).count()
}

/// The next endpoint event, keeping the outcome events met before it in `seen`.
async fn endpoint_event_among_outcomes(
    events: &mut EventWatcher,
    seen: &mut HashMap<String, Vec<(String, CloudEvent)>>,
) -> (String, EndpointEvent) {
    loop {
        if let Some(met) = events.take_endpoint_events().into_iter().next() {
            return met;
        }
        let next = tokio::time::timeout(WAIT, events.next_event()).await;
        match next.expect("an endpoint event is published").unwrap() {
            (key, Event::Endpoint(ev)) => return (key, *ev),
            (key, Event::Outcome(ev)) => {
                let id = ev.data.request_id.clone().unwrap_or_default();
                seen.entry(id).or_default().push((key, *ev));
            }
        }
    }
}

/// A slow budget, so a batch is still being sent while the test acts on it.
fn slow(env: &mut TestEnv, rate_per_sec: f64) {
    env.cfg.em[0].budget = Budget {
        rate_per_sec,
        burst: 1,
        max_in_flight: 4,
    };
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cap_of_30_an_hour_lets_30_of_50_deletes_go_and_a_restart_does_not_reset_it() {
    let mut env = TestEnv::new(quick()).await;
    env.cfg.guard.max_deletes_per_hour = 30;
    let mut events = env.watcher().await;
    let worker = env.start_worker();
    env.publisher()
        .await
        .publish_all(&batch("cap", 50, "cap"))
        .await
        .unwrap();
    let got = outcomes(&collect(&mut events, 30, WAIT).await);
    assert_eq!(count(&got, Outcome::Deleted), 30, "{got:?}");
    let ledger = env.ledger().await;
    wait_for_state(&ledger, "accepted", 20, WAIT).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(job_deletes(&env), 30, "the cap holds");
    worker.stop().await;

    let worker = env.start_worker();
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(job_deletes(&env), 30, "a restart does not reset the count");
    wait_for_state(&ledger, "accepted", 20, WAIT).await;
    // Which 20 wait depends on the order they were taken in: those still unfinished.
    let rows = futures_util::future::join_all((0..50).map(|i| {
        let l = ledger.clone();
        async move { l.get(&format!("cap-{i}")).await.unwrap() }
    }))
    .await;
    let waiting: Vec<_> = rows
        .into_iter()
        .flatten()
        .filter(|r| r.outcome.is_none())
        .collect();
    assert_eq!(waiting.len(), 20);
    let attempts: i64 = waiting.iter().map(|r| r.attempts).sum();
    assert_eq!(attempts, 0, "waiting for the cap spends no attempt");
    worker.stop().await;
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_breaker_pauses_an_endpoint_failing_most_tasks_until_an_operator_resumes_it() {
    let mut env = TestEnv::new(SimConfig {
        task_failure_ratio: 0.6,
        ..quick()
    })
    .await;
    slow(&mut env, 10.0);
    let (min, window) = (20, 50);
    env.cfg.guard.breaker_min = min;
    env.cfg.guard.breaker_window = window;
    let mut events = env.watcher().await;
    let worker = env.start_worker();
    let n = 80;
    env.publisher()
        .await
        .publish_all(&batch("b", n, "breaker"))
        .await
        .unwrap();
    let mut seen = HashMap::new();
    let (key, paused) = endpoint_event_among_outcomes(&mut events, &mut seen).await;
    assert_eq!(key, "endpoint.paused");
    let finished = paused.data.finished.expect("the breaker's figures");
    let failures = paused.data.failures.expect("the breaker's figures");
    assert!(finished >= u64::from(min), "{:?}", paused.data);
    assert!(
        failures as f64 / finished as f64 >= 0.2,
        "{:?}",
        paused.data
    );
    // It trips on the failure that reaches the ratio: at most what was in flight more.
    assert!(finished <= u64::from(min) + 8, "{:?}", paused.data);

    // The rest waits: no new DELETE while paused, polls of running tasks end.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let sent = job_deletes(&env);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(job_deletes(&env), sent, "paused");
    assert!((sent as usize) < n, "some requests wait: {sent} sent");

    env.sim
        .set_faults(&FaultsUpdate {
            task_failure_ratio: Some(0.0),
            ..Default::default()
        })
        .unwrap();
    says(
        &env.ledger_path(),
        &["resume", "--endpoint", "em"],
        0,
        "resumed",
    );
    let rest = collect(&mut events, n - seen.len(), WAIT).await;
    seen.extend(rest);
    let got = outcomes(&seen);
    assert_eq!(
        count(&got, Outcome::Deleted) + count(&got, Outcome::TaskFailed),
        n,
        "{got:?}"
    );
    assert_eq!(job_deletes(&env) as usize, n, "one DELETE each");
    let (key, _) = endpoint_event(&mut events).await;
    assert_eq!(key, "endpoint.resumed");
    worker.stop().await;
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_batch_half_way_ends_its_unsent_requests_and_lets_sent_ones_finish() {
    let mut env = TestEnv::new(quick()).await;
    slow(&mut env, 4.0);
    let mut events = env.watcher().await;
    let worker = env.start_worker();
    let n = 40;
    env.publisher()
        .await
        .publish_all(&batch("c", n, "half"))
        .await
        .unwrap();
    let path = env.ledger_path();
    wait_until("a few DELETEs were sent", WAIT, || async {
        job_deletes(&env) >= 3
    })
    .await;
    // Paused while the worker runs: within 2 s no new DELETE is decided (the few already
    // decided, waiting for the budget, still go); resumed, they go on.
    says(&path, &["pause", "--batch", "half"], 0, "paused");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let at_pause = job_deletes(&env);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(job_deletes(&env), at_pause, "a paused batch sends nothing");
    says(&path, &["resume", "--batch", "half"], 0, "resumed");
    wait_until("DELETEs go on after the resume", WAIT, || async {
        job_deletes(&env) >= at_pause + 2
    })
    .await;
    says(&path, &["cancel", "--batch", "half"], 0, "");
    let got = outcomes(&collect(&mut events, n, WAIT).await);
    let (deleted, cancelled) = (
        count(&got, Outcome::Deleted),
        count(&got, Outcome::Cancelled),
    );
    assert_eq!(deleted + cancelled, n, "{got:?}");
    assert!(
        cancelled > 0 && deleted >= 5,
        "{deleted} deleted, {cancelled} cancelled"
    );
    let deletes = job_deletes(&env) as usize;
    assert_eq!(deletes, deleted, "no DELETE for a cancelled request");
    let cancelled_id = got
        .iter()
        .find(|(_, o)| **o == Outcome::Cancelled)
        .unwrap()
        .0;
    assert!(status(&path, cancelled_id).contains("cancel"));
    worker.stop().await;
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_with_stop_running_stops_the_running_em_task_and_ends_cancelled() {
    let env = TestEnv::new(SimConfig {
        task_duration: (Duration::from_secs(60), Duration::from_secs(60)),
        ..SimConfig::default()
    })
    .await;
    let mut events = env.watcher().await;
    let worker = env.start_worker();
    let job = guid();
    env.publisher()
        .await
        .publish_all(&[job_request("long", &job)])
        .await
        .unwrap();
    let ledger = env.ledger().await;
    wait_for_state(&ledger, "polling", 1, WAIT).await;
    says(
        &env.ledger_path(),
        &["cancel", "long", "--stop-running"],
        0,
        "",
    );
    let got = collect(&mut events, 1, WAIT).await;
    let ev = &got["long"][0].1;
    assert_eq!(ev.data.outcome, Outcome::Cancelled, "{:?}", ev.data);
    let stats = env.sim.stats();
    assert_eq!(stats.count("DELETE /api/tasks/{id}"), 1, "{stats:?}");
    assert_eq!(stats.tasks_stopped, 1);
    worker.stop().await;
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_batch_replayed_after_the_cause_is_fixed_ends_deleted_under_new_event_ids() {
    let mut env = TestEnv::new(quick()).await;
    let requests = batch("r", 5, "refused");
    let file = env.dir.path().join("protect.txt");
    let ids: Vec<&str> = requests
        .iter()
        .map(|r| r.target["job_id"].as_str().unwrap())
        .collect();
    std::fs::write(&file, ids.join("\n")).unwrap();
    env.cfg.guard.protect_file = Some(file.clone());
    let mut events = env.watcher().await;
    let worker = env.start_worker();
    env.publisher().await.publish_all(&requests).await.unwrap();
    let first = collect(&mut events, 5, WAIT).await;
    assert_eq!(count(&outcomes(&first), Outcome::Refused), 5);

    std::fs::write(&file, "# the wrong ids are gone\n").unwrap();
    tokio::time::sleep(Duration::from_secs(4)).await;
    says(&env.ledger_path(), &["replay", "--batch", "refused"], 0, "");
    let second = collect(&mut events, 5, WAIT).await;
    assert_eq!(count(&outcomes(&second), Outcome::Deleted), 5, "{second:?}");
    for (id, evs) in &second {
        assert_ne!(evs[0].1.id, first[id][0].1.id, "{id}: a new event id");
    }
    let path = env.ledger_path();
    let out = reaper(&path, &["replay", "r-0"]);
    let said = format!("{}{}", stdout(&out), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(2), "{said}");
    assert!(
        said.contains("deleted"),
        "a deleted request is not replayed: {said}"
    );
    assert!(
        status(&path, "r-0").contains("replay"),
        "the replay is in the history"
    );
    worker.stop().await;
    env.cleanup().await;
}

//! The operator's controls as the `reaper` binary runs them on a ledger file: `pause`,
//! `resume`, `cancel`, `replay`, each recorded in the history `reaper status ID` shows; and
//! a running worker that publishes the `endpoint.*` events they write and obeys a resume.

use crate::binary::reaper_bin;
use crate::common::*;
use reaper::broker::client::{Event, EventWatcher};
use reaper::event::{EndpointEvent, Outcome};
use reaper::ledger::{Change, Finish, Ledger, NewEvent, PauseScope, State, TaskRecord, now_ms};
use reaper::request::DeleteRequest;
use reaper::sim::SimConfig;
use std::path::Path;
use std::process::Output;
use std::time::Duration;

/// `reaper ARGS` on the ledger at `ledger`, nothing else in its environment.
pub(crate) fn reaper(ledger: &Path, args: &[&str]) -> Output {
    reaper_bin()
        .args(args)
        .env("REAPER_LEDGER", ledger)
        .output()
        .unwrap()
}

pub(crate) fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Asserts the exit code, showing both outputs when it differs.
fn exits(out: &Output, code: i32) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "stdout: {}\nstderr: {}",
        stdout(out),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs `reaper ARGS`, asserts its exit code and that its stdout (exit 0) or stderr (else)
/// says `text`; returns its stdout.
pub(crate) fn says(ledger: &Path, args: &[&str], code: i32, text: &str) -> String {
    let out = reaper(ledger, args);
    exits(&out, code);
    let said = match code {
        0 => stdout(&out),
        _ => String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert!(said.contains(text), "{args:?} said: {said}");
    stdout(&out)
}

/// A new ledger file in its own directory.
async fn new_ledger() -> (tempfile::TempDir, std::path::PathBuf, Ledger) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.db");
    let ledger = Ledger::open(&path).await.unwrap();
    (dir, path, ledger)
}

/// Accepts a request of `batch` for the endpoint `em`.
async fn accepted(ledger: &Ledger, id: &str, batch: &str) {
    let mut wire = job_request(id, &guid());
    wire.batch_id = Some(batch.into());
    let req = DeleteRequest::decode(&serde_json::to_vec(&wire).unwrap(), None).unwrap();
    ledger.accept(&req, "em", now_ms()).await.unwrap();
}

/// A request of `batch` whose EM task is running.
async fn running(ledger: &Ledger, id: &str, batch: &str) {
    accepted(ledger, id, batch).await;
    let change = Change {
        task: Some(TaskRecord {
            id: task_id(),
            state: Some("Running".into()),
            ..Default::default()
        }),
        ..Change::to(State::Polling, "task recorded").due(now_ms() + 3_600_000)
    };
    ledger.advance(id, &change, now_ms(), None).await.unwrap();
}

/// A request of `batch` that ended `outcome`.
async fn ended(ledger: &Ledger, id: &str, batch: &str, outcome: Outcome) {
    accepted(ledger, id, batch).await;
    let state = match outcome {
        Outcome::Deleted | Outcome::AlreadyAbsent => State::Succeeded,
        _ => State::Failed,
    };
    let finish = Finish {
        outcome: outcome.as_str().into(),
        finished_at: now_ms(),
    };
    let event = |_: &_| NewEvent {
        event_id: format!("ev-{id}"),
        request_id: Some(id.to_string()),
        routing_key: "delete.failed".into(),
        payload: "{}".into(),
    };
    ledger
        .finish(id, &Change::to(state, "ended"), &finish, event)
        .await
        .unwrap();
}

/// What `reaper status ID` prints.
pub(crate) fn status(ledger: &Path, id: &str) -> String {
    says(ledger, &["status", id], 0, id)
}

#[tokio::test]
async fn pause_and_resume_of_a_batch_say_what_they_did_and_are_in_its_history() {
    let (_d, path, ledger) = new_ledger().await;
    accepted(&ledger, "p-1", "b1").await;
    let paused = "paused batch b1: no DELETE goes out until `reaper resume --batch b1` \
                  (1 requests wait; polls of running tasks go on)";
    says(&path, &["pause", "--batch", "b1"], 0, paused);
    let again = ["pause", "--batch", "b1", "--reason", "again"];
    says(&path, &again, 0, "batch b1 was paused already, since");
    let pauses = ledger.paused().await.unwrap();
    let pause = (pauses[0].scope, pauses[0].reason.as_str());
    assert_eq!(
        (pauses.len(), pause),
        (1, (PauseScope::Batch, "paused by an operator"))
    );
    let events = ledger.unpublished_count().await.unwrap();
    assert_eq!(events, 0, "a batch's pause is no endpoint event");
    says(&path, &["status"], 0, "paused batch b1 since ");

    let resume = ["resume", "--batch", "b1"];
    let said = says(&path, &resume, 0, "resumed batch b1 (paused since ");
    assert!(said.contains("1 requests may send their DELETE"), "{said}");
    says(
        &path,
        &resume,
        0,
        "batch b1 is not paused: nothing to resume",
    );
    let history = status(&path, "p-1");
    let note = "batch b1 paused: no DELETE until it is resumed (paused by an operator)";
    assert!(history.contains(note), "{history}");
    assert!(history.contains("batch b1 resumed"), "{history}");
}

#[tokio::test]
async fn the_controls_refuse_a_missing_ledger_an_unknown_name_and_a_bad_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.db");
    for args in [
        &["pause", "--batch", "b1"][..],
        &["cancel", "r"],
        &["replay", "r"],
    ] {
        says(&path, args, 2, "no ledger at");
    }
    assert!(!path.exists(), "no ledger is created");

    let ledger = Ledger::open(&path).await.unwrap();
    accepted(&ledger, "p-1", "b1").await;
    says(&path, &["pause", "--endpoint", "emm"], 2, "no endpoint emm");
    let nope = "no request of batch nope in the ledger";
    says(&path, &["resume", "--batch", "nope"], 2, nope);
    for args in [
        &["pause", "--endpoint", "em", "--batch", "b1"][..],
        &["pause"],
        &["resume"],
        &["cancel", "--batch", "b1", "p-1"],
        &["replay", "p-1", "--outcome", "refused"],
    ] {
        exits(&reaper(&path, args), 2);
    }
    assert!(ledger.paused().await.unwrap().is_empty());
}

/// The next endpoint event on `events` (one met before an outcome event first).
pub(crate) async fn endpoint_event(events: &mut EventWatcher) -> (String, EndpointEvent) {
    if let Some(met) = events.take_endpoint_events().into_iter().next() {
        return met;
    }
    let next = tokio::time::timeout(Duration::from_secs(20), events.next_event()).await;
    match next.expect("an endpoint event is published").unwrap() {
        (key, Event::Endpoint(ev)) => (key, *ev),
        (key, other) => panic!("{key}: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_worker_publishes_the_pause_and_resume_of_its_endpoint_and_obeys_them() {
    let env = TestEnv::new(SimConfig::default()).await;
    let mut events = env.watcher().await;
    let path = env.ledger_path();
    let ledger = env.ledger().await;
    accepted(&ledger, "w-1", "b1").await;
    let pause = ["pause", "--endpoint", "em", "--reason", "change window"];
    says(&path, &pause, 0, "paused endpoint em:");

    let worker = env.start_worker();
    let (key, paused) = endpoint_event(&mut events).await;
    assert_eq!(
        (key.as_str(), paused.subject.as_deref()),
        ("endpoint.paused", Some("em"))
    );
    let data = (paused.data.state.as_str(), paused.data.reason.as_str());
    assert_eq!(data, ("paused", "change window"));
    assert_eq!((paused.data.failures, paused.data.finished), (None, None));
    assert!(env.sim.stats().deletes.is_empty(), "no DELETE while paused");
    assert_eq!(ledger.get("w-1").await.unwrap().unwrap().attempts, 0);

    // Written by another process while the worker runs: its publisher finds the row.
    let resume = ["resume", "--endpoint", "em"];
    says(&path, &resume, 0, "the failure breaker counts from now");
    let got = collect(&mut events, 1, Duration::from_secs(30)).await;
    let outcome = got["w-1"][0].1.data.outcome;
    assert_eq!(outcome, Outcome::Deleted, "the resume is obeyed");
    let (key, resumed) = endpoint_event(&mut events).await;
    assert_eq!(
        (key.as_str(), resumed.data.reason.as_str()),
        ("endpoint.resumed", "resumed by an operator")
    );
    worker.stop().await;
    let history = status(&path, "w-1");
    let note = "endpoint em paused: no DELETE until it is resumed (change window)";
    assert!(history.contains(note), "{history}");
    assert!(history.contains("endpoint em resumed"), "{history}");
    env.cleanup().await;
}

#[tokio::test]
async fn cancel_ends_unsent_requests_notes_sent_ones_and_refuses_unknown_or_finished_ones() {
    let (_d, path, ledger) = new_ledger().await;
    accepted(&ledger, "c-1", "b").await;
    running(&ledger, "c-2", "b").await;
    ended(&ledger, "c-3", "b", Outcome::Deleted).await;
    let said = says(&path, &["cancel", "--batch", "b"], 0, "cancel of batch b");
    assert_eq!(
        said.lines().collect::<Vec<_>>(),
        [
            "cancelled c-1: not sent yet, it ends cancelled",
            "cancel noted for c-2 (polling): its task runs to its end (--stop-running stops it)",
            "not cancelled c-3: it had finished (deleted)",
            "cancel of batch b: 1 not sent yet end cancelled, 1 already sent, 1 finished before",
        ]
    );
    let stop = ["cancel", "c-2", "--stop-running"];
    says(
        &path,
        &stop,
        0,
        "cancel noted for c-2 (polling): its running task is stopped",
    );
    let c2 = ledger.get("c-2").await.unwrap().unwrap();
    assert!(c2.stop_running && c2.cancel_requested_at.is_some());
    let c1 = ledger.get("c-1").await.unwrap().unwrap();
    assert!(c1.cancel_requested_at.is_some() && !c1.stop_running);

    says(
        &path,
        &["cancel", "nope"],
        2,
        "no request nope in the ledger",
    );
    let said = says(&path, &["cancel", "c-3"], 2, "nothing to cancel");
    assert!(said.contains("not cancelled c-3"), "{said}");
    let history = status(&path, "c-1");
    assert!(
        history.contains("cancel requested by operator: not sent yet"),
        "{history}"
    );
    let history = status(&path, "c-2");
    let note = "cancel requested by operator (--stop-running)";
    assert!(history.contains(note), "{history}");
    assert!(
        history.contains(", --stop-running\n"),
        "the cancel line: {history}"
    );
}

#[tokio::test]
async fn replaying_a_deleted_request_changes_nothing_says_why_and_exits_2() {
    let (_d, path, ledger) = new_ledger().await;
    ended(&ledger, "d-3", "b", Outcome::Deleted).await;
    let why = "not replayed d-3: it ended deleted: a replay never deletes twice";
    let said = says(&path, &["replay", "d-3"], 2, "nothing was replayed");
    assert!(said.contains(why), "{said}");
    let d3 = ledger.get("d-3").await.unwrap().unwrap();
    let kept = (d3.outcome.as_deref(), d3.generation, d3.state());
    assert_eq!(kept, (Some("deleted"), 0, State::Succeeded), "unchanged");
    says(
        &path,
        &["replay", "nope"],
        2,
        "no request nope in the ledger",
    );
    let never = ["replay", "--batch", "b", "--outcome", "deleted"];
    says(&path, &never, 2, "`deleted` is never replayed");
    assert!(!status(&path, "d-3").contains("replayed"));
}

#[tokio::test]
async fn replay_runs_again_what_ended_without_a_delete_as_its_next_generation() {
    let (_d, path, ledger) = new_ledger().await;
    ended(&ledger, "d-1", "b", Outcome::Refused).await;
    ended(&ledger, "d-2", "b", Outcome::TimedOut).await;
    ended(&ledger, "d-3", "b", Outcome::Deleted).await;
    let refused = ["replay", "--batch", "b", "--outcome", "refused"];
    let said = says(
        &path,
        &refused,
        0,
        "replay of batch b: 1 replayed, 0 not replayed",
    );
    let first = said.lines().next().unwrap_or_default();
    assert_eq!(
        first,
        "replayed d-1 (it ended refused): accepted again, generation 1"
    );
    let d1 = ledger.get("d-1").await.unwrap().unwrap();
    assert_eq!(
        (d1.state(), d1.outcome, d1.generation),
        (State::Accepted, None, 1)
    );
    assert_eq!(ledger.get("d-2").await.unwrap().unwrap().generation, 0);
    let expired = ["replay", "--batch", "b", "--outcome", "expired"];
    says(&path, &expired, 2, "no request of batch b ended so");

    let said = says(&path, &["replay", "--batch", "b"], 0, "2 not replayed");
    for line in [
        "replayed d-2 (it ended timed_out): accepted again, generation 1",
        "not replayed d-1: it has not finished (state accepted)",
        "not replayed d-3: it ended deleted",
    ] {
        assert!(said.contains(line), "{said}");
    }
    let history = status(&path, "d-1");
    assert!(
        history.contains("replayed by operator (generation 1)"),
        "{history}"
    );
    assert!(history.contains("replayed  1 times"), "{history}");
}

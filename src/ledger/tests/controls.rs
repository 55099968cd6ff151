//! The operator's controls: pause and resume of endpoints and batches as the scheduler sees
//! them, and cancels.

use super::*;

const ALL: u32 = 100;
const LEASE: i64 = 1_000_000;

fn ev(id: &str) -> NewEvent {
    NewEvent {
        request_id: None,
        routing_key: "endpoint.paused".into(),
        ..event(id)
    }
}

/// em: two unsent requests of batch b1, one running task; dcs: one unsent request of b2.
async fn four(l: &Ledger) {
    accept_in(l, "em-1", "em", "b1", 100).await;
    accept_in(l, "em-2", "em", "b1", 100).await;
    accept_in(l, "em-poll", "em", "b1", 100).await;
    polling(l, "em-poll", 150).await;
    accept_in(l, "dcs-1", "dcs", "b2", 100).await;
}

/// The ids of the rows claimed at `now` with `skip`, sorted.
async fn claimed(l: &Ledger, now: i64, skip: &Skip) -> Vec<String> {
    let rows = l.claim_due(now, ALL, LEASE, skip).await.unwrap();
    ids(&rows).into_iter().map(str::to_string).collect()
}

/// The ids of the events waiting in the outbox.
async fn outbox_ids(l: &Ledger) -> Vec<String> {
    let pending = l.pending_events(i64::MAX, 100).await.unwrap();
    pending.into_iter().map(|e| e.event_id).collect()
}

#[tokio::test]
async fn a_second_pause_keeps_the_first_and_writes_no_second_event() {
    let (_d, l) = ledger().await;
    four(&l).await;
    assert_eq!(
        l.pause(PauseScope::Endpoint, "em", "by hand", 200, Some(&ev("p1")))
            .await
            .unwrap(),
        PauseDone::Paused { waiting: 2 }
    );
    let again = l
        .pause(PauseScope::Endpoint, "em", "twice", 250, Some(&ev("p2")))
        .await
        .unwrap();
    assert!(
        matches!(&again, PauseDone::AlreadyPaused(p) if p.reason == "by hand" && p.since == 200),
        "{again:?}"
    );
    let pauses = l.paused().await.unwrap();
    let pause = (pauses[0].scope, pauses[0].name.as_str(), pauses[0].failures);
    assert_eq!(
        (pauses.len(), pause),
        (1, (PauseScope::Endpoint, "em", None))
    );
    assert_eq!(
        outbox_ids(&l).await,
        ["ev-p1"],
        "one event, for the new pause"
    );
    let note = last_note(&l, "em-1").await;
    assert!(note.contains("endpoint em paused: no DELETE until it is resumed (by hand)"));
    let note = last_note(&l, "em-poll").await;
    assert_eq!(note, "task recorded", "a running task is not held");
}

#[tokio::test]
async fn a_paused_endpoint_sends_nothing_new_its_polls_go_on_and_resume_lets_it_go() {
    let (_d, l) = ledger().await;
    four(&l).await;
    let none = Skip::default();
    l.pause(PauseScope::Endpoint, "em", "by hand", 200, None)
        .await
        .unwrap();
    assert_eq!(l.next_due(300, &none).await.unwrap(), Some(100), "dcs-1");
    assert_eq!(claimed(&l, 300, &none).await, ["dcs-1", "em-poll"]);
    assert_eq!(
        l.next_due(300, &none).await.unwrap(),
        None,
        "nothing claimable waits"
    );

    let resumed = l
        .unpause(PauseScope::Endpoint, "em", 400, Some(&ev("r1")))
        .await
        .unwrap();
    assert!(
        matches!(&resumed, ResumeDone::Resumed { pause, waiting: 2 } if pause.reason == "by hand"),
        "{resumed:?}"
    );
    assert!(last_note(&l, "em-2").await.contains("endpoint em resumed"));
    assert_eq!(
        l.unpause(PauseScope::Endpoint, "em", 450, Some(&ev("r2")))
            .await
            .unwrap(),
        ResumeDone::NotPaused
    );
    assert_eq!(
        outbox_ids(&l).await,
        ["ev-r1"],
        "one event, for the lifted pause"
    );
    assert!(l.paused().await.unwrap().is_empty());
    assert_eq!(claimed(&l, 500, &none).await, ["em-1", "em-2"]);
}

#[tokio::test]
async fn a_paused_or_held_batch_and_a_held_endpoint_wait_like_a_paused_endpoint() {
    let (_d, l) = ledger().await;
    four(&l).await;
    assert_eq!(
        l.pause(PauseScope::Batch, "b1", "review", 200, None)
            .await
            .unwrap(),
        PauseDone::Paused { waiting: 2 }
    );
    let rows = l
        .claim_due(300, ALL, LEASE, &Skip::default())
        .await
        .unwrap();
    assert_eq!(ids(&rows), ["dcs-1", "em-poll"]);
    l.resume().await.unwrap();
    l.unpause(PauseScope::Batch, "b1", 300, None).await.unwrap();

    let held = Skip {
        held: vec!["dcs".into()],
        held_batches: vec!["b1".into()],
        ..Skip::default()
    };
    assert_eq!(l.next_due(300, &held).await.unwrap(), Some(150), "em-poll");
    let rows = l.claim_due(300, ALL, LEASE, &held).await.unwrap();
    assert_eq!(ids(&rows), ["em-poll"]);
    l.resume().await.unwrap();
    let down = Skip::down(vec!["em".into()]);
    let rows = l.claim_due(300, ALL, LEASE, &down).await.unwrap();
    assert_eq!(ids(&rows), ["dcs-1"], "a down endpoint's polls wait too");
}

#[tokio::test]
async fn known_endpoints_and_batches_are_those_of_requests_or_pauses() {
    let (_d, l) = ledger().await;
    accept_in(&l, "r1", "em", "b1", 100).await;
    assert!(l.knows(PauseScope::Endpoint, "em").await.unwrap());
    assert!(l.knows(PauseScope::Batch, "b1").await.unwrap());
    assert!(!l.knows(PauseScope::Endpoint, "b1").await.unwrap());
    assert!(!l.knows(PauseScope::Batch, "em").await.unwrap());
    l.pause(PauseScope::Batch, "later", "ahead", 1, None)
        .await
        .unwrap();
    assert!(l.knows(PauseScope::Batch, "later").await.unwrap());
    assert!(
        l.selects_any(&Selection::Request("r1".into()))
            .await
            .unwrap()
    );
    assert!(l.selects_any(&Selection::Batch("b1".into())).await.unwrap());
    assert!(
        !l.selects_any(&Selection::Batch("later".into()))
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn cancel_marks_what_is_unfinished_makes_unsent_work_due_and_leaves_the_rest() {
    let (_d, l) = ledger().await;
    four(&l).await;
    let retry = Change::to(State::RetryWait, "503").due(90_000);
    l.advance("em-2", &retry, 120, None).await.unwrap();
    accept_in(&l, "em-done", "em", "b1", 100).await;
    ended(&l, "em-done", "deleted", None, 130).await;

    let done = l
        .cancel(&Selection::Batch("b1".into()), false, 1_000)
        .await
        .unwrap();
    assert_eq!(names(&done.not_sent), ["em-1", "em-2"]);
    assert_eq!(names(&done.sent), ["em-poll"]);
    assert_eq!(names(&done.finished), ["em-done"]);
    assert_eq!(done.finished[0].outcome.as_deref(), Some("deleted"));
    assert!(!done.is_unknown());
    let em2 = row(&l, "em-2").await;
    let marked = (em2.cancel_requested_at, em2.due_at, em2.stop_running);
    assert_eq!(marked, (Some(1_000), Some(1_000), false), "due now");
    assert_eq!(row(&l, "em-1").await.due_at, Some(100), "due already: kept");
    let poll = row(&l, "em-poll").await;
    assert_eq!(
        (poll.cancel_requested_at, poll.due_at),
        (Some(1_000), Some(150))
    );
    assert_eq!(
        row(&l, "em-done").await.cancel_requested_at,
        None,
        "finished"
    );
    assert_eq!(
        row(&l, "dcs-1").await.cancel_requested_at,
        None,
        "another batch"
    );
    let note = last_note(&l, "em-1").await;
    assert!(note.contains("not sent yet, it ends cancelled"), "{note}");
    assert!(last_note(&l, "em-poll").await.contains("runs to its end"));
}

#[tokio::test]
async fn a_later_cancel_with_stop_running_keeps_the_first_time_and_makes_the_task_due() {
    let (_d, l) = ledger().await;
    four(&l).await;
    l.cancel(&Selection::Request("em-poll".into()), false, 100)
        .await
        .unwrap();
    polling(&l, "em-poll", 5_000).await;
    assert_eq!(
        names(
            &l.cancel(&Selection::Request("em-poll".into()), true, 2_000)
                .await
                .unwrap()
                .sent
        ),
        ["em-poll"]
    );
    let poll = row(&l, "em-poll").await;
    let marked = (poll.cancel_requested_at, poll.stop_running, poll.due_at);
    assert_eq!(marked, (Some(100), true, Some(2_000)));
    assert!(last_note(&l, "em-poll").await.contains("--stop-running"));

    assert!(
        l.cancel(&Selection::Request("nope".into()), false, 3_000)
            .await
            .unwrap()
            .is_unknown()
    );
    assert!(
        l.cancel(&Selection::Batch("nope".into()), true, 3_000)
            .await
            .unwrap()
            .is_unknown()
    );
}

fn names(seen: &[Seen]) -> Vec<&str> {
    seen.iter().map(|s| s.request_id.as_str()).collect()
}

async fn row(l: &Ledger, id: &str) -> RequestRow {
    l.get(id).await.unwrap().unwrap()
}

#[tokio::test]
async fn cancelled_unsent_work_is_handed_out_even_while_its_endpoint_is_paused_or_down() {
    let (_d, l) = ledger().await;
    four(&l).await;
    l.pause(PauseScope::Endpoint, "em", "hold", 200, None)
        .await
        .unwrap();
    l.pause(PauseScope::Endpoint, "dcs", "hold", 200, None)
        .await
        .unwrap();
    l.cancel(&Selection::Request("em-1".into()), false, 300)
        .await
        .unwrap();
    l.cancel(&Selection::Request("dcs-1".into()), false, 300)
        .await
        .unwrap();
    let down = Skip::down(vec!["dcs".into()]);
    assert_eq!(l.next_due(400, &down).await.unwrap(), Some(100));
    let rows = l.claim_due(400, ALL, LEASE, &down).await.unwrap();
    assert_eq!(
        ids(&rows),
        ["dcs-1", "em-1", "em-poll"],
        "em-2 waits for the resume"
    );
}

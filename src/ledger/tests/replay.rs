//! Replays: only requests that ended without a delete run again, as a new generation.

use super::*;
use crate::event::Outcome;

/// A batch `b` with one request per outcome, one still polling, one cancelled and expired.
async fn batch(l: &Ledger) {
    for (id, outcome) in [
        ("deleted", "deleted"),
        ("absent", "already_absent"),
        ("refused", "refused"),
        ("failed", "task_failed"),
        ("invalid", "invalid"),
    ] {
        accept_in(l, id, "em", "b", 100).await;
        if id == "failed" {
            polling(l, id, 150).await;
        }
        ended(l, id, outcome, Some("http"), 200).await;
    }
    accept_in(l, "running", "em", "b", 100).await;
    polling(l, "running", 150).await;
    let body = serde_json::json!({"request_id": "late", "batch_id": "b",
        "not_after": "1970-01-01T00:00:00.300Z", "target": {"type": "em.job", "job_id": JOB_B}});
    let late = DeleteRequest::decode(body.to_string().as_bytes(), None).unwrap();
    l.accept(&late, "em", 100).await.unwrap();
    l.cancel(&Selection::Request("late".into()), true, 120)
        .await
        .unwrap();
    ended(l, "late", "cancelled", None, 200).await;
}

/// Replays batch `b` at 1 000.
async fn replay_b(l: &Ledger) -> ReplayDone {
    l.replay(&Selection::Batch("b".into()), None, 1_000)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_replay_runs_again_only_what_ended_without_a_delete_and_says_why_not_the_rest() {
    let (_d, l) = ledger().await;
    batch(&l).await;
    let done = replay_b(&l).await;
    let replayed: Vec<(&str, &str, i64, bool)> = (done.replayed.iter())
        .map(|r| {
            (
                r.request_id.as_str(),
                r.outcome.as_str(),
                r.generation,
                r.deadline_lifted,
            )
        })
        .collect();
    let want = [
        ("failed", "task_failed", 1, false),
        ("late", "cancelled", 1, true),
        ("refused", "refused", 1, false),
    ];
    assert_eq!(replayed, want);
    let refused: Vec<(&str, &str)> = (done.refused.iter())
        .map(|r| (r.request_id.as_str(), r.reason.as_str()))
        .collect();
    let only = "only refused, retries_exhausted, timed_out, expired, task_failed, cancelled";
    let invalid = format!("it ended invalid: {only} are replayed");
    let want = [
        (
            "absent",
            "it ended already_absent: its target is gone, there is nothing to delete",
        ),
        ("deleted", "it ended deleted: a replay never deletes twice"),
        ("invalid", invalid.as_str()),
        ("running", "it has not finished (state polling)"),
    ];
    assert_eq!(refused, want);
    let deleted = l.get("deleted").await.unwrap().unwrap();
    let kept = (deleted.outcome.as_deref(), deleted.generation);
    assert_eq!(kept, (Some("deleted"), 0), "untouched");
    let backlog = l.backlog().await.unwrap();
    assert_eq!(backlog, 4, "three replayed and the running one");
}

#[tokio::test]
async fn a_replayed_request_starts_afresh_in_its_next_generation() {
    let (_d, l) = ledger().await;
    batch(&l).await;
    replay_b(&l).await;
    let late = l.get("late").await.unwrap().unwrap();
    let run = (late.state(), late.due_at, late.generation);
    assert_eq!(run, (State::Accepted, Some(1_000), 1));
    let end = (late.outcome, late.event_id, late.finished_at);
    assert_eq!(end, (None, None, None));
    let cancel = (late.cancel_requested_at, late.stop_running, late.not_after);
    assert_eq!(
        cancel,
        (None, false, None),
        "cancel cleared, the passed deadline lifted"
    );
    let note = last_note(&l, "late").await;
    assert!(note.contains("replayed by operator (generation 1): its not_after had passed"));
    let failed = l.get("failed").await.unwrap().unwrap();
    let sent = (failed.attempts, failed.poll_count, failed.submitted_at);
    assert_eq!(sent, (0, 0, None));
    let task = (failed.task_id, failed.task_state, failed.last_error);
    assert_eq!(task, (None, None, None));
    let note = last_note(&l, "failed").await;
    assert_eq!(note, "replayed by operator (generation 1)");

    // Ended again, it may be replayed again: the next generation.
    ended(&l, "failed", "task_failed", None, 2_000).await;
    let done = l
        .replay(&Selection::Request("failed".into()), None, 3_000)
        .await
        .unwrap();
    assert_eq!((done.replayed[0].generation, done.refused.len()), (2, 0));
}

#[tokio::test]
async fn a_replay_with_outcomes_takes_only_the_requests_that_ended_so() {
    let (_d, l) = ledger().await;
    batch(&l).await;
    let only = [Outcome::TaskFailed, Outcome::Cancelled];
    let done = l
        .replay(&Selection::Batch("b".into()), Some(&only), 1_000)
        .await
        .unwrap();
    let ids: Vec<&str> = done
        .replayed
        .iter()
        .map(|r| r.request_id.as_str())
        .collect();
    assert_eq!(ids, ["failed", "late"]);
    assert!(done.refused.is_empty(), "the others were not asked for");
    assert_eq!(l.get("refused").await.unwrap().unwrap().generation, 0);

    let asked = [Outcome::Deleted];
    let done = l
        .replay(&Selection::Batch("b".into()), Some(&asked), 1_000)
        .await
        .unwrap();
    assert!(done.replayed.is_empty());
    assert_eq!(
        done.refused.len(),
        1,
        "asked for, and refused with its reason"
    );
    let none = l
        .replay(&Selection::Batch("nope".into()), None, 1_000)
        .await
        .unwrap();
    assert_eq!(none, ReplayDone::default());
}

#[test]
fn only_the_outcomes_of_requests_that_deleted_nothing_are_replayable() {
    for o in REPLAYABLE {
        assert_eq!(refusal_reason("failed", Some(o.as_str())), None, "{o:?}");
    }
    for o in ["deleted", "already_absent", "planned", "invalid", "made-up"] {
        assert!(refusal_reason("failed", Some(o)).is_some(), "{o}");
    }
    assert!(refusal_reason("accepted", None).is_some());
    assert!(
        refusal_reason("polling", Some("refused")).is_some(),
        "not finished"
    );
}

//! Intake: one row per request id, duplicates and conflicts.

use super::*;

#[tokio::test]
async fn the_same_request_twice_is_one_row_and_a_different_target_is_a_conflict() {
    let (_d, l) = ledger().await;
    assert_eq!(
        l.accept(&request("r1", JOB_A), "em", 1).await.unwrap(),
        Intake::New
    );
    assert_eq!(
        l.accept(&request("r1", JOB_A), "em", 2).await.unwrap(),
        Intake::Duplicate { republished: false }
    );
    assert!(matches!(
        l.accept(&request("r1", JOB_B), "em", 3).await.unwrap(),
        Intake::Conflict { .. }
    ));
    assert_eq!(l.backlog().await.unwrap(), 1);
}

#[tokio::test]
async fn a_duplicate_of_a_finished_request_queues_its_event_again_once() {
    let (_d, l) = ledger().await;
    l.accept(&request("r1", JOB_A), "em", 1).await.unwrap();
    l.finish(
        "r1",
        &Change::to(State::Succeeded, "ok"),
        &finish(5),
        outcome_event,
    )
    .await
    .unwrap();
    let pending = l.pending_events(100, 10).await.unwrap();
    assert_eq!(pending.len(), 1);
    l.mark_published(&[pending[0].seq], 6).await.unwrap();
    assert_eq!(l.unpublished_count().await.unwrap(), 0);

    let again = l.accept(&request("r1", JOB_A), "em", 7).await.unwrap();
    assert_eq!(again, Intake::Duplicate { republished: true });
    // A second duplicate while the copy is still pending adds nothing.
    let third = l.accept(&request("r1", JOB_A), "em", 8).await.unwrap();
    assert_eq!(third, Intake::Duplicate { republished: false });
    let pending = l.pending_events(100, 10).await.unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].event_id, "ev-r1", "the same event id");
}

#[tokio::test]
async fn a_batch_records_each_request_once_and_reports_duplicates_and_conflicts_within_it() {
    let (_d, l) = ledger().await;
    let (a, a_again, a_other, b) = (
        request("a", JOB_A),
        request("a", JOB_A),
        request("a", JOB_B),
        request("b", JOB_B),
    );
    let got = l
        .accept_batch(
            &[(&a, "em"), (&a_again, "em"), (&a_other, "em"), (&b, "em")],
            1,
        )
        .await
        .unwrap();
    assert_eq!(got[0], Intake::New);
    assert_eq!(got[1], Intake::Duplicate { republished: false });
    assert!(matches!(got[2], Intake::Conflict { .. }));
    assert_eq!(got[3], Intake::New);
    assert_eq!(l.backlog().await.unwrap(), 2);
}

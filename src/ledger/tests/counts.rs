//! The per-state counts the triggers keep agree with the requests themselves through every
//! kind of write: intake, steps, a finish, a prune, a prefill.

use super::*;

/// The counts as a scan of the requests gives them.
async fn scanned(l: &Ledger) -> Vec<(String, Option<String>, i64)> {
    sqlx::query_as(
        "SELECT state, outcome, COUNT(*) FROM requests GROUP BY state, outcome
         ORDER BY state, outcome",
    )
    .fetch_all(&l.pool)
    .await
    .unwrap()
}

async fn kept(l: &Ledger) -> Vec<(String, Option<String>, i64)> {
    let counts = l.counts().await.unwrap().into_iter();
    counts.map(|c| (c.state, c.outcome, c.count)).collect()
}

#[tokio::test]
async fn the_kept_counts_follow_every_write_of_the_requests() {
    let (_d, l) = ledger().await;
    l.prefill_finished(250, "em", 5).await.unwrap();
    l.accept(&request("r1", JOB_A), "em", 10).await.unwrap();
    l.accept(&request("r2", JOB_B), "em", 10).await.unwrap();
    assert_eq!(kept(&l).await, scanned(&l).await);
    l.advance("r1", &Change::to(State::Polling, "task").due(20), 11, None)
        .await
        .unwrap();
    assert_eq!(kept(&l).await, scanned(&l).await);
    let refused = Finish {
        outcome: "refused".into(),
        ..finish(30)
    };
    l.finish(
        "r2",
        &Change::to(State::Failed, "refused"),
        &refused,
        outcome_event,
    )
    .await
    .unwrap();
    let after_finish = kept(&l).await;
    assert_eq!(after_finish, scanned(&l).await);
    assert!(after_finish.contains(&("failed".into(), Some("refused".into()), 1)));
    assert!(after_finish.contains(&("succeeded".into(), Some("deleted".into()), 250)));
    assert!(after_finish.contains(&("polling".into(), None, 1)));
    // The prefilled requests finished at 5 and their events are published: they go.
    let pruned = l.prune_finished(6).await.unwrap();
    assert_eq!(pruned.requests, 250);
    assert_eq!(kept(&l).await, scanned(&l).await);
    assert!(kept(&l).await.iter().all(|(s, _, _)| s != "succeeded"));
}

#[tokio::test]
async fn every_committed_transaction_is_counted() {
    let (_d, l) = ledger().await;
    let before = commits_so_far();
    l.accept(&request("c1", JOB_A), "em", 1).await.unwrap();
    l.advance("c1", &Change::to(State::Polling, "task").due(2), 2, None)
        .await
        .unwrap();
    assert!(
        commits_so_far() >= before + 2,
        "an intake and a step commit"
    );
}

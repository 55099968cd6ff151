//! Claiming due work: leases, restarts, fairness, endpoints that are down.

use super::*;

#[tokio::test]
async fn claimed_rows_are_leased_and_released_by_resume() {
    let (_d, l) = ledger().await;
    for i in 0..5 {
        l.accept(&request(&format!("r{i}"), JOB_A), "em", 100)
            .await
            .unwrap();
    }
    let claimed = l.claim_due(200, 3, 10_000, &Skip::default()).await.unwrap();
    assert_eq!(claimed.len(), 3);
    let more = l
        .claim_due(200, 10, 10_000, &Skip::default())
        .await
        .unwrap();
    assert_eq!(more.len(), 2, "leased rows are not handed out twice");
    assert!(
        l.claim_due(200, 10, 10_000, &Skip::default())
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        l.next_due(200, &Skip::default()).await.unwrap(),
        None,
        "nothing unleased is due"
    );
    assert_eq!(l.resume().await.unwrap(), 5);
    assert_eq!(
        l.claim_due(300, 10, 10_000, &Skip::default())
            .await
            .unwrap()
            .len(),
        5
    );
    assert!(
        l.claim_due(10_001, 10, 20_000, &Skip::default())
            .await
            .unwrap()
            .len()
            == 5,
        "an expired lease is handed out again"
    );
}

#[tokio::test]
async fn a_restart_releases_only_leases_and_keeps_every_due_time() {
    let (_d, l) = ledger().await;
    for (i, due) in [(0, 5_000), (1, 60_000), (2, 7_000)] {
        let id = format!("r{i}");
        l.accept(&request(&id, JOB_A), "em", 100).await.unwrap();
        let change = Change::to(State::Polling, "task recorded").due(due);
        l.advance(&id, &change, 100, None).await.unwrap();
    }
    // r0 is claimed at 5 000 and its process dies with it in flight.
    assert_eq!(
        l.claim_due(5_000, 1, 99_999, &Skip::default())
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(l.resume().await.unwrap(), 1, "only the lease in flight");
    let due = |id: &'static str| {
        let l = l.clone();
        async move { l.get(id).await.unwrap().unwrap().due_at }
    };
    assert_eq!(due("r0").await, Some(5_000));
    assert_eq!(due("r1").await, Some(60_000), "nothing is pulled forward");
    assert_eq!(due("r2").await, Some(7_000));
    // Spread at one every 1 000 ms from 6 000: r0 → 6 000, r2 → 7 000 (kept), r1 keeps 60 000.
    assert_eq!(l.spread_follow_ups("em", 6_000, 1_000).await.unwrap(), 1);
    assert_eq!(due("r0").await, Some(6_000));
    assert_eq!(due("r2").await, Some(7_000));
    assert_eq!(due("r1").await, Some(60_000));
    assert_eq!(l.spread_follow_ups("other", 6_000, 1_000).await.unwrap(), 0);
}

#[tokio::test]
async fn a_backlog_of_new_requests_does_not_starve_due_polls_nor_polls_new_work() {
    let (_d, l) = ledger().await;
    // 20 old new requests, and 6 polls that became due later.
    for i in 0..20 {
        l.accept(&request(&format!("new-{i}"), JOB_A), "em", 100)
            .await
            .unwrap();
    }
    for i in 0..6 {
        let id = format!("poll-{i}");
        l.accept(&request(&id, JOB_A), "em", 100).await.unwrap();
        let change = Change::to(State::Polling, "task recorded").due(150);
        l.advance(&id, &change, 150, None).await.unwrap();
    }
    let rows = l.claim_due(200, 4, 10_000, &Skip::default()).await.unwrap();
    let polls = rows.iter().filter(|r| r.state == "polling").count();
    assert_eq!(
        (rows.len(), polls),
        (4, 2),
        "half the slots go to due polls"
    );
    // When one side has nothing due, the other takes every slot.
    let rows = l
        .claim_due(200, 10, 10_000, &Skip::default())
        .await
        .unwrap();
    let polls = rows.iter().filter(|r| r.state == "polling").count();
    assert_eq!((rows.len(), polls), (10, 4));
    let rows = l
        .claim_due(200, 50, 10_000, &Skip::default())
        .await
        .unwrap();
    assert_eq!(rows.len(), 12, "the rest of the new work");
}

#[tokio::test]
async fn rows_of_a_down_endpoint_wait_unless_their_deadline_passed() {
    let (_d, l) = ledger().await;
    l.accept(&request("em-1", JOB_A), "em", 100).await.unwrap();
    l.accept(&request("dcs-1", JOB_B), "dcs", 100)
        .await
        .unwrap();
    let body = serde_json::json!({"request_id": "em-late", "not_after": "1970-01-01T00:00:00.150Z",
        "target": {"type": "em.job", "job_id": JOB_B}});
    let late = DeleteRequest::decode(body.to_string().as_bytes(), None).unwrap();
    l.accept(&late, "em", 100).await.unwrap();
    l.accept(&request("em-poll", JOB_A), "em", 100)
        .await
        .unwrap();
    let change = Change::to(State::Polling, "task recorded").due(120);
    l.advance("em-poll", &change, 120, None).await.unwrap();

    let down = Skip::down(vec!["em".to_string()]);
    assert_eq!(
        l.next_due(200, &down).await.unwrap(),
        Some(100),
        "dcs-1 is due"
    );
    let rows = l.claim_due(200, 10, 10_000, &down).await.unwrap();
    let mut ids: Vec<&str> = rows.iter().map(|r| r.request_id.as_str()).collect();
    ids.sort();
    assert_eq!(
        ids,
        ["dcs-1", "em-late"],
        "em-late is claimed to end expired"
    );
    assert_eq!(
        l.next_due(200, &down).await.unwrap(),
        None,
        "em's rows are not counted, the claimed ones are leased"
    );
    let rows = l
        .claim_due(200, 10, 10_000, &Skip::default())
        .await
        .unwrap();
    let mut ids: Vec<&str> = rows.iter().map(|r| r.request_id.as_str()).collect();
    ids.sort();
    assert_eq!(
        ids,
        ["em-1", "em-poll"],
        "up again: everything waiting is due"
    );
}

//! The outbox: each event backs off on its own.

use super::*;

#[tokio::test]
async fn a_refused_event_backs_off_alone_and_the_rows_behind_it_are_taken() {
    let (_d, l) = ledger().await;
    l.add_events(&[event("a"), event("b"), event("c")], 1)
        .await
        .unwrap();
    let first = l.pending_events(10, 2).await.unwrap();
    let ids: Vec<&str> = first.iter().map(|r| r.event_id.as_str()).collect();
    assert_eq!(ids, ["ev-a", "ev-b"], "oldest first");
    let (a, b) = (first[0].seq, first[1].seq);
    l.mark_unpublished(&[RetryAt { seq: a, at: 1000 }])
        .await
        .unwrap();
    l.mark_published(&[b], 10).await.unwrap();

    let next = l.pending_events(10, 2).await.unwrap();
    assert_eq!(next.len(), 1, "the returned row is not due");
    assert_eq!(next[0].event_id, "ev-c", "the row behind it is");
    assert_eq!(l.next_event_at().await.unwrap(), Some(0));
    l.mark_published(&[next[0].seq], 11).await.unwrap();
    assert_eq!(l.next_event_at().await.unwrap(), Some(1000));
    assert!(l.pending_events(999, 10).await.unwrap().is_empty());

    let again = l.pending_events(1000, 10).await.unwrap();
    assert_eq!((again[0].seq, again[0].attempts), (a, 1));
    assert_eq!(l.unpublished_count().await.unwrap(), 1);
    l.mark_published(&[a], 1000).await.unwrap();
    assert_eq!(l.next_event_at().await.unwrap(), None);
    assert_eq!(l.unpublished_count().await.unwrap(), 0);
}

//! The limiter: pauses, throttling back-off, the concurrency cap and its adaptation.

use super::*;

fn unlimited() -> Limiter {
    Limiter::new(Budget {
        rate_per_sec: 0.0,
        burst: 1,
        max_in_flight: 2,
    })
}

#[tokio::test(start_paused = true)]
async fn a_pause_holds_every_caller_until_it_ends() {
    let l = unlimited();
    l.pause_for(Duration::from_secs(3));
    let start = Instant::now();
    let _p = l.acquire().await;
    assert!(start.elapsed() >= Duration::from_secs(3));
    l.pause_for(Duration::from_secs(1));
    l.pause_for(Duration::from_millis(10));
    let start = Instant::now();
    let _q = l.acquire().await;
    assert!(
        start.elapsed() >= Duration::from_secs(1),
        "the longer pause is kept"
    );
}

#[tokio::test(start_paused = true)]
async fn throttling_without_retry_after_backs_off_more_each_episode_until_a_success() {
    let l = unlimited();
    assert_eq!(
        l.throttled(Some(Duration::from_secs(7))),
        Duration::from_secs(7)
    );
    tokio::time::advance(Duration::from_secs(8)).await;
    let mut episodes = Vec::new();
    for _ in 0..3 {
        let d = l.throttled(None);
        // More 429s for calls sent before this pause: the same episode, no growth.
        assert!(l.throttled(None) <= d);
        assert!(l.throttled(None) <= d);
        episodes.push(d);
        tokio::time::advance(d + Duration::from_millis(1)).await;
    }
    // The second to fourth episodes: 1 s, 2 s, 4 s with equal jitter.
    let [d2, d3, d4] = episodes[..] else {
        unreachable!()
    };
    assert!(
        d2 >= Duration::from_millis(500) && d2 <= Duration::from_secs(1),
        "{d2:?}"
    );
    assert!(
        d3 >= Duration::from_secs(1) && d3 <= Duration::from_secs(2),
        "{d3:?}"
    );
    assert!(
        d4 >= Duration::from_secs(2) && d4 <= Duration::from_secs(4),
        "{d4:?}"
    );
    l.recovered();
    let d = l.throttled(None);
    assert!(d <= Duration::from_millis(500), "starts over: {d:?}");
}

#[tokio::test(start_paused = true)]
async fn answers_are_observed_as_throttling_or_recovery() {
    let l = unlimited();
    l.observe(429, Some(Duration::from_secs(2)));
    let start = Instant::now();
    let _p = l.acquire().await;
    assert!(start.elapsed() >= Duration::from_secs(2), "429 pauses");
    let first = l.throttled(None);
    tokio::time::advance(first + Duration::from_millis(1)).await;
    l.observe(500, None);
    let second = l.throttled(None);
    assert!(
        second >= Duration::from_millis(500),
        "500 is no recovery: {second:?}"
    );
    tokio::time::advance(second + Duration::from_millis(1)).await;
    l.observe(404, None);
    let after = l.throttled(None);
    assert!(
        after <= Duration::from_millis(500),
        "a 404 answered: {after:?}"
    );
}

#[tokio::test]
async fn the_concurrency_cap_holds_callers_back() {
    let l = Arc::new(unlimited());
    let a = l.acquire().await;
    let _b = l.acquire().await;
    let waiting = tokio::spawn({
        let l = Arc::clone(&l);
        async move { l.acquire().await }
    });
    tokio::task::yield_now().await;
    assert!(!waiting.is_finished(), "a third call waits for a slot");
    drop(a);
    waiting.await.unwrap();
}

fn capped(max_in_flight: usize) -> Arc<Limiter> {
    Arc::new(Limiter::new(Budget {
        rate_per_sec: 0.0,
        burst: 1,
        max_in_flight,
    }))
}

/// `n` permits whose calls are under way.
async fn sending(l: &Limiter, n: usize) -> Vec<CallPermit> {
    let mut permits = Vec::new();
    for _ in 0..n {
        let mut p = l.acquire().await;
        p.sending("delete");
        permits.push(p);
    }
    permits
}

/// Whether one more call gets a slot at once.
async fn admits_one_more(l: &Limiter) -> bool {
    let more = tokio::time::timeout(Duration::from_millis(50), l.acquire()).await;
    more.is_ok()
}

#[tokio::test]
async fn an_overloaded_endpoint_gets_fewer_calls_in_flight_and_the_lowered_cap_is_obeyed() {
    let l = capped(10);
    let mut calls = sending(&l, 10).await;
    calls[0].answered(503);
    l.observe(503, None);
    // 503s to the other calls already under way belong to the same episode.
    for c in &mut calls[1..5] {
        c.answered(503);
    }
    assert_eq!(l.limits().in_flight, 7, "0.7 × 10 calls in use");
    drop(calls);
    let held = sending(&l, 7).await;
    assert!(!admits_one_more(&l).await, "an eighth call waits");
    drop(held);
    // No pause came with it: the cut is the answer while more than one call may go.
    let start = Instant::now();
    let _p = l.acquire().await;
    assert!(start.elapsed() < Duration::from_secs(1));
}

#[tokio::test]
async fn clean_answers_bring_the_cap_back_to_the_ceiling_and_never_above() {
    let l = capped(4);
    let mut call = sending(&l, 4).await;
    call[0].timed_out();
    assert_eq!(l.limits().in_flight, 2, "a timeout is overload: 0.7 × 4");
    assert!(l.adapted().is_some());
    drop(call);
    for _ in 0..20 {
        let mut p = sending(&l, 1).await.remove(0);
        p.answered(200);
    }
    assert_eq!(l.limits().in_flight, 4);
    assert_eq!(l.adapted(), None, "dormant again");
    let _held = sending(&l, 4).await;
    assert!(!admits_one_more(&l).await, "the ceiling stays a hard limit");
}

#[tokio::test(start_paused = true)]
async fn a_throttling_answer_without_retry_after_pauses_only_at_one_call_in_flight() {
    let l = capped(2);
    let mut call = sending(&l, 2).await;
    call[0].answered(503); // 0.7 × 2: one call in flight
    l.observe(503, None);
    drop(call);
    let start = Instant::now();
    let _p = l.acquire().await;
    assert!(
        start.elapsed() >= Duration::from_millis(250),
        "the back-off pause"
    );
}

#[tokio::test(start_paused = true)]
async fn the_rate_is_lowered_when_it_held_calls_back() {
    let l = Limiter::new(Budget {
        rate_per_sec: 10.0,
        burst: 1,
        max_in_flight: 4,
    });
    let mut first = sending(&l, 2).await; // the second waited 100 ms for the rate
    first[1].answered(429);
    assert_eq!(l.limits().rate, Some(7.0));
    assert_eq!(l.limits().in_flight, 1, "0.7 × the 2 calls in use");
}

#[tokio::test]
async fn a_restored_state_is_in_force_at_once() {
    let l = capped(8);
    l.restore(Adapted {
        in_flight: 3.4,
        rate: None,
        since_signal: Duration::from_secs(5),
    });
    let _held = sending(&l, 3).await;
    assert!(!admits_one_more(&l).await);
    let saved = l.adapted().expect("engaged");
    assert_eq!(saved.in_flight, 3.4);
    assert!(saved.since_signal >= Duration::from_secs(5));
}

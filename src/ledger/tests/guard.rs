//! The guard rails the ledger keeps: the rolling delete cap and the failure breaker.

use super::*;

const HOUR: i64 = CAP_WINDOW_MS;
const LEASE: i64 = i64::MAX;

async fn deletes_rows(l: &Ledger) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM deletes")
        .fetch_one(&l.pool)
        .await
        .unwrap()
}

/// `begin_delete` of `id` at `at` under `cap`.
async fn begin(l: &Ledger, id: &str, at: i64, cap: u32) -> DeleteStart {
    l.begin_delete(id, at, LEASE, cap).await.unwrap()
}

const BEGUN: DeleteStart = DeleteStart::Begun { attempt: 1 };
const T0: i64 = 10 * HOUR;

/// Requests a, b, c, d of `em` and `other` of `dcs`; a and b sent at T0 and T0 + 1 s.
async fn two_sent(l: &Ledger) {
    for id in ["a", "b", "c", "d"] {
        accept_in(l, id, "em", "b", 0).await;
    }
    accept_in(l, "other", "dcs", "b", 0).await;
    assert_eq!(begin(l, "a", T0, 2).await, BEGUN);
    assert_eq!(begin(l, "b", T0 + 1_000, 2).await, BEGUN);
}

#[tokio::test]
async fn the_delete_cap_counts_each_endpoints_deletes_over_a_rolling_hour() {
    let (_d, l) = ledger().await;
    two_sent(&l).await;
    let until = DeleteStart::CapReached { until: T0 + HOUR };
    let refused = begin(&l, "c", T0 + 2_000, 2).await;
    assert_eq!(
        refused, until,
        "the next may go when the oldest leaves the window"
    );
    let c = l.get("c").await.unwrap().unwrap();
    assert_eq!(
        (c.state(), c.attempts),
        (State::Accepted, 0),
        "nothing counted"
    );
    let other = begin(&l, "other", T0 + 2_000, 2).await;
    assert_eq!(other, BEGUN, "each endpoint has its own cap");
    assert_eq!(l.deletes_in_window("em", T0 + 2_000).await.unwrap(), 2);

    let later = begin(&l, "c", T0 + HOUR, 2).await;
    assert_eq!(later, BEGUN, "the first one left the window");
    assert_eq!(l.deletes_in_window("em", T0 + HOUR).await.unwrap(), 2);
    assert_eq!(
        deletes_rows(&l).await,
        3,
        "em's old row was pruned, dcs's kept"
    );
    let history = l.history("c").await.unwrap();
    assert_eq!(history.last().unwrap().note.as_deref(), Some("attempt 1"));
}

#[tokio::test]
async fn a_lowered_cap_waits_for_the_count_to_fall_under_it_and_zero_is_no_cap() {
    let (_d, l) = ledger().await;
    two_sent(&l).await;
    let until = DeleteStart::CapReached {
        until: T0 + 1_000 + HOUR,
    };
    assert_eq!(
        begin(&l, "c", T0 + 3_000, 1).await,
        until,
        "both must leave"
    );
    assert_eq!(begin(&l, "c", T0 + 3_000, 0).await, BEGUN, "0: no cap");
    assert_eq!(begin(&l, "d", T0 + 3_000, 0).await, BEGUN);
    assert_eq!(
        l.deletes_in_window("em", T0 + 3_000).await.unwrap(),
        4,
        "all counted"
    );
}

#[tokio::test]
async fn no_delete_begins_for_a_cancelled_request_or_a_paused_endpoint_or_batch() {
    let (_d, l) = ledger().await;
    accept_in(&l, "a", "em", "b1", 0).await;
    accept_in(&l, "b", "em", "b2", 0).await;
    l.pause(PauseScope::Batch, "b1", "review", 5, None)
        .await
        .unwrap();
    assert_eq!(
        l.begin_delete("a", 10, LEASE, 0).await.unwrap(),
        DeleteStart::Held {
            reason: "batch b1 is paused: review".into()
        }
    );
    l.pause(PauseScope::Endpoint, "em", "by hand", 5, None)
        .await
        .unwrap();
    assert_eq!(
        l.begin_delete("a", 10, LEASE, 0).await.unwrap(),
        DeleteStart::Held {
            reason: "endpoint em is paused: by hand".into()
        },
        "the endpoint's pause first"
    );
    l.cancel(&Selection::Request("b".into()), false, 20)
        .await
        .unwrap();
    assert_eq!(
        l.begin_delete("b", 30, LEASE, 0).await.unwrap(),
        DeleteStart::Cancelled
    );
    for id in ["a", "b"] {
        assert_eq!(l.get(id).await.unwrap().unwrap().attempts, 0, "{id}");
    }
    assert_eq!(deletes_rows(&l).await, 0);
    assert!(l.begin_delete("nope", 30, LEASE, 0).await.is_err());
}

/// Ends `n` requests of `endpoint` with `outcome` (and an error of `kind`), from `at` on.
async fn ends(l: &Ledger, endpoint: &str, outcome: &str, kind: Option<&str>, n: usize, at: i64) {
    for i in 0..n {
        let id = format!("{endpoint}-{outcome}-{}-{at}-{i}", kind.unwrap_or("-"));
        accept_in(l, &id, endpoint, "b", 0).await;
        ended(l, &id, outcome, kind, at + i as i64).await;
    }
}

#[tokio::test]
async fn the_breaker_counts_failures_among_the_last_finished_requests_since_its_reset() {
    let (_d, l) = ledger().await;
    ends(&l, "em", "task_failed", None, 2, 100).await;
    ends(&l, "em", "retries_exhausted", None, 1, 200).await;
    ends(&l, "em", "timed_out", None, 1, 300).await;
    ends(&l, "em", "refused", Some("http"), 1, 400).await;
    ends(&l, "em", "refused", Some("protected"), 3, 500).await;
    ends(&l, "em", "deleted", None, 2, 600).await;
    ends(&l, "dcs", "task_failed", None, 4, 700).await;
    let figures = |window| {
        let l = l.clone();
        async move { l.breaker_figures("em", window).await.unwrap() }
    };
    assert_eq!(
        figures(50).await,
        BreakerFigures {
            failures: 5,
            finished: 10
        }
    );
    assert_eq!(
        figures(6).await,
        BreakerFigures {
            failures: 1,
            finished: 6
        },
        "the last six: the http refusal, three protected, two deleted"
    );
    assert_eq!(figures(0).await, BreakerFigures::default());

    // A resume clears the window: only what finishes from then on counts.
    l.pause(PauseScope::Endpoint, "em", "x", 650, None)
        .await
        .unwrap();
    l.unpause(PauseScope::Endpoint, "em", 700, None)
        .await
        .unwrap();
    assert_eq!(figures(50).await, BreakerFigures::default());
    ends(&l, "em", "timed_out", None, 1, 800).await;
    assert_eq!(
        figures(50).await,
        BreakerFigures {
            failures: 1,
            finished: 1
        }
    );
    assert_eq!(
        l.breaker_figures("dcs", 50).await.unwrap(),
        BreakerFigures {
            failures: 4,
            finished: 4
        },
        "each endpoint its own"
    );
}

#[test]
fn the_breaker_trips_at_its_ratio_once_enough_requests_finished() {
    let rule = BreakerRule {
        ratio: 0.2,
        min: 20,
        window: 50,
    };
    let f = |failures, finished| BreakerFigures { failures, finished };
    assert!(rule.trips(f(4, 20)), "exactly the ratio");
    assert!(rule.trips(f(10, 50)));
    assert!(!rule.trips(f(3, 20)));
    assert!(!rule.trips(f(19, 19)), "fewer than min finished");
    assert!(
        !BreakerRule { ratio: 0.0, ..rule }.trips(f(50, 50)),
        "0 disables it"
    );
    assert!(!BreakerRule { min: 0, ..rule }.trips(f(0, 0)));
}

/// The payload of the event `on_trip` writes: the pause's figures.
fn on_trip(p: &Pause) -> Option<NewEvent> {
    Some(NewEvent {
        request_id: None,
        payload: format!("{}/{}", p.failures.unwrap(), p.finished.unwrap()),
        ..event("paused")
    })
}

#[tokio::test]
async fn the_breaker_pauses_its_endpoint_once_with_the_figures_and_its_event() {
    let (_d, l) = ledger().await;
    let rule = BreakerRule {
        ratio: 0.5,
        min: 4,
        window: 10,
    };
    ends(&l, "em", "task_failed", None, 2, 100).await;
    ends(&l, "em", "deleted", None, 1, 200).await;
    accept_in(&l, "waiting", "em", "b", 0).await;
    let early = l.trip_breaker("em", rule, 300, on_trip).await.unwrap();
    assert_eq!(early, None, "3 < min");
    ends(&l, "em", "task_failed", None, 1, 400).await;
    let pause = l
        .trip_breaker("em", rule, 500, on_trip)
        .await
        .unwrap()
        .unwrap();
    let figures = (pause.failures, pause.finished, pause.since);
    assert_eq!(figures, (Some(3), Some(4), 500));
    let reason = "failure breaker: 3 of the last 4 finished requests failed (trips at 50%)";
    assert_eq!(pause.reason, reason);
    assert_eq!(l.paused().await.unwrap(), [pause]);
    assert!(last_note(&l, "waiting").await.contains(reason));
    let again = l.trip_breaker("em", rule, 600, on_trip).await.unwrap();
    assert_eq!(
        again, None,
        "paused already: no second pause, no second event"
    );
    let events = l.pending_events(1_000, 100).await.unwrap();
    let paused: Vec<&str> = (events.iter())
        .filter(|e| e.event_id == "ev-paused")
        .map(|e| e.payload.as_str())
        .collect();
    assert_eq!(paused, ["3/4"]);
    let disabled = BreakerRule { ratio: 0.0, ..rule };
    let off = l.trip_breaker("dcs", disabled, 700, on_trip).await.unwrap();
    assert_eq!(off, None);
}

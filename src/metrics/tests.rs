//! Unit tests of `metrics`.

use super::*;

fn gauges(h: &Health) -> Snapshot {
    Snapshot {
        requests: vec![StateCount {
            state: "succeeded".into(),
            outcome: Some("deleted".into()),
            count: 3,
        }],
        backlog: 2,
        unpublished: 0,
        ready: h.is_ready(),
        endpoints: h.endpoints().iter().map(|e| e.snapshot()).collect(),
        budgets: h.budgets(),
        commits: 41,
    }
}

#[test]
fn the_gauges_render_as_prometheus_text() {
    let text = gauges(&Health::default()).render();
    for line in [
        "# TYPE reaper_requests gauge",
        "reaper_requests{state=\"succeeded\",outcome=\"deleted\"} 3",
        "reaper_backlog 2",
        "reaper_outbox_unpublished 0",
        "reaper_ready 0",
        "# TYPE reaper_ledger_commits_total counter",
        "reaper_ledger_commits_total 41",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} in {text}");
    }
}

#[test]
fn ready_needs_the_broker_consumed_and_every_endpoint_up() {
    let h = Health::default();
    let em = Arc::new(EndpointHealth::detached("em"));
    h.set_endpoints(vec![Arc::clone(&em)]);
    assert!(!h.is_ready(), "connecting");
    h.set_broker(BrokerState::Consuming);
    assert!(h.is_ready());
    em.trouble("EM answered 401: logon refused for user `svc`");
    assert!(!h.is_ready());
    let r = h.report();
    assert_eq!(r["broker"], "consuming");
    assert_eq!(r["endpoints"]["em"]["state"], "down");
    assert!(
        r["endpoints"]["em"]["reason"]
            .as_str()
            .unwrap()
            .contains("logon refused")
    );
    assert!(
        r["endpoints"]["em"]["since"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );
    let text = gauges(&h).render();
    assert!(
        text.contains("reaper_endpoint_up{endpoint=\"em\"} 0"),
        "{text}"
    );
    em.probe_succeeded("logged on");
    assert!(h.is_ready());
    let text = gauges(&h).render();
    assert!(
        text.contains("reaper_endpoint_up{endpoint=\"em\"} 1"),
        "{text}"
    );
    assert!(text.contains("state=\"up\""), "{text}");
}

#[tokio::test]
async fn the_budgets_in_force_are_shown_per_endpoint() {
    let h = Health::default();
    let budget = crate::limit::Budget {
        rate_per_sec: 10.0,
        burst: 10,
        max_in_flight: 8,
    };
    let em = Arc::new(Limiter::named("em", budget));
    let dcs = Arc::new(Limiter::named("dcs", budget));
    h.set_budgets(vec![Arc::clone(&em), dcs]);
    let mut calls = Vec::new();
    for _ in 0..8 {
        let mut p = em.acquire().await;
        p.sending("delete");
        calls.push(p);
    }
    calls[0].answered(503);
    let text = gauges(&h).render();
    for line in [
        "reaper_endpoint_in_flight_limit{endpoint=\"em\"} 5",
        "reaper_endpoint_rate_limit{endpoint=\"em\"} 10",
        "reaper_endpoint_budget_adapted{endpoint=\"em\"} 1",
        "reaper_endpoint_in_flight_limit{endpoint=\"dcs\"} 8",
        "reaper_endpoint_budget_adapted{endpoint=\"dcs\"} 0",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} in {text}");
    }
}

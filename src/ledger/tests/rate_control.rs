//! The adaptive budgets' saved state.

use super::*;

fn state(endpoint: &str, in_flight: f64, rate: Option<f64>, at: i64) -> RateControl {
    RateControl {
        endpoint: endpoint.into(),
        in_flight_limit: in_flight,
        rate_per_sec: rate,
        last_signal_at: at,
    }
}

#[tokio::test]
async fn an_adapted_budget_is_saved_replaced_and_cleared_per_endpoint_and_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("l.db");
    let l = Ledger::open(&path).await.unwrap();
    assert_eq!(l.rate_controls().await.unwrap(), []);
    l.save_rate_control(&state("em", 5.6, None, 100), 110)
        .await
        .unwrap();
    l.save_rate_control(&state("dcs", 2.0, Some(3.5), 200), 210)
        .await
        .unwrap();
    l.save_rate_control(&state("em", 6.25, None, 300), 310)
        .await
        .unwrap();
    l.close().await;

    let l = Ledger::open(&path).await.unwrap();
    let want = [
        state("dcs", 2.0, Some(3.5), 200),
        state("em", 6.25, None, 300),
    ];
    assert_eq!(l.rate_controls().await.unwrap(), want);
    l.clear_rate_control("dcs").await.unwrap();
    l.clear_rate_control("nowhere").await.unwrap();
    assert_eq!(
        l.rate_controls().await.unwrap(),
        [state("em", 6.25, None, 300)]
    );
}

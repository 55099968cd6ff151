//! The `reaper run` binary as an operator runs it: configured by the environment, serving
//! health and metrics, stopping cleanly on SIGTERM, and never logging a secret.

mod common;

use common::*;
use reaper::event::Outcome;
use reaper::sim::SimConfig;
use std::process::{Command, Stdio};
use std::time::Duration;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn get(url: &str) -> (u16, String) {
    match reqwest::get(url).await {
        Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
        Err(_) => (0, String::new()),
    }
}

#[tokio::test]
async fn reaper_run_serves_health_and_metrics_stops_on_sigterm_and_logs_no_secret() {
    let password = "s3cret-Pa55-word";
    let env = TestEnv::new(SimConfig {
        password: password.into(),
        task_duration: (Duration::from_millis(100), Duration::from_millis(100)),
        ..SimConfig::default()
    })
    .await;
    let mut events = env.watcher().await;
    let metrics = format!("127.0.0.1:{}", free_port());
    let t = &env.cfg.topology;
    let child = Command::new(env!("CARGO_BIN_EXE_reaper"))
        .arg("run")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "debug")
        .env("REAPER_AMQP_URL", env.cfg.amqp_url.expose())
        .env("REAPER_REQUEST_QUEUE", &t.request_queue)
        .env("REAPER_DEAD_LETTER_QUEUE", &t.dead_letter_queue)
        .env("REAPER_DEAD_LETTER_EXCHANGE", &t.dead_letter_exchange)
        .env("REAPER_EVENTS_EXCHANGE", &t.events_exchange)
        .env("REAPER_QUEUE_EXPIRES", "10m")
        .env("REAPER_LEDGER", env.ledger_path())
        .env("REAPER_EM_URL", env.sim.base_url())
        .env("REAPER_EM_USERNAME", "reaper")
        .env("REAPER_EM_PASSWORD", password)
        .env("REAPER_POLL_INITIAL", "100ms")
        .env("REAPER_METRICS_ADDR", &metrics)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();

    wait_until("/readyz answers 200", Duration::from_secs(30), || async {
        get(&format!("http://{metrics}/readyz")).await.0 == 200
    })
    .await;
    assert_eq!(get(&format!("http://{metrics}/healthz")).await.0, 200);
    env.publisher()
        .await
        .publish_all(&[job_request("bin-1", &guid())])
        .await
        .unwrap();
    let got = collect(&mut events, 1, Duration::from_secs(30)).await;
    assert_eq!(got["bin-1"][0].1.data.outcome, Outcome::Deleted);
    wait_until(
        "the metrics count the request",
        Duration::from_secs(10),
        || async {
            get(&format!("http://{metrics}/metrics"))
                .await
                .1
                .contains("reaper_requests{state=\"succeeded\",outcome=\"deleted\"} 1")
        },
    )
    .await;
    let (_, text) = get(&format!("http://{metrics}/metrics")).await;
    assert!(text.contains("reaper_outbox_unpublished 0"), "{text}");
    assert!(text.contains("reaper_ready 1"), "{text}");

    let killed = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let logs = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "exit {:?}: {logs}", out.status);
    assert_eq!(env.sim.stats().logoffs, 1, "the EM session was logged off");
    assert!(
        logs.contains("logged on to Enterprise Manager"),
        "debug logs were captured"
    );
    assert!(
        !logs.contains(password),
        "the EM password leaked into the logs"
    );
    assert!(
        !logs.contains("guest:guest"),
        "the AMQP credentials leaked into the logs"
    );
    env.cleanup().await;
}

#[tokio::test]
async fn a_bad_setting_stops_start_up_with_a_message_naming_the_key() {
    let out = Command::new(env!("CARGO_BIN_EXE_reaper"))
        .arg("run")
        .env("REAPER_RATE_PER_SEC", "lots")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("REAPER_RATE_PER_SEC"), "{err}");
}

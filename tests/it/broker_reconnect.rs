//! The broker connection closed under a running worker (as an operator or a broker failover
//! would, with `rabbitmqctl close_connection`): the worker reconnects intake and publisher
//! while the engine goes on polling with the same EM session — no new logon, no verification
//! by GET — and every task is followed to its end.

use crate::common::*;
use reaper::event::Outcome;
use reaper::metrics::Health;
use reaper::sim::SimConfig;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

/// The broker's ids of the connections whose properties mention `name`.
fn connections_named(name: &str) -> Vec<String> {
    let out = Command::new("rabbitmqctl")
        .args(["-q", "list_connections", "pid", "client_properties"])
        .output()
        .expect("rabbitmqctl runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains(name))
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

fn close_connection(pid: &str) {
    let out = Command::new("rabbitmqctl")
        .args(["-q", "close_connection", pid, "closed by a test"])
        .output()
        .expect("rabbitmqctl runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn a_closed_broker_connection_keeps_the_em_session_and_tasks_are_polled_to_their_end() {
    let mut env = TestEnv::new(SimConfig {
        task_duration: (Duration::from_secs(6), Duration::from_secs(8)),
        ..SimConfig::default()
    })
    .await;
    let name = format!("reconnect-{}", &guid()[..8]);
    env.cfg.worker_name = name.clone();
    let health = Arc::new(Health::default());
    let metrics = serve_metrics(&env, Arc::clone(&health)).await;
    let mut events = env.watcher().await;
    let worker = Worker::start_with(env.cfg.clone(), health);
    let (_, ledger) = jobs_polling(&env, "rc", 20).await;

    let before = connections_named(&format!("reaper/{name}"));
    assert_eq!(before.len(), 1, "the worker's one connection: {before:?}");
    close_connection(&before[0]);
    wait_until(
        "the worker reconnected",
        Duration::from_secs(30),
        || async {
            let now = connections_named(&format!("reaper/{name}"));
            now.len() == 1 && now != before && readyz(&metrics).await.0 == 200
        },
    )
    .await;
    // Intake works again: a request published after the reconnect is deleted too.
    env.publisher()
        .await
        .publish_all(&[job_request("rc-after", &guid())])
        .await
        .unwrap();

    let got = collect(&mut events, 21, Duration::from_secs(60)).await;
    assert_each_once(&got, Outcome::Deleted);
    let stats = env.sim.stats();
    assert_eq!(stats.logons, 1, "the EM session survived: {stats:?}");
    assert_eq!(
        stats.calls.get("GET /api/jobs/{id}"),
        None,
        "nothing was verified by GET: {stats:?}"
    );
    assert!(stats.deletes.values().all(|n| *n == 1), "{stats:?}");
    for i in 0..20 {
        let history = ledger.history(&format!("rc-{i}")).await.unwrap();
        assert!(
            history.iter().all(|t| t.state != "verifying"),
            "{history:?}"
        );
    }
    worker.stop().await;
    assert_eq!(env.sim.stats().logoffs, 1, "logged off once at the end");
    env.cleanup().await;
}

/// A message far larger than the frames reaper proposes, through a queue and back.
async fn round_trip(conn: &lapin::Connection, body: &[u8]) -> Vec<u8> {
    use lapin::options::{BasicGetOptions, BasicPublishOptions, QueueDeclareOptions};
    let ch = conn.create_channel().await.unwrap();
    let q = ch
        .queue_declare(
            "".into(),
            QueueDeclareOptions {
                exclusive: true,
                auto_delete: true,
                ..Default::default()
            },
            Default::default(),
        )
        .await
        .unwrap();
    ch.basic_publish(
        "".into(),
        q.name().as_str().into(),
        BasicPublishOptions::default(),
        body,
        Default::default(),
    )
    .await
    .unwrap();
    for _ in 0..50 {
        if let Some(m) = ch
            .basic_get(q.name().as_str().into(), BasicGetOptions { no_ack: true })
            .await
            .unwrap()
        {
            return m.delivery.data.clone();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the message did not come back within 5 s");
}

#[tokio::test]
async fn connections_use_small_frames_unless_the_url_sets_frame_max_and_large_messages_pass() {
    let url = amqp_url().await;
    let conn = reaper::broker::connect(&url, "reaper-test-frames")
        .await
        .unwrap();
    assert_eq!(conn.configuration().frame_max(), reaper::broker::FRAME_MAX);
    let body: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    assert_eq!(round_trip(&conn, &body).await, body);
    let _ = conn.close(200, "done".into()).await;

    let sep = if url.contains('?') { '&' } else { '?' };
    let url = format!("{url}{sep}frame_max=65536");
    let conn = reaper::broker::connect(&url, "reaper-test-frames")
        .await
        .unwrap();
    assert_eq!(conn.configuration().frame_max(), 65536);
    let _ = conn.close(200, "done".into()).await;
}

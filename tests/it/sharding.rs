//! Sharding by endpoint (design 1.8, issue 11): with `REAPER_ROUTE_BY_ENDPOINT`, requests
//! published through the direct exchange with the endpoint as routing key land in that
//! endpoint's queue, and each worker consumes only the queues of the endpoints it serves; and
//! a queue that exists with other arguments stops start-up with a way to migrate.

use crate::binary::reaper_bin;
use crate::common::*;
use reaper::config::Config;
use reaper::event::Outcome;
use reaper::sim::SimHandle;
use std::time::Duration;

/// A worker's configuration serving one EM endpoint, `name`, on `sim`, routed by endpoint.
fn shard(env: &TestEnv, name: &str, sim: &SimHandle) -> Config {
    let mut cfg = env.cfg.clone();
    cfg.topology.route_by_endpoint = true;
    cfg.ledger = env.dir.path().join(format!("{name}.db"));
    cfg.worker_name = format!("reaper-{name}");
    cfg.em[0].name = name.into();
    cfg.em[0].url = sim.base_url();
    cfg
}

/// `reaper enqueue FILE` routed by endpoint on `env`'s topology: exit code and stderr.
fn enqueue(env: &TestEnv, file: &std::path::Path) -> (Option<i32>, String) {
    let out = reaper_bin()
        .arg("enqueue")
        .arg(file)
        .env("REAPER_AMQP_URL", env.cfg.amqp_url.expose())
        .env("REAPER_REQUEST_QUEUE", &env.cfg.topology.request_queue)
        .env("REAPER_ROUTE_BY_ENDPOINT", "true")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    (out.status.code(), err)
}

/// A file of `n` job deletes for each endpoint named, each line naming its endpoint.
fn requests_for(dir: &std::path::Path, endpoints: &[&str], n: usize) -> std::path::PathBuf {
    let mut lines = Vec::new();
    for e in endpoints {
        for i in 0..n {
            let mut r = job_request(&format!("{e}-{i}"), &guid());
            r.endpoint = Some(e.to_string());
            lines.push(serde_json::to_string(&r).unwrap());
        }
    }
    let file = dir.join(format!("{}.jsonl", endpoints.join("+")));
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    file
}

fn job_deletes(sim: &SimHandle) -> u64 {
    let deletes = sim.stats().deletes.into_iter();
    deletes
        .filter(|(p, _)| p.starts_with("/api/jobs/"))
        .map(|(_, n)| n)
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_each_serve_their_own_endpoint_from_its_own_queue() {
    let env = TestEnv::new(quick_sim()).await;
    let spawn = || reaper::sim::spawn(quick_sim(), "127.0.0.1:0".parse().unwrap());
    let (sim_x, sim_y) = (spawn().await.unwrap(), spawn().await.unwrap());
    let mut events = env.watcher().await;
    let wx = Worker::start(shard(&env, "em-x", &sim_x));
    let wy = Worker::start(shard(&env, "em-y", &sim_y));
    let queue = |e: &str| format!("{}.{e}", env.cfg.topology.request_queue);
    wait_until(
        "both shard queues exist",
        Duration::from_secs(30),
        || async {
            queue_exists(&env, &queue("em-x")).await && queue_exists(&env, &queue("em-y")).await
        },
    )
    .await;

    let (code, err) = enqueue(&env, &requests_for(env.dir.path(), &["em-x", "em-y"], 15));
    assert_eq!(code, Some(0), "{err}");
    let got = collect(&mut events, 30, Duration::from_secs(60)).await;
    assert_each_once(&got, Outcome::Deleted);
    assert_eq!(
        job_deletes(&sim_x),
        15,
        "em-x's worker called only its simulator"
    );
    assert_eq!(
        job_deletes(&sim_y),
        15,
        "em-y's worker called only its simulator"
    );
    let x_ledger = reaper::ledger::Ledger::open(&env.dir.path().join("em-x.db"))
        .await
        .unwrap();
    let x_counts = x_ledger.counts().await.unwrap();
    assert_eq!(x_counts.iter().map(|c| c.count).sum::<i64>(), 15);
    x_ledger.close().await;

    // An endpoint no worker serves has no queue: nothing is published.
    let (code, err) = enqueue(&env, &requests_for(env.dir.path(), &["em-z"], 1));
    assert_ne!(code, Some(0));
    assert!(err.contains("no queue") && err.contains("em-z"), "{err}");
    wx.stop().await;
    wy.stop().await;
    sim_x.shutdown().await;
    sim_y.shutdown().await;
    let ch = env.conn.create_channel().await.unwrap();
    for e in ["em-x", "em-y"] {
        let _ = ch
            .queue_delete(queue(e).as_str().into(), Default::default())
            .await;
    }
    let exchange = env.cfg.topology.request_queue.as_str();
    let _ = ch
        .exchange_delete(exchange.into(), Default::default())
        .await;
    env.cleanup().await;
}

/// Whether `queue` exists (a passive declare on a channel of its own).
async fn queue_exists(env: &TestEnv, queue: &str) -> bool {
    let ch = env.conn.create_channel().await.unwrap();
    let passive = lapin::options::QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    let found = ch
        .queue_declare(queue.into(), passive, Default::default())
        .await
        .is_ok();
    let _ = ch.close(200, "checked".into()).await;
    found
}

#[tokio::test]
async fn a_request_queue_declared_without_single_active_consumer_stops_start_up_saying_how_to_migrate()
 {
    let env = TestEnv::new(quick_sim()).await;
    let mut cfg = env.cfg.clone();
    cfg.topology.request_queue = format!("{}.old", env.cfg.topology.request_queue);
    // An older deployment's queue: quorum, dead-lettering, but no single active consumer.
    let ch = env.conn.create_channel().await.unwrap();
    let mut args = lapin::types::FieldTable::default();
    let long = |s: &str| lapin::types::AMQPValue::LongString(s.into());
    args.insert("x-queue-type".into(), long("quorum"));
    args.insert(
        "x-dead-letter-exchange".into(),
        long(&cfg.topology.dead_letter_exchange),
    );
    args.insert(
        "x-expires".into(),
        lapin::types::AMQPValue::LongLongInt(600_000),
    );
    let durable = lapin::options::QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    let name = cfg.topology.request_queue.clone();
    ch.queue_declare(name.as_str().into(), durable, args)
        .await
        .unwrap();
    let worker = Worker::start(cfg);
    let err = worker.result(Duration::from_secs(30)).await.unwrap_err();
    let err = format!("{err:#}");
    assert!(err.contains(&format!("queue `{name}` exists")), "{err}");
    assert!(err.contains("x-single-active-consumer"), "{err}");
    assert!(
        err.contains("delete it") && err.contains("REAPER_REQUEST_QUEUE"),
        "{err}"
    );
    let _ = ch
        .queue_delete(name.as_str().into(), Default::default())
        .await;
    env.cleanup().await;
}

//! One worker, several endpoints (design 1.8), through RabbitMQ, a ledger file and simulators
//! over HTTP: two EMs and a DCS from `[[em]]` / `[[dcs]]` tables each get only the requests
//! that name them, each within its own budget; an EM that is down holds only its own
//! requests; a request that names no endpoint under two EMs is refused with their names; and
//! each endpoint's guard rails are its own, its protection added to the top-level one.

use crate::common::*;
use reaper::config::{Config, Format, GuardOverrides};
use reaper::event::Outcome;
use reaper::limit::Budget;
use reaper::request::RequestWire;
use reaper::sim::{Inventory, InventoryJob, SimConfig, SimHandle};
use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

const PROJECT: &str = "a4d31cb6-3d72-4fdc-8ec9-6e3a41e47f71";
const INSTANCE: &str = "5560df16-cebf-4473-95c4-d1b573c16e79";
const TOKEN: &str = "static-endpoints-token";

fn quick() -> SimConfig {
    SimConfig {
        task_duration: (Duration::from_millis(100), Duration::from_millis(200)),
        dcs_static_token: Some(TOKEN.into()),
        ..SimConfig::default()
    }
}

async fn spawn(sim: SimConfig) -> SimHandle {
    reaper::sim::spawn(sim, "127.0.0.1:0".parse().unwrap())
        .await
        .expect("a simulator starts")
}

/// `req`, naming `endpoint`.
fn to(endpoint: &str, req: RequestWire) -> RequestWire {
    RequestWire {
        endpoint: Some(endpoint.into()),
        ..req
    }
}

/// `n` job deletions `{prefix}-{i}` for `endpoint`.
fn jobs(endpoint: &str, prefix: &str, n: usize) -> Vec<RequestWire> {
    (0..n)
        .map(|i| to(endpoint, job_request(&format!("{prefix}-{i}"), &guid())))
        .collect()
}

/// The paths the requests' DELETEs go to.
fn paths(requests: &[RequestWire]) -> BTreeSet<String> {
    requests
        .iter()
        .map(|r| match r.target["type"].as_str() {
            Some("em.job") => format!("/api/jobs/{}", r.target["job_id"].as_str().unwrap()),
            _ => format!(
                "/v2/{PROJECT}/instances/{INSTANCE}/tasks/{}",
                r.target["task_id"].as_str().unwrap()
            ),
        })
        .collect()
}

/// Every DELETE `sim` saw went to one of `want`, each once, and every one of `want` came.
fn assert_deleted_exactly(sim: &SimHandle, want: &[RequestWire], who: &str) {
    let stats = sim.stats();
    let got: BTreeSet<String> = stats.deletes.keys().cloned().collect();
    assert_eq!(got, paths(want), "{who} saw exactly its own DELETEs");
    assert!(stats.deletes.values().all(|n| *n == 1), "{who}: {stats:?}");
}

/// An EM endpoint named `name` on `sim`, without a rate limit.
fn em_on(sim: &SimHandle, name: &str) -> reaper::config::EmSettings {
    let budget = Budget {
        rate_per_sec: 0.0,
        burst: 100,
        max_in_flight: 16,
    };
    reaper::config::EmSettings {
        name: name.into(),
        ..reaper::cli::harness::em_settings(sim, Format::Xml, budget)
    }
}

#[tokio::test]
async fn two_ems_and_a_dcs_from_tables_each_get_only_their_requests_within_their_own_budget() {
    let mut env = TestEnv::new(quick()).await;
    let (em_b, dcs) = (spawn(quick()).await, spawn(quick()).await);
    let password = env.dir.path().join("em-b-password");
    std::fs::write(&password, "reaper\n").unwrap();
    let toml = env.dir.path().join("reaper.toml");
    std::fs::write(
        &toml,
        format!(
            "rate_per_sec = 10\nburst = 2\n\n\
             [[em]]\nname = \"em-a\"\nurl = \"{}\"\nusername = \"reaper\"\npassword = \"reaper\"\n\
             rate_per_sec = 20\nburst = 5\n\n\
             [[em]]\nname = \"em-b\"\nurl = \"{}\"\nusername = \"reaper\"\n\
             password_file = \"{}\"\nformat = \"json\"\n\n\
             [[dcs]]\nname = \"dcs-1\"\nurl = \"{}\"\ntoken = \"{TOKEN}\"\nburst = 3\n",
            env.sim.base_url(),
            em_b.base_url(),
            password.display(),
            dcs.base_url()
        ),
    )
    .unwrap();
    let file = Config::from_vars([("REAPER_CONFIG".into(), toml.to_str().unwrap().into())])
        .expect("the tables are read");
    env.cfg.em = file.em;
    env.cfg.dcs = file.dcs;
    env.cfg.endpoint_guards = file.endpoint_guards;

    let for_a = jobs("em-a", "a", 60);
    let for_b = jobs("em-b", "b", 30);
    let for_dcs: Vec<_> = (0..30)
        .map(|i| {
            to(
                "dcs-1",
                dcs_request(&format!("d-{i}"), PROJECT, INSTANCE, &task_id()),
            )
        })
        .collect();
    let mut events = env.watcher().await;
    let publisher = env.publisher().await;
    for requests in [&for_a, &for_b, &for_dcs] {
        publisher.publish_all(requests).await.unwrap();
    }
    let worker = env.start_worker();
    let n = for_a.len() + for_b.len() + for_dcs.len();
    let got = collect(&mut events, n, Duration::from_secs(120)).await;
    assert_each_once(&got, Outcome::Deleted);

    assert_deleted_exactly(&env.sim, &for_a, "em-a");
    assert_deleted_exactly(&em_b, &for_b, "em-b");
    assert_deleted_exactly(&dcs, &for_dcs, "dcs-1");
    // Each budget holds on its own: rate + burst, measured at each server.
    for (sim, who, most) in [
        (&env.sim, "em-a", 25),
        (&em_b, "em-b", 12),
        (&dcs, "dcs-1", 13),
    ] {
        let stats = sim.stats();
        assert!(
            stats.max_calls_per_second <= most,
            "{who}'s busiest second saw {} calls, over its budget's {most}",
            stats.max_calls_per_second
        );
    }
    assert!(em_b.stats().logons >= 1, "em-b's password file was used");
    worker.stop().await;
    em_b.shutdown().await;
    dcs.shutdown().await;
    env.cleanup().await;
}

#[tokio::test]
async fn an_em_that_is_down_holds_only_its_own_requests_while_the_other_finishes_them_all() {
    let mut env = TestEnv::new(quick()).await;
    let port = free_port();
    let mut down = em_on(&env.sim, "em-b");
    down.url = format!("http://127.0.0.1:{port}");
    env.cfg.em = vec![em_on(&env.sim, "em-a"), down];
    let for_b = jobs("em-b", "b", 30);
    let for_a = jobs("em-a", "a", 30);
    let mut events = env.watcher().await;
    // em-b's requests are ahead in the queue: they must not stand in em-a's way.
    let publisher = env.publisher().await;
    publisher.publish_all(&for_b).await.unwrap();
    publisher.publish_all(&for_a).await.unwrap();
    let worker = env.start_worker();

    let got = collect(&mut events, for_a.len(), Duration::from_secs(60)).await;
    assert_each_once(&got, Outcome::Deleted);
    assert!(
        got.keys().all(|id| id.starts_with("a-")),
        "{:?}",
        got.keys()
    );
    assert_deleted_exactly(&env.sim, &for_a, "em-a");
    let ledger = env.ledger().await;
    for r in &for_b {
        let row = ledger.get(r.request_id.as_deref().unwrap()).await.unwrap();
        let row = row.expect("recorded");
        assert_eq!(
            (row.outcome.as_deref(), row.attempts),
            (None, 0),
            "em-b's wait: {row:?}"
        );
    }

    let em_b = reaper::sim::spawn(quick(), format!("127.0.0.1:{port}").parse().unwrap())
        .await
        .expect("the port is free");
    // The prober has backed off to at most 16 s by now: its next logon finds em-b.
    let got = collect(&mut events, for_b.len(), Duration::from_secs(90)).await;
    assert_each_once(&got, Outcome::Deleted);
    assert_deleted_exactly(&em_b, &for_b, "em-b");
    assert_deleted_exactly(&env.sim, &for_a, "em-a, still");
    worker.stop().await;
    em_b.shutdown().await;
    env.cleanup().await;
}

#[tokio::test]
async fn a_request_naming_no_endpoint_under_two_ems_is_refused_with_their_names() {
    let mut env = TestEnv::new(quick()).await;
    let em_b = spawn(quick()).await;
    env.cfg.em = vec![em_on(&env.sim, "em-a"), em_on(&em_b, "em-b")];
    let mut events = env.watcher().await;
    let worker = env.start_worker();
    let requests = vec![
        job_request("unnamed", &guid()),
        to("em-c", job_request("unknown", &guid())),
        to("em-b", job_request("named", &guid())),
    ];
    env.publisher().await.publish_all(&requests).await.unwrap();
    let got = collect(&mut events, 3, Duration::from_secs(30)).await;
    let event = |id: &str| got[id][0].1.data.clone();
    assert_eq!(event("named").outcome, Outcome::Deleted);
    for (id, says) in [
        (
            "unnamed",
            "the request names no `endpoint` and 2 Enterprise Manager endpoints are configured (`em-a`, `em-b`): set `endpoint` to one of them",
        ),
        (
            "unknown",
            "unknown endpoint `em-c` (configured Enterprise Manager endpoints: `em-a`, `em-b`)",
        ),
    ] {
        let data = event(id);
        assert_eq!(data.outcome, Outcome::Refused, "{id}: {data:?}");
        let error = data.error.unwrap();
        assert_eq!(
            (error.kind.as_str(), error.message.as_str()),
            ("unsupported", says)
        );
    }
    assert_eq!(
        env.sim.stats().count_method("DELETE"),
        0,
        "never picked for it"
    );
    assert_deleted_exactly(&em_b, &requests[2..], "em-b");
    worker.stop().await;
    em_b.shutdown().await;
    env.cleanup().await;
}

/// A simulator whose EM knows `jobs`.
fn knowing(jobs: &[&InventoryJob]) -> SimConfig {
    let jobs = jobs.iter().map(|j| (*j).clone()).collect();
    SimConfig {
        inventory: Some(Inventory { jobs }),
        ..quick()
    }
}

#[tokio::test]
async fn each_endpoint_has_its_own_guard_rails_and_its_protection_adds_to_the_top_level_one() {
    let (shared, global, fin_a, fin_b, free) = (
        named_job("shared"),
        named_job("global"),
        named_job("fin-a"),
        named_job("fin-b"),
        named_job("free"),
    );
    let mut env = TestEnv::new(knowing(&[&shared, &global, &fin_a])).await;
    let em_b = spawn(knowing(&[&shared, &global, &fin_b, &free])).await;
    env.cfg.em = vec![em_on(&env.sim, "em-a"), em_on(&em_b, "em-b")];
    let (top, own) = (
        env.dir.path().join("top.txt"),
        env.dir.path().join("em-b.txt"),
    );
    std::fs::write(&top, format!("{}\n", global.id)).unwrap();
    std::fs::write(&own, format!("# em-b only\n{}\n", shared.id)).unwrap();
    env.cfg.guard.protect_file = Some(top);
    let dry_run = GuardOverrides {
        dry_run: Some(true),
        ..Default::default()
    };
    let protect = GuardOverrides {
        protect_file: Some(own),
        protect_job_names: vec!["fin-*".into()],
        ..Default::default()
    };
    env.cfg.endpoint_guards = HashMap::from([("em-a".into(), dry_run), ("em-b".into(), protect)]);
    let mut events = env.watcher().await;
    let worker = env.start_worker();
    let job = |id: &str, endpoint: &str, j: &InventoryJob| {
        to(endpoint, job_request(id, &j.id.to_string()))
    };
    let requests = [
        job("a-shared", "em-a", &shared),
        job("a-global", "em-a", &global),
        job("a-fin", "em-a", &fin_a),
        job("b-shared", "em-b", &shared),
        job("b-global", "em-b", &global),
        job("b-fin", "em-b", &fin_b),
        job("b-free", "em-b", &free),
    ];
    env.publisher().await.publish_all(&requests).await.unwrap();
    let got = collect(&mut events, requests.len(), Duration::from_secs(30)).await;
    let outcome = |id: &str| {
        let d = &got[id][0].1.data;
        let message = d
            .error
            .as_ref()
            .map(|e| e.message.clone())
            .unwrap_or_default();
        (d.outcome, message)
    };
    for id in ["a-shared", "a-fin"] {
        assert_eq!(
            outcome(id).0,
            Outcome::Planned,
            "em-a's dry run, its own: {id}"
        );
    }
    for (id, rule) in [
        ("a-global", "REAPER_PROTECT_FILE line 1"),
        ("b-global", "REAPER_PROTECT_FILE line 1"),
        ("b-shared", "protect_file of `em-b` line 2"),
        ("b-fin", "matches `fin-*` (protect_job_names of `em-b`)"),
    ] {
        let (o, message) = outcome(id);
        assert_eq!(o, Outcome::Refused, "{id}");
        assert!(message.contains(rule), "{id}: {message}");
    }
    assert_eq!(outcome("b-free").0, Outcome::Deleted);
    assert_eq!(env.sim.stats().count_method("DELETE"), 0, "em-a runs dry");
    assert_deleted_exactly(&em_b, &requests[6..], "em-b");
    worker.stop().await;
    em_b.shutdown().await;
    env.cleanup().await;
}

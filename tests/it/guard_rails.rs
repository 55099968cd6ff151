//! The guard rails end to end (design 1.6), through RabbitMQ, a ledger file and the
//! simulator over HTTP: the dry run, protected ids and job names (with the protect file
//! changed while the worker runs).

use crate::common::*;
use reaper::event::{CloudEvent, Outcome};
use reaper::request::RequestWire;
use reaper::sim::{Inventory, InventoryJob, SimConfig};
use std::collections::HashMap;
use std::time::Duration;
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(30);

fn quick(jobs: Vec<InventoryJob>) -> SimConfig {
    SimConfig {
        task_duration: (Duration::from_millis(100), Duration::from_millis(200)),
        inventory: Some(Inventory { jobs }),
        ..SimConfig::default()
    }
}

fn event_of(got: &HashMap<String, Vec<(String, CloudEvent)>>, id: &str) -> CloudEvent {
    let events = &got[id];
    assert_eq!(
        events.len(),
        1,
        "{id}: exactly one outcome event: {events:?}"
    );
    events[0].1.clone()
}

#[tokio::test]
async fn a_dry_run_plans_what_exists_reports_what_is_gone_and_deletes_nothing() {
    let jobs: Vec<InventoryJob> = (0..25).map(|i| named_job(&format!("job-{i}"))).collect();
    let mut env = TestEnv::new(quick(jobs.clone())).await.with_iam_dcs();
    env.cfg.guard.dry_run = true;
    let mut events = env.watcher().await;
    let worker = env.start_worker();
    let mut requests: Vec<RequestWire> = jobs
        .iter()
        .enumerate()
        .map(|(i, j)| job_request(&format!("present-{i}"), &j.id.to_string()))
        .collect();
    // Five jobs EM does not know (already gone) and five DCS tasks.
    requests.extend((0..5).map(|i| job_request(&format!("gone-{i}"), &guid())));
    requests.extend((0..5).map(|i| dcs_request(&format!("dcs-{i}"), "p", "i", &task_id())));
    env.publisher().await.publish_all(&requests).await.unwrap();
    let got = collect(&mut events, 35, WAIT).await;
    for i in 0..25 {
        let ev = event_of(&got, &format!("present-{i}"));
        assert_eq!(ev.data.outcome, Outcome::Planned, "{:?}", ev.data);
        assert_eq!(ev.data.checked, Some(true));
        assert_eq!(ev.routing_key(), "delete.planned");
    }
    for i in 0..5 {
        let gone = event_of(&got, &format!("gone-{i}"));
        assert_eq!(gone.data.outcome, Outcome::AlreadyAbsent, "{:?}", gone.data);
        let dcs = event_of(&got, &format!("dcs-{i}"));
        assert_eq!(dcs.data.outcome, Outcome::Planned, "{:?}", dcs.data);
        assert_eq!(dcs.data.checked, Some(false), "DCS has no GET of one task");
    }
    let stats = env.sim.stats();
    assert_eq!(
        stats.count_method("DELETE"),
        0,
        "a dry run sends no DELETE: {stats:?}"
    );
    for r in requests.iter().take(30) {
        let job_id = r.target["job_id"].as_str().unwrap();
        let path = format!("/api/jobs/{job_id}");
        assert_eq!(
            stats.gets.get(&path),
            Some(&1),
            "one GET per EM request: {path}"
        );
    }
    worker.stop().await;
    env.cleanup().await;
}

/// Writes the protect file in one rename, as an editor or a config-management tool would.
fn write_protect_file(path: &std::path::Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

#[tokio::test]
async fn protected_ids_and_job_names_are_refused_without_a_delete_and_file_changes_are_obeyed() {
    let prod = named_job("PROD-database");
    let (by_id, by_urn, free, later) = (
        named_job("a"),
        named_job("b"),
        named_job("c"),
        named_job("d"),
    );
    let jobs = vec![
        prod.clone(),
        by_id.clone(),
        by_urn.clone(),
        free.clone(),
        later.clone(),
    ];
    let mut env = TestEnv::new(quick(jobs)).await.with_iam_dcs();
    let file = env.dir.path().join("protect.txt");
    let instance = Uuid::new_v4().to_string();
    write_protect_file(
        &file,
        &format!(
            "# never touch\n{}\nurn:veeam:Job:{}  # by URN\n\n{instance}\n",
            by_id.id,
            by_urn.id.to_string().to_uppercase()
        ),
    );
    env.cfg.guard.protect_file = Some(file.clone());
    env.cfg.guard.protect_job_names = vec!["prod-*".into()];
    let mut events = env.watcher().await;
    let worker = env.start_worker();
    let include = |id: &str, j: &InventoryJob| RequestWire {
        request_id: Some(id.into()),
        target: serde_json::json!({"type": "em.job_include", "job_id": j.id.to_string(),
            "include_id": j.includes[0].to_string()}),
        ..Default::default()
    };
    let requests = vec![
        job_request("by-id", &by_id.id.to_string()),
        include("include-of-protected-job", &by_urn),
        job_request("by-name", &prod.id.to_string()),
        dcs_request("dcs-instance", "p", &instance, &task_id()),
        job_request("free", &free.id.to_string()),
    ];
    let publisher = env.publisher().await;
    publisher.publish_all(&requests).await.unwrap();
    let got = collect(&mut events, 5, WAIT).await;
    for id in [
        "by-id",
        "include-of-protected-job",
        "by-name",
        "dcs-instance",
    ] {
        let ev = event_of(&got, id);
        assert_eq!(ev.data.outcome, Outcome::Refused, "{id}: {:?}", ev.data);
        let error = ev.data.error.unwrap();
        assert_eq!(error.kind, "protected", "{id}");
        assert!(!error.message.is_empty(), "{id}: the rule is named");
    }
    assert!(
        event_of(&got, "by-name")
            .data
            .error
            .unwrap()
            .message
            .contains("prod-*"),
        "the glob is named"
    );
    assert_eq!(event_of(&got, "free").data.outcome, Outcome::Deleted);
    let stats = env.sim.stats();
    assert_eq!(
        stats.count_method("DELETE"),
        1,
        "only `free` was deleted: {stats:?}"
    );
    assert_eq!(
        stats.gets.get(&format!("/api/jobs/{}", prod.id)),
        Some(&1),
        "one name read"
    );

    // The file changes while the worker runs: the new id is protected within seconds.
    write_protect_file(&file, &format!("{}\n", later.id));
    tokio::time::sleep(Duration::from_secs(4)).await;
    publisher
        .publish_all(&[job_request("later", &later.id.to_string())])
        .await
        .unwrap();
    let got = collect(&mut events, 1, WAIT).await;
    assert_eq!(event_of(&got, "later").data.outcome, Outcome::Refused);

    // A malformed file stops every DELETE until it is fixed; then the request goes through.
    write_protect_file(&file, "this is not an id\n");
    tokio::time::sleep(Duration::from_secs(4)).await;
    let held = job_request("held", &by_id.id.to_string());
    publisher.publish_all(&[held]).await.unwrap();
    let ledger = env.ledger().await;
    wait_for_state(&ledger, "accepted", 1, WAIT).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        env.sim.stats().count_method("DELETE"),
        1,
        "no DELETE while malformed"
    );
    let row = ledger.get("held").await.unwrap().unwrap();
    assert_eq!(row.outcome, None, "the request waits: {row:?}");
    write_protect_file(&file, "# nothing protected now\n");
    let got = collect(&mut events, 1, WAIT).await;
    assert_eq!(event_of(&got, "held").data.outcome, Outcome::Deleted);
    worker.stop().await;
    env.cleanup().await;
}

//! The EM simulator's reads and run-time knobs over real HTTP: `GET` on every resource path
//! a dry run checks (200 while it exists, 404 once gone, in XML and JSON), job names from the
//! inventory, the counters of GETs, DELETEs and stopped tasks, and `/_sim/faults`.

use std::time::Duration;

use reaper::em::codec::{Format, decode_job_ref, decode_task};
use reaper::sim::{Faults, Inventory, InventoryJob, SimConfig, SimHandle};
use reqwest::{Method, StatusCode};
use uuid::Uuid;

use crate::common::em_http::{Em, start_sim};

const TASK_TIME: Duration = Duration::from_millis(150);

/// A strict simulator with one named job (two includes, a linked repository and a linked
/// job) and one unnamed job; returns it with the named job's resource paths (job first).
async fn inventory_sim(cfg: SimConfig) -> (SimHandle, Vec<String>, Uuid) {
    let [job, inc, keep, repo, linked, unnamed] = [(); 6].map(|_| Uuid::new_v4());
    let inventory = Inventory {
        jobs: vec![
            InventoryJob {
                id: job,
                name: Some("prod-crm & <co>".into()),
                includes: vec![inc, keep],
                linked_repositories: vec![repo],
                linked_jobs: vec![linked],
            },
            InventoryJob {
                id: unnamed,
                ..InventoryJob::default()
            },
        ],
    };
    let sim = start_sim(SimConfig {
        task_duration: (TASK_TIME, TASK_TIME),
        inventory: Some(inventory),
        ..cfg
    })
    .await;
    let paths = vec![
        format!("/jobs/{job}"),
        format!("/jobs/{job}/includes/{inc}"),
        format!("/jobs/{job}/linkedBackupRepositories/{repo}"),
        format!("/jobs/{job}/linkedJobs/{linked}"),
    ];
    (sim, paths, unnamed)
}

/// Asserts the status of `GET` on each path.
async fn assert_gets(em: &Em, format: Format, token: &str, paths: &[String], want: StatusCode) {
    for path in paths {
        let a = em.call_in(format, Method::GET, path, token).await;
        assert_eq!(a.status, want, "{format:?} GET {path}: {}", a.body);
        if want == StatusCode::NOT_FOUND {
            assert!(a.error_message(format).contains("was not found"), "{path}");
        }
    }
}

#[tokio::test]
async fn every_resource_path_answers_get_200_while_it_exists_and_404_once_deleted_in_both_formats()
{
    for format in [Format::Xml, Format::Json] {
        let (sim, paths, _) = inventory_sim(SimConfig::default()).await;
        let em = Em::new(&sim);
        let (token, _) = em.logon().await;
        assert_gets(&em, format, &token, &paths, StatusCode::OK).await;
        let unknown = [
            format!("/jobs/{}", Uuid::new_v4()),
            format!("{}/includes/{}", paths[0], Uuid::new_v4()),
            format!("{}/linkedBackupRepositories/{}", paths[0], Uuid::new_v4()),
            format!("{}/linkedJobs/{}", paths[0], Uuid::new_v4()),
        ];
        assert_gets(&em, format, &token, &unknown, StatusCode::NOT_FOUND).await;

        for child in &paths[1..] {
            let a = em.call_in(format, Method::DELETE, child, &token).await;
            assert_eq!(a.status, StatusCode::ACCEPTED, "{child}");
        }
        assert_gets(&em, format, &token, &paths, StatusCode::OK).await;
        tokio::time::sleep(TASK_TIME * 2).await;
        assert_gets(&em, format, &token, &paths[1..], StatusCode::NOT_FOUND).await;
        em.call_in(format, Method::DELETE, &paths[0], &token).await;
        tokio::time::sleep(TASK_TIME * 2).await;
        assert_gets(&em, format, &token, &paths[..1], StatusCode::NOT_FOUND).await;
        sim.shutdown().await;
    }
}

#[tokio::test]
async fn a_job_answers_its_reference_with_the_inventory_name_or_a_generated_one() {
    let (sim, paths, unnamed) = inventory_sim(SimConfig::default()).await;
    let em = Em::new(&sim);
    let (token, _) = em.logon().await;
    let guid = paths[0].trim_start_matches("/jobs/").to_string();
    for format in [Format::Xml, Format::Json] {
        let a = em.call_in(format, Method::GET, &paths[0], &token).await;
        assert_eq!(a.headers["content-type"], format.media_type());
        let job = decode_job_ref(format, &a.body).unwrap();
        assert_eq!(job.name, "prod-crm & <co>");
        assert_eq!(job.uid, format!("urn:veeam:Job:{guid}"));
        assert_eq!(job.href, format!("{}{}", em.api, paths[0]));
        let unnamed = format!("/jobs/{unnamed}");
        let other = em.call_in(format, Method::GET, &unnamed, &token).await;
        assert_eq!(decode_job_ref(format, &other.body).unwrap().name, "job-2");
    }
    let xml = em.call(Method::GET, &paths[0], &token).await.body;
    assert!(xml.starts_with("<EntityRef "), "{xml}");
    assert!(xml.contains("Type=\"JobReference\""), "{xml}");
    let json = em
        .call_in(Format::Json, Method::GET, &paths[0], &token)
        .await;
    let v: serde_json::Value = serde_json::from_str(&json.body).unwrap();
    assert_eq!(v["Type"], "JobReference");
    sim.shutdown().await;
}

#[tokio::test]
async fn a_task_answers_get_200_in_its_session_404_when_unknown_and_500_in_another_session() {
    let (sim, paths, _) = inventory_sim(SimConfig::default()).await;
    let em = Em::new(&sim);
    let (token, _) = em.logon().await;
    let (other, _) = em.logon().await;
    em.call(Method::DELETE, &paths[1], &token).await;
    for format in [Format::Xml, Format::Json] {
        let own = em
            .call_in(format, Method::GET, "/tasks/task-1", &token)
            .await;
        assert_eq!(own.status, StatusCode::OK);
        assert_eq!(decode_task(format, &own.body).unwrap().task_id, "task-1");
        let unknown = em
            .call_in(format, Method::GET, "/tasks/task-7", &token)
            .await;
        assert_eq!(unknown.status, StatusCode::NOT_FOUND);
        assert!(unknown.error_message(format).contains("task-7"));
        let foreign = em
            .call_in(format, Method::GET, "/tasks/task-1", &other)
            .await;
        assert_eq!(foreign.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(
            foreign
                .error_message(format)
                .contains("in current rest session")
        );
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn stats_count_gets_and_deletes_per_path_and_the_running_tasks_stopped() {
    let (sim, paths, _) = inventory_sim(SimConfig::default()).await;
    let em = Em::new(&sim);
    let (token, _) = em.logon().await;
    for path in &paths {
        em.call(Method::GET, path, &token).await;
    }
    em.call(Method::DELETE, &paths[0], &token).await; // task-1, running
    em.call(Method::DELETE, &paths[2], &token).await; // task-2, left to finish
    let stopped = em.call(Method::DELETE, "/tasks/task-1", &token).await;
    assert_eq!(stopped.status, StatusCode::NO_CONTENT);
    assert!(stopped.body.is_empty());
    tokio::time::sleep(TASK_TIME * 2).await;
    let removed = em.call(Method::DELETE, "/tasks/task-2", &token).await;
    assert_eq!(removed.status, StatusCode::NO_CONTENT, "a finished task");
    em.call(Method::GET, &paths[0], &token).await;

    let stats = sim.stats();
    assert_eq!(stats.tasks_stopped, 1, "only the running task was stopped");
    assert_eq!(stats.count("DELETE /api/tasks/{id}"), 2);
    assert_eq!(stats.count("DELETE /api/jobs/{id}"), 1);
    assert_eq!(stats.count("GET /api/jobs/{id}"), 2);
    assert_eq!(stats.count("GET /api/jobs/{id}/linkedJobs/{id}"), 1);
    assert_eq!(stats.count_method("DELETE"), 4);
    assert_eq!(stats.count_method("GET"), 5);
    assert_eq!(stats.gets[&format!("/api{}", paths[0])], 2);
    assert_eq!(stats.gets.values().sum::<u64>(), 5);
    assert_eq!(stats.deletes["/api/tasks/task-1"], 1);
    let job_still_there = em.call(Method::GET, &paths[0], &token).await;
    assert_eq!(job_still_there.status, StatusCode::OK, "a stopped deletion");
    sim.shutdown().await;
}

/// `POST /_sim/faults` with `body`: the status and the JSON answered.
async fn post_faults(sim: &SimHandle, body: &str) -> (StatusCode, serde_json::Value) {
    let r = reqwest::Client::new()
        .post(format!("{}/_sim/faults", sim.base_url()))
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = r.status();
    (
        status,
        serde_json::from_str(&r.text().await.unwrap()).unwrap(),
    )
}

/// Deletes `n` fresh jobs, waits for their tasks, and counts those that failed.
async fn failed_tasks(em: &Em, token: &str, n: usize) -> usize {
    let mut ids = Vec::new();
    for _ in 0..n {
        let path = format!("/jobs/{}", Uuid::new_v4());
        let a = em.call(Method::DELETE, &path, token).await;
        ids.push(decode_task(Format::Xml, &a.body).unwrap().task_id);
    }
    tokio::time::sleep(TASK_TIME * 2).await;
    let mut failed = 0;
    for id in ids {
        let a = em.call(Method::GET, &format!("/tasks/{id}"), token).await;
        let task = decode_task(Format::Xml, &a.body).unwrap();
        failed += usize::from(!task.finished_result().expect("finished").success);
    }
    failed
}

#[tokio::test]
async fn faults_change_while_the_simulator_runs_and_a_bad_change_changes_nothing() {
    let sim = start_sim(SimConfig {
        task_duration: (TASK_TIME, TASK_TIME),
        task_failure_ratio: 1.0,
        ..SimConfig::default()
    })
    .await;
    let em = Em::new(&sim);
    let (token, _) = em.logon().await;
    assert_eq!(failed_tasks(&em, &token, 5).await, 5);

    let (status, now) = post_faults(&sim, r#"{"task_failure_ratio": 0}"#).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(now["task_failure_ratio"], 0.0);
    assert_eq!(failed_tasks(&em, &token, 5).await, 0, "failures stopped");

    let (status, err) = post_faults(&sim, r#"{"error_ratio": 2, "throttle_ratio": 1}"#).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        err["error"].as_str().unwrap().contains("error_ratio"),
        "{err}"
    );
    let (status, err) = post_faults(&sim, r#"{"eror_ratio": 1}"#).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        err["error"].as_str().unwrap().contains("eror_ratio"),
        "{err}"
    );
    let unchanged = Faults {
        task_failure_ratio: 0.0,
        error_ratio: 0.0,
        throttle_ratio: 0.0,
        unreadable_task_ratio: 0.0,
    };
    assert_eq!(sim.faults(), unchanged);

    post_faults(&sim, r#"{"error_ratio": 1}"#).await;
    let path = format!("/jobs/{}", Uuid::new_v4());
    let failing = em.call(Method::GET, &path, &token).await;
    assert!([500, 502, 503].contains(&failing.status.as_u16()));
    let url = format!("{}/_sim/faults", sim.base_url());
    let served = reqwest::get(url).await.unwrap().text().await.unwrap();
    let served: Faults = serde_json::from_str(&served).unwrap();
    assert_eq!(served.error_ratio, 1.0);
    assert_eq!(
        sim.stats().count("GET /api/jobs/{id}"),
        1,
        "knobs are not counted"
    );
    sim.shutdown().await;
}

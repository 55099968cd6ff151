//! The EM simulator over real HTTP: logon sessions, tasks, formats, strict inventory,
//! fault knobs and the counters tests rely on.

use std::time::{Duration, Instant};

use base64::Engine;
use reaper::em::codec::{Format, TaskState, decode_logon_session, decode_task};
use reaper::sim::{Inventory, InventoryJob, SimConfig, SimStats};
use reqwest::{Method, StatusCode};
use uuid::Uuid;

use crate::common::em_http::{Em, start_sim as start};

const JOB: &str = "5b89dae5-6f08-45ec-b068-08f0bd08394a";

fn fast() -> SimConfig {
    SimConfig {
        task_duration: (Duration::from_millis(200), Duration::from_millis(200)),
        ..SimConfig::default()
    }
}

fn job_path(id: &str) -> String {
    format!("/jobs/{id}")
}

#[tokio::test]
async fn logon_answers_201_with_a_token_header_a_cookie_and_a_session_and_rejects_a_wrong_password()
{
    let sim = start(fast()).await;
    let em = Em::new(&sim);

    let ok = em.logon_as("reaper", "reaper").await;
    assert_eq!(ok.status, StatusCode::CREATED);
    assert_eq!(ok.headers["content-type"], "application/xml");
    let token = ok.headers["x-restsvcsessionid"].to_str().unwrap();
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(token)
        .expect("the token is base64");
    let token_guid = Uuid::parse_str(std::str::from_utf8(&decoded).unwrap()).unwrap();
    let cookie = ok.headers["set-cookie"].to_str().unwrap();
    assert_eq!(
        cookie,
        format!("X-RestSvcSessionId={token}; path=/; HttpOnly")
    );
    let session = decode_logon_session(Format::Xml, &ok.body).unwrap();
    assert_eq!(session.user_name, "reaper");
    let session_guid = Uuid::parse_str(&session.session_id).unwrap();
    assert_ne!(
        session_guid, token_guid,
        "the token is not the session GUID"
    );

    let wrong = em.logon_as("reaper", "nope").await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert_eq!(sim.stats().logons_refused, 1);
    assert_eq!(sim.stats().logons, 1);
    assert_eq!(wrong.headers["www-authenticate"], "Basic Realm=RestSvc");
    assert!(wrong.headers.get("x-restsvcsessionid").is_none());
    assert!(!wrong.error_message(Format::Xml).is_empty());

    let anonymous = em
        .send(em.http.post(format!("{}/sessionMngr/?v=latest", em.api)))
        .await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);

    let stats = sim.stats();
    assert_eq!(stats.logons, 1);
    assert_eq!(stats.calls["POST /api/sessionMngr/"], 3);
    assert_eq!(stats.statuses["401"], 2);
    sim.shutdown().await;
}

#[tokio::test]
async fn a_call_without_a_token_or_with_an_unknown_token_is_401_with_an_error_body() {
    let sim = start(fast()).await;
    let em = Em::new(&sim);
    let bare = em
        .send(em.http.delete(format!("{}{}", em.api, job_path(JOB))))
        .await;
    assert_eq!(bare.status, StatusCode::UNAUTHORIZED);
    assert!(!bare.error_message(Format::Xml).is_empty());
    let unknown = em.call(Method::DELETE, &job_path(JOB), "bm9wZQ==").await;
    assert_eq!(unknown.status, StatusCode::UNAUTHORIZED);
    assert!(sim.stats().deletes.is_empty(), "refused before the handler");
    assert_eq!(sim.stats().calls["DELETE /api/jobs/{id}"], 2);
    sim.shutdown().await;
}

#[tokio::test]
async fn deleting_a_job_answers_202_with_the_seed_task_shape_and_the_task_finishes_with_success() {
    let sim = start(fast()).await;
    let em = Em::new(&sim);
    let (token, _) = em.logon().await;

    let accepted = em.call(Method::DELETE, &job_path(JOB), &token).await;
    assert_eq!(accepted.status, StatusCode::ACCEPTED);
    assert_eq!(accepted.headers["content-type"], "application/xml");
    let href = format!("{}/tasks/task-1", em.api);
    for part in [
        format!("<Task xmlns=\"http://www.veeam.com/ent/v1.0\" Type=\"Task\" Href=\"{href}\">"),
        format!("<Link Rel=\"Delete\" Type=\"Task\" Href=\"{href}\" />"),
        "<TaskId>task-1</TaskId>".to_string(),
        "<State>Running</State>".to_string(),
        "<Operation>DeleteJob</Operation>".to_string(),
    ] {
        assert!(accepted.body.contains(&part), "{part} in {}", accepted.body);
    }
    assert!(!accepted.body.contains("<Result"));
    let task = decode_task(Format::Xml, &accepted.body).unwrap();
    assert_eq!(task.state, TaskState::Running);
    assert_eq!(task.href.as_deref(), Some(href.as_str()));
    assert_eq!(task.links.len(), 1);

    let running = em.call(Method::GET, "/tasks/task-1", &token).await;
    assert_eq!(running.status, StatusCode::OK);
    assert_eq!(
        decode_task(Format::Xml, &running.body).unwrap().state,
        TaskState::Running
    );
    assert_eq!(
        em.call(Method::GET, &job_path(JOB), &token).await.status,
        StatusCode::OK
    );

    tokio::time::sleep(Duration::from_millis(300)).await;
    let done = em.call(Method::GET, "/tasks/task-1", &token).await;
    let task = decode_task(Format::Xml, &done.body).unwrap();
    assert_eq!(task.state, TaskState::Finished);
    let result = task.result.expect("a finished task has a Result");
    assert!(result.success);
    assert_eq!(result.message, "Ok");
    let gone = em.call(Method::GET, &job_path(JOB), &token).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    assert!(gone.error_message(Format::Xml).contains(JOB));
    sim.shutdown().await;
}

#[tokio::test]
async fn a_second_delete_of_a_job_is_404_while_under_way_and_after_it_is_gone() {
    let sim = start(fast()).await;
    let em = Em::new(&sim);
    let (token, _) = em.logon().await;
    assert_eq!(
        em.call(Method::DELETE, &job_path(JOB), &token).await.status,
        StatusCode::ACCEPTED
    );
    let again = em.call(Method::DELETE, &job_path(JOB), &token).await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
    assert!(again.error_message(Format::Xml).contains("was not found"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = em.call(Method::DELETE, &job_path(JOB), &token).await;
    assert_eq!(after.status, StatusCode::NOT_FOUND);
    sim.shutdown().await;
}

#[tokio::test]
async fn job_children_are_deleted_by_update_job_tasks() {
    let sim = start(fast()).await;
    let em = Em::new(&sim);
    let (token, _) = em.logon().await;
    for (n, child) in ["includes", "linkedBackupRepositories", "linkedJobs"]
        .iter()
        .enumerate()
    {
        let path = format!("/jobs/{JOB}/{child}/{}", Uuid::new_v4());
        assert_eq!(
            em.call(Method::GET, &path, &token).await.status,
            StatusCode::OK
        );
        let a = em.call(Method::DELETE, &path, &token).await;
        assert_eq!(a.status, StatusCode::ACCEPTED, "{path}");
        let task = decode_task(Format::Xml, &a.body).unwrap();
        assert_eq!(task.operation, "UpdateJob");
        assert_eq!(task.task_id, format!("task-{}", n + 1));
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn a_urn_or_other_non_guid_id_in_a_path_is_400() {
    let sim = start(fast()).await;
    let em = Em::new(&sim);
    let (token, _) = em.logon().await;
    let urn = em
        .call(
            Method::DELETE,
            &job_path(&format!("urn:veeam:Job:{JOB}")),
            &token,
        )
        .await;
    assert_eq!(urn.status, StatusCode::BAD_REQUEST);
    assert!(!urn.error_message(Format::Xml).is_empty());
    let include = format!("/jobs/{JOB}/includes/not-a-guid");
    assert_eq!(
        em.call(Method::DELETE, &include, &token).await.status,
        StatusCode::BAD_REQUEST
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn json_is_answered_when_asked_for_and_a_mixed_accept_list_is_400() {
    let sim = start(fast()).await;
    let em = Em::new(&sim);
    let (token, _) = em.logon().await;
    let json = em
        .send(
            em.req(Method::DELETE, &job_path(JOB), &token)
                .header("Accept", "application/json"),
        )
        .await;
    assert_eq!(json.status, StatusCode::ACCEPTED);
    assert_eq!(json.headers["content-type"], "application/json");
    let task = decode_task(Format::Json, &json.body).unwrap();
    assert_eq!(
        (task.task_id.as_str(), task.state),
        ("task-1", TaskState::Running)
    );
    let v: serde_json::Value = serde_json::from_str(&json.body).unwrap();
    assert_eq!(v["Type"], "Task");
    assert_eq!(v["Links"][0]["Rel"], "Delete");

    let star = em
        .send(
            em.req(Method::GET, "/tasks/task-1", &token)
                .header("Accept", "*/*"),
        )
        .await;
    assert_eq!(star.headers["content-type"], "application/xml");

    let json_error = em
        .send(
            em.req(Method::GET, "/tasks/task-9", &token)
                .header("Accept", "application/json"),
        )
        .await;
    assert_eq!(json_error.status, StatusCode::NOT_FOUND);
    let v: serde_json::Value = serde_json::from_str(&json_error.body).unwrap();
    assert_eq!(v["StatusCode"], 404);

    let mixed = em
        .send(
            em.req(Method::GET, "/tasks/task-1", &token)
                .header("Accept", "application/xml, application/json"),
        )
        .await;
    assert_eq!(mixed.status, StatusCode::BAD_REQUEST);
    assert!(!mixed.error_message(Format::Xml).is_empty());
    sim.shutdown().await;
}

#[tokio::test]
async fn a_task_polled_from_another_session_is_500_in_current_rest_session() {
    let sim = start(fast()).await;
    let em = Em::new(&sim);
    let (a, _) = em.logon().await;
    let (b, _) = em.logon().await;
    em.call(Method::DELETE, &job_path(JOB), &a).await;

    let foreign = em.call(Method::GET, "/tasks/task-1", &b).await;
    assert_eq!(foreign.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        foreign.error_message(Format::Xml),
        "There is no task with id [task-1] in current rest session"
    );

    // Task ids are counted per session: b's first task is task-1 too.
    let other = Uuid::new_v4().to_string();
    let own = em.call(Method::DELETE, &job_path(&other), &b).await;
    assert_eq!(
        decode_task(Format::Xml, &own.body).unwrap().task_id,
        "task-1"
    );
    let polled = em.call(Method::GET, "/tasks/task-1", &b).await;
    assert_eq!(polled.status, StatusCode::OK);
    sim.shutdown().await;
}

#[tokio::test]
async fn an_idle_session_expires_and_each_call_resets_the_idle_timer() {
    let sim = start(SimConfig {
        session_idle_timeout: Duration::from_millis(300),
        ..fast()
    })
    .await;
    let em = Em::new(&sim);
    let (token, _) = em.logon().await;
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let a = em.call(Method::GET, &job_path(JOB), &token).await;
        assert_eq!(a.status, StatusCode::OK, "calls keep the session alive");
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    let expired = em.call(Method::GET, &job_path(JOB), &token).await;
    assert_eq!(expired.status, StatusCode::UNAUTHORIZED);
    assert!(!expired.error_message(Format::Xml).is_empty());
    sim.shutdown().await;
}

#[tokio::test]
async fn the_cookie_wins_over_the_header() {
    let sim = start(fast()).await;
    let em = Em::new(&sim);
    let (a, _) = em.logon().await;
    let (b, _) = em.logon().await;
    em.call(Method::DELETE, &job_path(JOB), &a).await;

    // Header names b, cookie names a: the task of a is found.
    let with_cookie = em
        .send(
            em.req(Method::GET, "/tasks/task-1", &b)
                .header("Cookie", format!("X-RestSvcSessionId={a}")),
        )
        .await;
    assert_eq!(with_cookie.status, StatusCode::OK);

    // A stale cookie beats a good header.
    let stale = em
        .send(
            em.req(Method::GET, "/tasks/task-1", &a)
                .header("Cookie", "X-RestSvcSessionId=c3RhbGU="),
        )
        .await;
    assert_eq!(stale.status, StatusCode::UNAUTHORIZED);
    sim.shutdown().await;
}

#[tokio::test]
async fn deleting_a_running_task_answers_204_and_the_job_stays() {
    let sim = start(fast()).await;
    let em = Em::new(&sim);
    let (token, _) = em.logon().await;
    em.call(Method::DELETE, &job_path(JOB), &token).await;
    let stopped = em.call(Method::DELETE, "/tasks/task-1", &token).await;
    assert_eq!(stopped.status, StatusCode::NO_CONTENT);
    assert!(stopped.body.is_empty());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        em.call(Method::GET, &job_path(JOB), &token).await.status,
        StatusCode::OK
    );
    let again = em.call(Method::DELETE, "/tasks/task-1", &token).await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
    assert!(!again.error_message(Format::Xml).is_empty());
    assert_eq!(
        em.call(Method::DELETE, &job_path(JOB), &token).await.status,
        StatusCode::ACCEPTED,
        "the job can be deleted again"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn strict_inventory_knows_only_its_resources_and_keeps_the_last_include() {
    let (job, a, b) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    let inventory = Inventory {
        jobs: vec![InventoryJob {
            id: job,
            includes: vec![a, b],
            linked_repositories: vec![Uuid::new_v4()],
            ..InventoryJob::default()
        }],
    };
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), inventory.to_json()).unwrap();
    let sim = start(SimConfig {
        inventory: Some(Inventory::load(file.path()).unwrap()),
        ..fast()
    })
    .await;
    let em = Em::new(&sim);
    let (token, _) = em.logon().await;

    let unknown = em.call(Method::DELETE, &job_path(JOB), &token).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert!(unknown.error_message(Format::Xml).contains(JOB));
    let stray = format!("/jobs/{job}/includes/{}", Uuid::new_v4());
    assert_eq!(
        em.call(Method::GET, &stray, &token).await.status,
        StatusCode::NOT_FOUND
    );

    let first = em
        .call(Method::DELETE, &format!("/jobs/{job}/includes/{a}"), &token)
        .await;
    assert_eq!(first.status, StatusCode::ACCEPTED);
    let last = em
        .call(Method::DELETE, &format!("/jobs/{job}/includes/{b}"), &token)
        .await;
    assert_eq!(last.status, StatusCode::BAD_REQUEST);
    assert!(last.error_message(Format::Xml).contains("last object"));

    assert_eq!(
        em.call(Method::DELETE, &job_path(&job.to_string()), &token)
            .await
            .status,
        StatusCode::ACCEPTED
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let child = format!("/jobs/{job}/includes/{b}");
    assert_eq!(
        em.call(Method::GET, &child, &token).await.status,
        StatusCode::NOT_FOUND
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn with_a_failure_ratio_of_one_tasks_fail_and_the_job_stays() {
    let sim = start(SimConfig {
        task_failure_ratio: 1.0,
        ..fast()
    })
    .await;
    let em = Em::new(&sim);
    let (token, _) = em.logon().await;
    em.call(Method::DELETE, &job_path(JOB), &token).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let task = decode_task(
        Format::Xml,
        &em.call(Method::GET, "/tasks/task-1", &token).await.body,
    )
    .unwrap();
    assert_eq!(task.state, TaskState::Finished);
    let result = task.result.unwrap();
    assert!(!result.success);
    assert!(!result.message.is_empty());
    assert_eq!(
        em.call(Method::GET, &job_path(JOB), &token).await.status,
        StatusCode::OK
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn stats_count_deletes_per_path_and_the_stats_endpoint_is_not_counted() {
    let sim = start(fast()).await;
    let em = Em::new(&sim);
    let (token, _) = em.logon().await;
    let other = Uuid::new_v4().to_string();
    em.call(Method::DELETE, &job_path(JOB), &token).await;
    em.call(Method::DELETE, &job_path(JOB), &token).await;
    em.call(Method::DELETE, &job_path(&other), &token).await;
    em.call(Method::DELETE, &job_path(&other), "bm9wZQ==").await; // 401: not a delete

    let stats = sim.stats();
    assert_eq!(stats.deletes[&format!("/api/jobs/{JOB}")], 2);
    assert_eq!(stats.deletes[&format!("/api/jobs/{other}")], 1);
    assert_eq!(stats.calls["DELETE /api/jobs/{id}"], 4);
    assert_eq!(stats.statuses["202"], 2);
    assert_eq!(stats.statuses["404"], 1);
    assert_eq!(stats.statuses["401"], 1);
    assert_eq!(stats.total_calls, 5);
    assert!(stats.max_calls_per_second >= 1 && stats.max_calls_per_second <= 5);

    let url = format!("{}/_sim/stats", sim.base_url());
    let text = em
        .http
        .get(&url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let served: SimStats = serde_json::from_str(&text).unwrap();
    assert_eq!(served.total_calls, stats.total_calls);
    assert_eq!(served.deletes, stats.deletes);
    assert_eq!(
        sim.stats().total_calls,
        5,
        "the stats endpoint is not counted"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn logging_off_ends_the_session_and_expire_sessions_forgets_every_session() {
    let sim = start(fast()).await;
    let em = Em::new(&sim);
    let (a, session) = em.logon().await;
    let (b, _) = em.logon().await;
    let read = em
        .call(Method::GET, &format!("/logonSessions/{session}"), &b)
        .await;
    assert_eq!(read.status, StatusCode::OK, "any live session can read it");
    let read_session = decode_logon_session(Format::Xml, &read.body).unwrap();
    assert_eq!(read_session.session_id, session.to_string());
    let off = em
        .call(Method::DELETE, &format!("/logonSessions/{session}"), &a)
        .await;
    assert_eq!(off.status, StatusCode::NO_CONTENT);
    assert_eq!(
        em.call(Method::GET, &job_path(JOB), &a).await.status,
        StatusCode::UNAUTHORIZED
    );
    let unknown = em
        .call(
            Method::DELETE,
            &format!("/logonSessions/{}", Uuid::new_v4()),
            &b,
        )
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    let gone = em
        .call(Method::GET, &format!("/logonSessions/{session}"), &b)
        .await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND, "logged off");
    assert_eq!(sim.stats().logoffs, 1);

    sim.expire_sessions();
    assert_eq!(
        em.call(Method::GET, &job_path(JOB), &b).await.status,
        StatusCode::UNAUTHORIZED
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn with_an_error_ratio_of_one_every_api_call_but_logon_is_5xx() {
    let sim = start(SimConfig {
        error_ratio: 1.0,
        ..fast()
    })
    .await;
    let em = Em::new(&sim);
    let (token, _) = em.logon().await;
    for i in 0..30 {
        let (method, path) = match i % 3 {
            0 => (Method::DELETE, job_path(JOB)),
            1 => (Method::GET, "/tasks/task-1".to_string()),
            _ => (Method::GET, job_path(JOB)),
        };
        let a = em.call(method, &path, &token).await;
        assert!(
            [500, 502, 503].contains(&a.status.as_u16()),
            "{path}: {}",
            a.status
        );
        assert!(!a.body.contains("in current rest session"));
    }
    let stats = sim.stats();
    assert!(stats.deletes.is_empty(), "faults strike before the handler");
    assert_eq!(stats.total_calls, 31);
    sim.shutdown().await;
}

#[tokio::test]
async fn throttling_answers_503_or_429_with_retry_after() {
    let sim = start(SimConfig {
        throttle_ratio: 1.0,
        ..fast()
    })
    .await;
    let em = Em::new(&sim);
    let (token, _) = em.logon().await;
    let a = em.call(Method::DELETE, &job_path(JOB), &token).await;
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(a.headers["retry-after"], "1");
    assert!(!a.error_message(Format::Xml).is_empty());
    sim.shutdown().await;

    let sim = start(SimConfig {
        throttle_ratio: 1.0,
        throttle_status: 429,
        ..fast()
    })
    .await;
    let em = Em::new(&sim);
    let (token, _) = em.logon().await;
    let a = em.call(Method::DELETE, &job_path(JOB), &token).await;
    assert_eq!(a.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(a.headers["retry-after"], "1");
    sim.shutdown().await;
}

#[tokio::test]
async fn latency_delays_answers_and_requests_beyond_capacity_get_503() {
    let sim = start(SimConfig {
        latency: Duration::from_millis(200),
        capacity: Some(2),
        ..fast()
    })
    .await;
    let em = Em::new(&sim);
    let started = Instant::now();
    let (token, _) = em.logon().await;
    assert!(started.elapsed() >= Duration::from_millis(200));

    let path = job_path(JOB);
    let calls = (0..6).map(|_| em.call(Method::GET, &path, &token));
    let answers = futures_util::future::join_all(calls).await;
    let ok = answers
        .iter()
        .filter(|a| a.status == StatusCode::OK)
        .count();
    let busy = answers
        .iter()
        .filter(|a| a.status == StatusCode::SERVICE_UNAVAILABLE)
        .count();
    assert_eq!(ok + busy, 6);
    assert!((1..=2).contains(&ok), "ok = {ok}");
    assert!(busy >= 4);
    sim.shutdown().await;
}

//! The DCS client against the simulated DCS and IAM over real HTTP: the seed page's example
//! replayed, the task listing, both error body shapes, IAM tokens (per project, renewed once
//! per expiry, single-flight), throttling and still-running tasks.

use crate::common::{dcs_settings, iam_auth, task_id};
use reaper::config::{DcsAuth, Secret};
use reaper::dcs::wire::TaskList;
use reaper::dcs::{DcsClient, DcsError, ErrorClass, Origin};
use reaper::health::EndpointHealth;
use reaper::limit::{Budget, Limiter};
use reaper::sim::{SimConfig, SimHandle};
use std::sync::Arc;
use std::time::Duration;

const PROJECT: &str = "a4d31cb6-3d72-4fdc-8ec9-6e3a41e47f71";
const INSTANCE: &str = "5560df16-cebf-4473-95c4-d1b573c16e79";
const TASK: &str = "8abf6e1e72c12e7c0172c15b508500aa";
const STATIC: &str = "static-test-token";

async fn start(cfg: SimConfig) -> SimHandle {
    reaper::sim::spawn(cfg, "127.0.0.1:0".parse().unwrap())
        .await
        .expect("the simulator starts")
}

fn with_static_token() -> SimConfig {
    SimConfig {
        dcs_static_token: Some(STATIC.into()),
        ..SimConfig::default()
    }
}

fn client(sim: &SimHandle, auth: DcsAuth) -> DcsClient {
    let limiter = Arc::new(Limiter::new(Budget {
        rate_per_sec: 0.0,
        burst: 100,
        max_in_flight: 32,
    }));
    let health = Arc::new(EndpointHealth::detached("dcs"));
    DcsClient::new(&dcs_settings(sim, auth), limiter, health).unwrap()
}

fn static_auth() -> DcsAuth {
    DcsAuth::Static(Secret::new(STATIC).into())
}

fn err_code(r: &Result<impl std::fmt::Debug, DcsError>) -> (ErrorClass, Option<u16>, Option<&str>) {
    let e = r.as_ref().expect_err("an error");
    (e.class, e.status, e.code.as_deref())
}

#[tokio::test]
async fn the_seed_example_deletes_the_task_with_200_and_an_empty_message() {
    let sim = start(with_static_token()).await;
    let url = format!(
        "{}/v2/{PROJECT}/instances/{INSTANCE}/tasks/{TASK}",
        sim.base_url()
    );
    let http = reqwest::Client::new();
    let resp = http
        .delete(&url)
        .header("X-Auth-Token", STATIC)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let request_id = resp.headers().get("x-request-id").cloned();
    assert!(request_id.is_some(), "every answer has an X-Request-Id");
    let body: serde_json::Value = serde_json::from_str(&resp.text().await.unwrap()).unwrap();
    assert_eq!(body, serde_json::json!({"message": ""}));

    // The same through the client: the task is gone now.
    let dcs = client(&sim, static_auth());
    let again = dcs
        .delete_task(&seg(PROJECT), &seg(INSTANCE), &seg(TASK))
        .await;
    assert_eq!(
        err_code(&again),
        (ErrorClass::NotFound, Some(404), Some("DCS.4001"))
    );
    let e = again.unwrap_err();
    assert!(!e.message.is_empty());
    assert_eq!(e.request_id.as_ref().map(String::len), Some(32), "{e:?}");

    let other = dcs
        .delete_task(&seg(PROJECT), &seg(INSTANCE), &seg(&task_id()))
        .await
        .unwrap();
    assert_eq!(other.status, 200);
    assert!(other.request_id.is_some());

    let stats = sim.stats();
    let key = "DELETE /v2/{project_id}/instances/{instance_id}/tasks/{task_id}";
    assert_eq!(stats.calls.get(key), Some(&3), "{stats:?}");
    assert_eq!(
        stats
            .deletes
            .get(&format!("/v2/{PROJECT}/instances/{INSTANCE}/tasks/{TASK}")),
        Some(&2)
    );
    assert_eq!(stats.token_issues, 0, "a static token needs no IAM");
    sim.shutdown().await;
}

#[tokio::test]
async fn an_instance_lists_its_background_tasks_until_they_are_deleted() {
    let sim = start(with_static_token()).await;
    let dcs = client(&sim, static_auth());
    let list = dcs.list_tasks(&seg(PROJECT), &seg(INSTANCE)).await.unwrap();
    assert_eq!(list.task_count, 3);
    assert_eq!(list.tasks.len(), 3);
    for t in &list.tasks {
        assert_eq!(t.id.len(), 32, "{t:?}");
        assert!(t.id.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(t.status, "SUCCESS");
        assert!(!t.name.is_empty() && !t.user_name.is_empty());
        assert!(t.created_at.ends_with('Z') && t.updated_at.ends_with('Z'));
        assert_eq!(t.enable_show, Some(true));
    }
    dcs.delete_task(&seg(PROJECT), &seg(INSTANCE), &seg(&list.tasks[0].id))
        .await
        .unwrap();

    // Raw: `task_count` is written as a string (as documented), paging works.
    let url = format!(
        "{}/v2/{PROJECT}/instances/{INSTANCE}/tasks?offset=1&limit=5",
        sim.base_url()
    );
    let resp = reqwest::Client::new()
        .get(url)
        .header("X-Auth-Token", STATIC)
        .send()
        .await
        .unwrap();
    let raw: serde_json::Value = serde_json::from_str(&resp.text().await.unwrap()).unwrap();
    assert_eq!(raw["task_count"], "2");
    assert_eq!(raw["tasks"].as_array().unwrap().len(), 1);
    let paged: TaskList = serde_json::from_value(raw).unwrap();
    assert_ne!(paged.tasks[0].id, list.tasks[0].id);
    sim.shutdown().await;
}

#[tokio::test]
async fn refusals_carry_dcs_codes_and_both_error_shapes_decode() {
    let sim = start(SimConfig {
        dcs_forbidden_projects: vec!["read-only".into()],
        dcs_rate_limit: Some(2),
        ..with_static_token()
    })
    .await;
    let dcs = client(&sim, static_auth());
    // v2 bodies: a malformed task id, a forbidden project.
    let bad = dcs
        .delete_task(&seg(PROJECT), &seg(INSTANCE), &seg("not-a-task-id"))
        .await;
    assert_eq!(
        err_code(&bad),
        (ErrorClass::Permanent, Some(400), Some("DCS.4070"))
    );
    assert_eq!(bad.unwrap_err().message, "Invalid task ID format.");
    let forbidden = dcs
        .delete_task(&seg("read-only"), &seg(INSTANCE), &seg(&task_id()))
        .await;
    assert_eq!(
        err_code(&forbidden),
        (ErrorClass::Permanent, Some(403), Some("DCS.2003"))
    );
    // The API gateway's throttling: transient.
    let throttled = dcs
        .delete_task(&seg(PROJECT), &seg(INSTANCE), &seg(&task_id()))
        .await;
    assert_eq!(
        err_code(&throttled),
        (ErrorClass::Transient, Some(429), Some("APIG.0308"))
    );
    assert_eq!(sim.stats().statuses.get("429"), Some(&1));

    // The legacy/Keystone shape `{"error":{"code":401,"message":…}}`, from IAM.
    let wrong = DcsAuth::Iam {
        iam_url: sim.base_url(),
        domain: "reaper".into(),
        username: "reaper".into(),
        password: Secret::new("wrong-password-xyz").into(),
    };
    let refused = client(&sim, wrong)
        .delete_task(&seg("other"), &seg(INSTANCE), &seg(&task_id()))
        .await;
    assert_eq!(
        err_code(&refused),
        (ErrorClass::Unavailable, Some(401), Some("401")),
        "IAM refusing the password takes the endpoint down"
    );
    let e = refused.unwrap_err();
    assert_eq!(e.origin, Origin::Iam);
    assert!(e.message.contains("REAPER_DCS_USERNAME"), "{e}");
    assert!(
        e.message.contains("The username or password is wrong."),
        "{e}"
    );
    assert!(!format!("{e} {e:?}").contains("wrong-password-xyz"));
    assert_eq!(sim.stats().token_issues, 0);
    sim.shutdown().await;
}

#[tokio::test]
async fn a_static_token_that_is_refused_is_not_renewed() {
    let sim = start(with_static_token()).await;
    let dcs = client(&sim, DcsAuth::Static(Secret::new("not-the-token").into()));
    let r = dcs
        .delete_task(&seg(PROJECT), &seg(INSTANCE), &seg(TASK))
        .await;
    assert_eq!(
        err_code(&r),
        (ErrorClass::Unavailable, Some(401), Some("DCS.1001")),
        "the one token is refused: the endpoint is down"
    );
    let e = r.unwrap_err();
    assert!(!e.to_string().contains("not-the-token"));
    assert!(e.to_string().contains("REAPER_DCS_TOKEN"), "{e}");
    assert!(dcs.health().is_down());
    let stats = sim.stats();
    assert_eq!(
        stats.total_calls, 1,
        "one call, no IAM, no retry: {stats:?}"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn a_static_token_file_is_read_again_when_dcs_refuses_the_token() {
    let sim = start(with_static_token()).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("token");
    std::fs::write(&path, "an-old-token\n").unwrap();
    let source = reaper::config::SecretSource::file(&path).unwrap();
    let dcs = client(&sim, DcsAuth::Static(source));
    // Rotated under the client: the first call still carries the old token, is refused, and
    // is sent once more with the file's new content.
    std::fs::write(&path, format!("{STATIC}\n")).unwrap();
    let done = dcs
        .delete_task(&seg(PROJECT), &seg(INSTANCE), &seg(TASK))
        .await
        .unwrap();
    assert_eq!(done.status, 200);
    let stats = sim.stats();
    assert_eq!(stats.statuses.get("401"), Some(&1), "{stats:?}");
    assert_eq!(stats.total_calls, 2, "{stats:?}");
    assert!(!dcs.health().is_down());
    sim.shutdown().await;
}

#[tokio::test]
async fn iam_tokens_are_cached_per_project_and_renewed_once_per_expiry() {
    let sim = start(SimConfig::default()).await;
    let dcs = Arc::new(client(&sim, iam_auth(&sim)));
    for _ in 0..3 {
        dcs.delete_task(&seg(PROJECT), &seg(INSTANCE), &seg(&task_id()))
            .await
            .unwrap();
    }
    assert_eq!(sim.stats().token_issues, 1, "one token for one project");
    dcs.delete_task(&seg("second-project"), &seg(INSTANCE), &seg(&task_id()))
        .await
        .unwrap();
    assert_eq!(sim.stats().token_issues, 2, "tokens are project-scoped");

    // Every token expires; twenty concurrent calls see 401 DCS.1002 and share one renewal.
    sim.expire_dcs_tokens();
    let calls: Vec<_> = (0..20)
        .map(|_| {
            let dcs = Arc::clone(&dcs);
            tokio::spawn(async move {
                dcs.delete_task(&seg(PROJECT), &seg(INSTANCE), &seg(&task_id()))
                    .await
            })
        })
        .collect();
    for c in calls {
        c.await
            .unwrap()
            .expect("retried once with the renewed token");
    }
    let stats = sim.stats();
    assert_eq!(stats.token_issues, 3, "exactly one renewal: {stats:?}");
    assert!(stats.statuses.get("401").is_some_and(|n| *n >= 1));
    assert_eq!(stats.calls.get("POST /v3/auth/tokens"), Some(&3));
    sim.shutdown().await;
}

#[tokio::test]
async fn a_short_lived_token_is_renewed_before_it_expires() {
    let sim = start(SimConfig {
        dcs_token_ttl: Duration::from_secs(2),
        ..SimConfig::default()
    })
    .await;
    let dcs = client(&sim, iam_auth(&sim));
    dcs.delete_task(&seg(PROJECT), &seg(INSTANCE), &seg(&task_id()))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    dcs.delete_task(&seg(PROJECT), &seg(INSTANCE), &seg(&task_id()))
        .await
        .unwrap();
    assert_eq!(
        sim.stats().token_issues,
        1,
        "still fresh at 60% of its life"
    );
    tokio::time::sleep(Duration::from_millis(700)).await; // 95%: inside the renewal margin
    dcs.delete_task(&seg(PROJECT), &seg(INSTANCE), &seg(&task_id()))
        .await
        .unwrap();
    let stats = sim.stats();
    assert_eq!(stats.token_issues, 2);
    assert_eq!(
        stats.statuses.get("401"),
        None,
        "renewed before DCS refused it"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn a_task_still_executing_is_refused_transiently_until_it_ends() {
    let sim = start(SimConfig {
        dcs_task_executing_for: Duration::from_millis(500),
        ..with_static_token()
    })
    .await;
    let dcs = client(&sim, static_auth());
    let listed = dcs.list_tasks(&seg(PROJECT), &seg(INSTANCE)).await.unwrap();
    assert!(listed.tasks.iter().all(|t| t.status == "EXECUTING"));
    let r = dcs
        .delete_task(&seg(PROJECT), &seg(INSTANCE), &seg(&listed.tasks[0].id))
        .await;
    assert_eq!(
        err_code(&r),
        (ErrorClass::Transient, Some(400), Some("DCS.4957"))
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    dcs.delete_task(&seg(PROJECT), &seg(INSTANCE), &seg(&listed.tasks[0].id))
        .await
        .unwrap();
    let after = dcs.list_tasks(&seg(PROJECT), &seg(INSTANCE)).await.unwrap();
    assert_eq!(after.task_count, 2);
    assert!(after.tasks.iter().all(|t| t.status == "SUCCESS"));
    sim.shutdown().await;
}

fn seg(id: &str) -> reaper::request::Segment {
    reaper::request::Segment::parse(id).expect("a valid id")
}

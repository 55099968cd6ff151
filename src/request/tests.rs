//! Request validation: ids, URN normalisation, path-changing characters, schema errors.

use super::*;

const JOB: &str = "5b89dae5-6f08-45ec-b068-08f0bd08394a";

fn decode(v: serde_json::Value) -> Result<DeleteRequest, Rejection> {
    DeleteRequest::decode(v.to_string().as_bytes(), None)
}

#[test]
fn a_full_request_decodes_with_every_field() {
    let r = decode(serde_json::json!({
        "request_id": "decom-2026-11-22-000017",
        "target": {"type": "em.job_include",
                   "job_id": "d1b85018-2769-45be-89bc-03f66b60e6cb",
                   "include_id": "27a1d57f-7c15-43c6-9162-d05aff1c9bb9"},
        "correlation_id": "ticket-4711", "batch_id": "decom-2026-11-22",
        "not_after": "2026-11-23T00:00:00Z", "unknown_field": 1
    }))
    .unwrap();
    assert_eq!(r.request_id.as_str(), "decom-2026-11-22-000017");
    assert_eq!(
        r.target.path(),
        "/api/jobs/d1b85018-2769-45be-89bc-03f66b60e6cb/includes/27a1d57f-7c15-43c6-9162-d05aff1c9bb9"
    );
    assert_eq!(r.correlation_id.as_deref(), Some("ticket-4711"));
    assert_eq!(r.batch_id.as_deref(), Some("decom-2026-11-22"));
    assert_eq!(
        r.not_after.unwrap().to_rfc3339(),
        "2026-11-23T00:00:00+00:00"
    );
}

#[test]
fn every_target_type_parses_and_maps_to_its_path() {
    let cases = [
        (serde_json::json!({"type":"em.job","job_id":JOB}), format!("/api/jobs/{JOB}")),
        (
            serde_json::json!({"type":"em.job_include","job_id":JOB,"include_id":JOB}),
            format!("/api/jobs/{JOB}/includes/{JOB}"),
        ),
        (
            serde_json::json!({"type":"em.job_linked_repository","job_id":JOB,"repository_id":JOB}),
            format!("/api/jobs/{JOB}/linkedBackupRepositories/{JOB}"),
        ),
        (
            serde_json::json!({"type":"em.job_linked_job","job_id":JOB,"linked_job_id":JOB}),
            format!("/api/jobs/{JOB}/linkedJobs/{JOB}"),
        ),
        (serde_json::json!({"type":"em.task","task_id":"task-30"}), "/api/tasks/task-30".into()),
        (
            serde_json::json!({"type":"dcs.background_task",
                "project_id":"a4d31cb6-3d72-4fdc-8ec9-6e3a41e47f71",
                "instance_id":"5560df16-cebf-4473-95c4-d1b573c16e79",
                "task_id":"8abf6e1e72c12e7c0172c15b508500aa"}),
            "/v2/a4d31cb6-3d72-4fdc-8ec9-6e3a41e47f71/instances/5560df16-cebf-4473-95c4-d1b573c16e79/tasks/8abf6e1e72c12e7c0172c15b508500aa".into(),
        ),
    ];
    for (wire, path) in cases {
        let t = Target::from_wire(&wire).unwrap();
        assert_eq!(t.path(), path);
        assert_eq!(t.to_wire(), wire, "round trip of {wire}");
    }
}

#[test]
fn a_urn_is_normalised_to_its_lower_case_guid() {
    let t = Target::from_wire(&serde_json::json!({
        "type": "em.job", "job_id": "urn:veeam:Job:5B89DAE5-6F08-45EC-B068-08F0BD08394A"}))
    .unwrap();
    assert_eq!(t.path(), format!("/api/jobs/{JOB}"));
}

#[test]
fn ids_that_would_change_the_url_are_refused() {
    for bad in [
        "../../etc",
        "5b89dae5-6f08-45ec-b068-08f0bd08394a/x",
        "a?b",
        "a#b",
        "a%2Fb",
        "a b",
        "a\u{0}b",
        "",
        "5b89dae56f0845ecb06808f0bd08394a", // GUID without hyphens is not EM's form
        "{5b89dae5-6f08-45ec-b068-08f0bd08394a}",
    ] {
        let err = Target::from_wire(&serde_json::json!({"type":"em.job","job_id":bad}));
        assert!(err.is_err(), "{bad:?} must be refused");
    }
    for bad in [
        "..", ".", "task/1", "task 1", "task%31", "t?x", "t#x", "a\nb",
    ] {
        let err = Target::from_wire(&serde_json::json!({"type":"em.task","task_id":bad}));
        assert!(err.is_err(), "{bad:?} must be refused");
    }
}

#[test]
fn request_ids_follow_the_contract() {
    assert!(RequestId::parse("decom-2026-11-22-000017").is_ok());
    assert!(RequestId::parse("a.b_c:d-e").is_ok());
    assert!(RequestId::parse(&"x".repeat(128)).is_ok());
    assert!(RequestId::parse(&"x".repeat(129)).is_err());
    assert!(RequestId::parse("").is_err());
    assert!(RequestId::parse("a/b").is_err());
    assert!(RequestId::parse("a b").is_err());
}

#[test]
fn the_message_id_property_stands_in_for_a_missing_request_id() {
    let body = serde_json::json!({"target": {"type":"em.job","job_id":JOB}}).to_string();
    let r = DeleteRequest::decode(body.as_bytes(), Some("from-property-1")).unwrap();
    assert_eq!(r.request_id.as_str(), "from-property-1");
    let err = DeleteRequest::decode(body.as_bytes(), None).unwrap_err();
    assert_eq!(err.request_id, None);
}

#[test]
fn rejections_carry_the_request_id_when_it_can_be_read() {
    let err =
        decode(serde_json::json!({"request_id":"r-1","target":{"type":"em.job","job_id":"nope"}}))
            .unwrap_err();
    assert_eq!(err.request_id.unwrap().as_str(), "r-1");
    assert!(err.reason.contains("job_id"), "{}", err.reason);

    let err = decode(serde_json::json!({"request_id":"r-2","target":{"type":"em.vm","id":JOB}}))
        .unwrap_err();
    assert!(err.reason.contains("unknown target type"), "{}", err.reason);

    let err = decode(
        serde_json::json!({"request_id":"r-3","target":{"type":"em.job","job_id":JOB},
        "not_after":"tomorrow"}),
    )
    .unwrap_err();
    assert!(err.reason.contains("not_after"));

    let err = DeleteRequest::decode(b"{not json", Some("m-1")).unwrap_err();
    assert_eq!(err.request_id.unwrap().as_str(), "m-1");

    let err = decode(serde_json::json!({"request_id":"bad id!","target":{}})).unwrap_err();
    assert_eq!(err.request_id, None);
}

#[test]
fn oversized_bodies_are_refused_before_parsing() {
    let body = vec![b' '; MAX_BODY_BYTES + 1];
    let err = DeleteRequest::decode(&body, None).unwrap_err();
    assert!(err.reason.contains("limit"));
}

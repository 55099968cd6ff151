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

#[test]
fn a_key_given_twice_at_any_level_is_refused_naming_the_key() {
    let target = format!(r#"{{"type":"em.job","job_id":"{JOB}"}}"#);
    // (body, duplicated key reported, request id still readable)
    let table: [(String, &str, Option<&str>); 6] = [
        (
            format!(r#"{{"request_id":"r-1","request_id":"r-2","target":{target}}}"#),
            "request_id",
            None,
        ),
        (
            format!(r#"{{"request_id":"r-1","request_id":"r-1","target":{target}}}"#),
            "request_id",
            None,
        ),
        (
            format!(r#"{{"request_id":"r-3","target":{target},"target":{target}}}"#),
            "target",
            Some("r-3"),
        ),
        (
            format!(
                r#"{{"request_id":"r-4","target":{{"type":"em.job","job_id":"{JOB}","job_id":"{}"}}}}"#,
                "27a1d57f-7c15-43c6-9162-d05aff1c9bb9"
            ),
            "target.job_id",
            Some("r-4"),
        ),
        (
            format!(
                r#"{{"request_id":"r-5","target":{{"type":"em.job","type":"em.task","job_id":"{JOB}"}}}}"#
            ),
            "target.type",
            Some("r-5"),
        ),
        (
            format!(
                r#"{{"request_id":"r-6","target":{target},"extra":[{{"a":1,"a":2}}],"batch_id":"b"}}"#
            ),
            "extra[0].a",
            Some("r-6"),
        ),
    ];
    for (body, key, id) in table {
        let err = DeleteRequest::decode(body.as_bytes(), Some("from-property")).unwrap_err();
        assert!(
            err.reason.contains(&format!("`{key}`")) && err.reason.contains("more than once"),
            "{body}: {}",
            err.reason
        );
        assert_eq!(err.request_id.as_ref().map(RequestId::as_str), id, "{body}");
    }
    let once = format!(r#"{{"request_id":"r-7","target":{target},"batch_id":"b"}}"#);
    assert!(DeleteRequest::decode(once.as_bytes(), None).is_ok());
}

#[test]
fn a_urn_must_name_the_type_its_field_asks_for() {
    let urn = |kind: &str| format!("urn:veeam:{kind}:{JOB}");
    let target = |kind: &str, field: &str, value: &str| {
        let mut t = serde_json::json!({"type": kind, "job_id": JOB});
        t[field] = value.into();
        Target::from_wire(&t)
    };
    // (target type, field, URN type, accepted)
    let table = [
        ("em.job", "job_id", "Job", true),
        ("em.job", "job_id", "Repository", false),
        ("em.job", "job_id", "ObjectInJob", false),
        ("em.job", "job_id", "job", false),
        ("em.job", "job_id", "Backup", false),
        ("em.job_include", "include_id", "ObjectInJob", true),
        ("em.job_include", "include_id", "Job", false),
        ("em.job_include", "job_id", "ObjectInJob", false),
        (
            "em.job_linked_repository",
            "repository_id",
            "Repository",
            true,
        ),
        ("em.job_linked_repository", "repository_id", "Job", false),
        ("em.job_linked_job", "linked_job_id", "Job", true),
        ("em.job_linked_job", "linked_job_id", "Repository", false),
    ];
    for (kind, field, urn_type, accepted) in table {
        // The fields a type needs but the row does not set hold a bare GUID.
        let mut t = serde_json::json!({"type": kind, "job_id": JOB, "include_id": JOB,
            "repository_id": JOB, "linked_job_id": JOB});
        t[field] = urn(urn_type).into();
        let got = Target::from_wire(&t);
        assert_eq!(
            got.is_ok(),
            accepted,
            "{kind}.{field} = {}: {got:?}",
            urn(urn_type)
        );
        if let Err(e) = got {
            assert!(e.contains(field), "{e}");
        }
    }
    // The `urn:veeam:` prefix is case-insensitive (RFC 8141); the shape is exact.
    assert!(target("em.job", "job_id", &format!("URN:Veeam:Job:{JOB}")).is_ok());
    for bad in [
        format!("urn:other:Job:{JOB}"),
        format!("urn:veeam:Job:{JOB}:x"),
        format!("urn:veeam::{JOB}"),
        "urn:veeam:Job:".to_string(),
        format!("urn:uuid:{JOB}"),
    ] {
        assert!(target("em.job", "job_id", &bad).is_err(), "{bad}");
    }
}

#[test]
fn ids_that_are_not_ascii_are_refused_without_panicking() {
    let cases = [
        ("em.job", "job_id", "aaaé-not-a-guid"),
        ("em.job", "job_id", "éééé"),
        (
            "em.job",
            "job_id",
            "urn:veeam:Job:5b89dae5-6f08-45ec-b068-08f0bd08394é",
        ),
        (
            "em.job",
            "job_id",
            "ürn:veeam:Job:5b89dae5-6f08-45ec-b068-08f0bd08394a",
        ),
        (
            "em.job",
            "job_id",
            "5b89dae5-6f08-45ec-b068-08f0bd08394a\u{200b}",
        ),
        ("em.job", "job_id", " 5b89dae5-6f08-45ec-b068-08f0bd08394a"),
        ("em.task", "task_id", "täsk-1"),
        (
            "dcs.background_task",
            "task_id",
            "８abf6e1e72c12e7c0172c15b508500aa",
        ),
    ];
    for (kind, field, id) in cases {
        let mut t = serde_json::json!({"type": kind, "job_id": JOB, "task_id": "t-1",
            "project_id": "p", "instance_id": "i"});
        t[field] = id.into();
        let body = serde_json::json!({"request_id": "r-1", "target": t}).to_string();
        let err = DeleteRequest::decode(body.as_bytes(), None).unwrap_err();
        assert_eq!(err.request_id.unwrap().as_str(), "r-1", "{id}");
        assert!(err.reason.contains(field), "{id}: {}", err.reason);
    }
    assert!(
        Guid::parse("aaaé-not-a-guid")
            .unwrap_err()
            .contains("not ASCII")
    );
    for bad in ["é", "éa", "urn:é", "urné"] {
        assert!(Guid::parse(bad).is_err());
        assert!(Guid::parse_as(bad, EntityType::Job).is_err());
        assert!(Segment::parse(bad).is_err());
        assert!(RequestId::parse(bad).is_err());
    }
    let err = DeleteRequest::decode(b"{}", Some("ré")).unwrap_err();
    assert_eq!(err.request_id, None, "a non-ASCII message_id is no id");
}

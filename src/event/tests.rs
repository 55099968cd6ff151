//! Unit tests of `event`.

use super::*;

#[test]
fn success_and_failure_pick_type_and_routing_key() {
    let data = |outcome| EventData {
        request_id: Some("r-1".into()),
        correlation_id: None,
        batch_id: None,
        target: None,
        outcome,
        task: None,
        http_status: None,
        attempts: 1,
        error: None,
        received_at: None,
        submitted_at: None,
        finished_at: Some(ms_to_time(0)),
        checked: None,
    };
    let ok = CloudEvent::outcome("w1", data(Outcome::Deleted), 0, true);
    assert_eq!(ok.routing_key(), "delete.succeeded");
    assert_eq!(ok.source, "reaper/w1");
    assert_eq!(ok.id, outcome_event_id("r-1", 0));
    let replayed = CloudEvent::outcome("w1", data(Outcome::Deleted), 1, true);
    assert_ne!(
        replayed.id, ok.id,
        "a replay's outcome has an id of its own"
    );
    assert_eq!(replayed.id, outcome_event_id("r-1", 1));
    for (outcome, key) in [
        (Outcome::Planned, "delete.planned"),
        (Outcome::Cancelled, "delete.cancelled"),
        (Outcome::Refused, "delete.failed"),
    ] {
        let ev = CloudEvent::outcome("w1", data(outcome), 0, true);
        assert_eq!(
            (ev.routing_key(), ev.kind.as_str()),
            (key, &*format!("reaper.{key}"))
        );
    }
    let notice = CloudEvent::submitted("w1", data(Outcome::Deleted));
    assert_eq!(notice.routing_key(), "delete.submitted");
    assert_ne!(notice.id, ok.id);
    let absent = CloudEvent::outcome("w1", data(Outcome::AlreadyAbsent), 0, false);
    assert_eq!(absent.routing_key(), "delete.failed");
    let json: serde_json::Value =
        serde_json::from_str(&CloudEvent::outcome("w", data(Outcome::TimedOut), 0, true).to_json())
            .unwrap();
    assert_eq!(json["type"], "reaper.delete.failed");
    assert_eq!(json["data"]["outcome"], "timed_out");
    assert_eq!(json["specversion"], "1.0");
    assert_eq!(json["subject"], "r-1");
}

#[test]
fn endpoint_events_carry_the_endpoint_and_a_stable_id_per_change() {
    let data = |state: &str, since_ms| EndpointData {
        endpoint: "em".into(),
        state: state.into(),
        reason: "logon refused for user `svc`".into(),
        since: ms_to_time(since_ms),
        failures: None,
        finished: None,
    };
    let down = EndpointEvent::endpoint("w1", data("down", 1_000));
    assert_eq!(down.routing_key(), "endpoint.down");
    assert_eq!(down.kind, "reaper.endpoint.down");
    assert_eq!(down.subject.as_deref(), Some("em"));
    assert_eq!(down.time, ms_to_time(1_000));
    assert_eq!(
        down.id,
        EndpointEvent::endpoint("w1", data("down", 1_000)).id
    );
    assert_ne!(
        down.id,
        EndpointEvent::endpoint("w1", data("down", 2_000)).id
    );
    let up = EndpointEvent::endpoint("w1", data("up", 1_000));
    assert_eq!(up.routing_key(), "endpoint.up");
    assert_ne!(up.id, down.id);
    let json: serde_json::Value = serde_json::from_str(&down.to_json()).unwrap();
    assert_eq!(json["data"]["endpoint"], "em");
    assert_eq!(json["data"]["state"], "down");
    assert_eq!(json["source"], "reaper/w1");
    assert!(
        json["data"]["since"]
            .as_str()
            .unwrap()
            .starts_with("1970-01-01T00:00:01")
    );
}

#[test]
fn an_invalid_message_event_has_one_id_per_request_id_and_body() {
    let a = CloudEvent::invalid("w", Some("r-1"), "bad id", b"{}");
    assert_eq!(a.routing_key(), "delete.failed");
    assert_eq!(a.data.outcome, Outcome::Invalid);
    assert_eq!(
        a.data.error.as_ref().map(|e| e.kind.as_str()),
        Some("invalid")
    );
    assert_eq!(
        a.id,
        CloudEvent::invalid("w", Some("r-1"), "other words", b"{}").id
    );
    assert_ne!(
        a.id,
        CloudEvent::invalid("w", Some("r-1"), "bad id", b"{ }").id
    );
    assert_ne!(a.id, outcome_event_id("r-1", 0));
}

#[test]
fn a_breaker_pause_carries_its_figures_and_other_endpoint_events_do_not() {
    let data = |figures: Option<(u64, u64)>| EndpointData {
        endpoint: "em".into(),
        state: "paused".into(),
        reason: "failure breaker".into(),
        since: ms_to_time(1_000),
        failures: figures.map(|f| f.0),
        finished: figures.map(|f| f.1),
    };
    let tripped = EndpointEvent::endpoint("w1", data(Some((12, 20))));
    assert_eq!(tripped.routing_key(), "endpoint.paused");
    let json: serde_json::Value = serde_json::from_str(&tripped.to_json()).unwrap();
    assert_eq!(
        (&json["data"]["failures"], &json["data"]["finished"]),
        (&12.into(), &20.into())
    );
    let by_hand: serde_json::Value =
        serde_json::from_str(&EndpointEvent::endpoint("w1", data(None)).to_json()).unwrap();
    let keys: Vec<&str> = by_hand["data"]
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.as_str())
        .collect();
    assert_eq!(keys, ["endpoint", "reason", "since", "state"]);
}

#[test]
fn outcomes_parse_from_their_names() {
    for o in [
        Outcome::Deleted,
        Outcome::AlreadyAbsent,
        Outcome::RetriesExhausted,
        Outcome::Planned,
        Outcome::Cancelled,
    ] {
        assert_eq!(Outcome::parse(o.as_str()), Some(o));
    }
    assert_eq!(Outcome::parse("nope"), None);
}

//! Codec tests on the seed pages' own examples.

use super::*;

const SEED_RUNNING: &str = r#"<Task xmlns="http://www.veeam.com/ent/v1.0" Type="Task" Href="https://localhost:9398/api/tasks/task-1">
 <Links>
   <Link Rel="Delete" Type="Task" Href="https://localhost:9398/api/tasks/task-1" />
 </Links>
 <TaskId>task-1</TaskId>
 <State>Running</State>
 <Operation>UpdateJob</Operation>
</Task>"#;

const SEED_FINISHED: &str = r#"<Task xmlns="http://www.veeam.com/ent/v1.0" Type="Task" Href="https://localhost:9398/api/tasks/task-1">
 <Links>
   <Link Rel="Delete" Type="Task" Href="https://localhost:9398/api/tasks/task-1" />
 </Links>
 <TaskId>task-1</TaskId>
 <State>Finished</State>
 <Operation>UpdateJob</Operation>
 <Result Success="true">
   <Message>Ok</Message>
 </Result>
</Task>"#;

#[test]
fn the_seed_running_task_decodes() {
    let t = decode_task(Format::Xml, SEED_RUNNING).unwrap();
    assert_eq!(t.task_id, "task-1");
    assert_eq!(t.state, TaskState::Running);
    assert_eq!(t.operation, "UpdateJob");
    assert_eq!(t.result, None);
    assert_eq!(
        t.href.as_deref(),
        Some("https://localhost:9398/api/tasks/task-1")
    );
    assert_eq!(t.links.len(), 1);
    assert_eq!(t.links[0].rel, "Delete");
    assert!(t.finished_result().is_none());
}

#[test]
fn the_seed_finished_task_decodes_with_its_result() {
    let t = decode_task(Format::Xml, SEED_FINISHED).unwrap();
    assert_eq!(t.state, TaskState::Finished);
    let r = t.finished_result().unwrap();
    assert!(r.success);
    assert_eq!(r.message, "Ok");
}

#[test]
fn encoding_reproduces_the_seed_shape() {
    let t = decode_task(Format::Xml, SEED_FINISHED).unwrap();
    assert_eq!(encode_task(Format::Xml, &t), SEED_FINISHED);
    let running = decode_task(Format::Xml, SEED_RUNNING).unwrap();
    assert_eq!(encode_task(Format::Xml, &running), SEED_RUNNING);
}

#[test]
fn a_prefixed_namespace_and_foreign_elements_are_handled() {
    let body = r#"<?xml version="1.0" encoding="utf-8"?>
<v:Task xmlns:v="http://www.veeam.com/ent/v1.0" xmlns:x="urn:other" Type="Task" Href="https://em/api/tasks/task-9?a=1&amp;b=2">
  <x:TaskId>not-this</x:TaskId>
  <v:TaskId>task-9</v:TaskId><v:State>OperationFinished</v:State><v:Operation>DeleteJob</v:Operation>
  <v:Result Success="false"><v:Message>Job is locked &amp; busy</v:Message></v:Result>
  <v:Unknown><v:Nested/></v:Unknown>
</v:Task>"#;
    let t = decode_task(Format::Xml, body).unwrap();
    assert_eq!(t.task_id, "task-9");
    assert_eq!(
        t.href.as_deref(),
        Some("https://em/api/tasks/task-9?a=1&b=2")
    );
    assert_eq!(t.state, TaskState::OperationFinished);
    let r = t.finished_result().unwrap();
    assert!(!r.success);
    assert_eq!(r.message, "Job is locked & busy");
}

#[test]
fn json_tasks_decode_with_unknown_fields() {
    let body = r#"{"TaskId":"task-1","State":"Running","Operation":"DeleteJob","Links":[{"Rel":"Delete","Href":"https://em/api/tasks/task-1","Type":"Task"}],"Href":"https://em/api/tasks/task-1","Type":"Task","Extra":{"a":1}}"#;
    let t = decode_task(Format::Json, body).unwrap();
    assert_eq!(t.state, TaskState::Running);
    let done = r#"{"TaskId":"task-1","State":"Finished","Operation":"DeleteJob","Result":{"Success":true,"Message":"Ok"}}"#;
    let t = decode_task(Format::Json, done).unwrap();
    assert_eq!(t.finished_result().unwrap().message, "Ok");
    let again = decode_task(Format::Json, &encode_task(Format::Json, &t)).unwrap();
    assert_eq!(again, t);
}

#[test]
fn unknown_states_are_not_terminal() {
    assert!(!TaskState::parse("Pending").is_terminal());
    assert!(TaskState::parse("OperationFinished").is_terminal());
}

#[test]
fn error_bodies_decode_in_both_formats() {
    let xml = r#"<Error xmlns="http://www.veeam.com/ent/v1.0" Message="There is no task with id [task-297] in current rest session" StatusCode="500"><FirstChanceExceptionMessage>x</FirstChanceExceptionMessage><StackTrace>y</StackTrace></Error>"#;
    let e = decode_error(Format::Xml, xml).unwrap();
    assert_eq!(e.status_code, Some(500));
    assert!(e.message.contains("in current rest session"));
    let json = r#"{"FirstChanceExceptionMessage":null,"Message":"Cannot remove the last object","StackTrace":null,"Status":null,"StatusCode":400}"#;
    let e = decode_error(Format::Json, json).unwrap();
    assert_eq!(e.status_code, Some(400));
    // A JSON error answered to an XML client is still understood.
    assert_eq!(decode_error(Format::Xml, json).unwrap().message, e.message);
    assert!(decode_error(Format::Xml, "<html>bad gateway</html>").is_none());
    let round = decode_error(Format::Xml, &encode_error(Format::Xml, 404, "a <b> & c")).unwrap();
    assert_eq!(round.message, "a <b> & c");
}

#[test]
fn logon_sessions_round_trip() {
    let s = LogonSession {
        user_name: "reaper".into(),
        session_id: "2f1c0c2e-2a1f-4a3e-9a55-0c2f6b0a1b2c".into(),
    };
    for f in [Format::Xml, Format::Json] {
        let body = encode_logon_session(f, &s, "http://em/api");
        assert_eq!(decode_logon_session(f, &body).unwrap(), s);
    }
}

#[test]
fn ids_that_would_go_into_a_url_path_unsafe_are_undecodable() {
    for id in [
        "../logonSessions/x",
        "task 1",
        "task-1?x=1",
        "t%2F1",
        "täsk",
        "..",
        "",
    ] {
        let task = Task {
            task_id: id.into(),
            state: TaskState::Running,
            operation: "UpdateJob".into(),
            result: None,
            href: None,
            links: vec![],
        };
        for format in [Format::Xml, Format::Json] {
            let err = decode_task(format, &encode_task(format, &task)).unwrap_err();
            assert!(
                err.to_string().contains("TaskId"),
                "{id:?} {format:?}: {err}"
            );
        }
        let session = LogonSession {
            user_name: "u".into(),
            session_id: id.into(),
        };
        for format in [Format::Xml, Format::Json] {
            let body = encode_logon_session(format, &session, "https://em/api");
            assert!(
                decode_logon_session(format, &body).is_err(),
                "{id:?} {format:?}"
            );
        }
    }
}

#[test]
fn deeply_nested_xml_is_refused_not_a_stack_overflow() {
    let depth = 200_000;
    let body = format!(
        "<Task xmlns=\"{VEEAM_NS}\">{}{}<TaskId>t</TaskId></Task>",
        "<a>".repeat(depth),
        "</a>".repeat(depth)
    );
    let err = decode_task(Format::Xml, &body).unwrap_err();
    assert!(err.to_string().contains("nested deeper"), "{err}");
}

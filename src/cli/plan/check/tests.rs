//! The pure parts of `reaper plan`'s checks: what the guard rails' answer means for the plan,
//! and the lines settled without a remote call.

use super::*;
use crate::engine::Ending;

const JOB: &str = "d1b85018-2769-45be-89bc-03f66b60e6cb";

fn target() -> Target {
    Target::from_wire(&serde_json::json!({"type": "em.job", "job_id": JOB})).unwrap()
}

fn end(outcome: Outcome, checked: Option<bool>, error: Option<ErrorInfo>) -> Screen {
    Screen::End {
        ending: Ending::because(outcome, error),
        checked,
    }
}

fn error(kind: &str, status: Option<u16>, message: &str) -> ErrorInfo {
    ErrorInfo {
        kind: kind.into(),
        http_status: status,
        message: message.into(),
        ..Default::default()
    }
}

fn assert_verdict(screen: Screen, verdict: Verdict, detail: &str) {
    let what = format!("{screen:?}");
    let got = verdict_of(screen, &target());
    assert_eq!(got, (verdict, detail.to_string()), "{what}");
}

#[test]
fn a_checked_target_is_would_delete_absent_or_protected_with_a_detail() {
    let path = format!("/api/jobs/{JOB}");
    let planned = end(Outcome::Planned, Some(true), None);
    assert_verdict(
        planned,
        Verdict::WouldDelete,
        &format!("exists: GET {path}"),
    );
    let gone = end(Outcome::AlreadyAbsent, None, None);
    let detail = format!("already gone: GET {path} answered 404");
    assert_verdict(gone, Verdict::Absent, &detail);
    let no_job = Some(error("http", Some(404), "no job"));
    let gone = end(Outcome::AlreadyAbsent, None, no_job);
    assert_verdict(
        gone,
        Verdict::Absent,
        "already gone: EM answered 404: no job",
    );
    let rule = "job name `prod-db` matches `prod-*` (REAPER_PROTECT_JOB_NAMES)";
    let refused = end(Outcome::Refused, None, Some(error("protected", None, rule)));
    assert_verdict(refused, Verdict::Protected, rule);
}

#[test]
fn what_could_not_be_checked_is_unchecked_and_says_why() {
    let dcs = end(Outcome::Planned, Some(false), None);
    let detail = "not checked: DCS has no GET of one background task";
    assert_verdict(dcs, Verdict::Unchecked, detail);
    let no_em = end(
        Outcome::Refused,
        None,
        Some(error("unsupported", None, "no EM")),
    );
    assert_verdict(no_em, Verdict::Unchecked, "not checked: no EM");
    let busy = Screen::Again {
        error: error("http", Some(503), "busy"),
    };
    assert_verdict(
        busy,
        Verdict::Unchecked,
        "not checked: EM answered 503: busy",
    );
    let down = Screen::Hold {
        reason: "endpoint `em` is down".into(),
    };
    assert_verdict(
        down,
        Verdict::Unchecked,
        "not checked: endpoint `em` is down",
    );
}

fn request(id: &str, job: &str) -> Result<DeleteRequest, Rejection> {
    let body = serde_json::json!({"request_id": id,
        "target": {"type": "em.job", "job_id": job}});
    DeleteRequest::decode(body.to_string().as_bytes(), None)
}

fn settled(work: &Work) -> Option<(usize, Option<&str>, Verdict)> {
    match work {
        Work::Done(i) => Some((i.line, i.request_id.as_deref(), i.verdict)),
        Work::Check(..) => None,
    }
}

#[test]
fn invalid_lines_and_reused_request_ids_are_settled_without_a_call() {
    let other = "7c1e0a52-1f0e-4b8a-9a43-2f6a1d0c9b11";
    let lines = vec![
        (1, request("a", JOB)),
        (2, request("b", "../x")),
        (3, request("a", JOB)),
        (4, request("a", other)),
        (5, request("c", other)),
    ];
    let work = triage(lines);
    let got: Vec<_> = work.iter().map(settled).collect();
    assert_eq!(
        got,
        vec![
            None,
            Some((2, Some("b"), Verdict::Invalid)),
            Some((3, Some("a"), Verdict::Unchecked)),
            Some((4, Some("a"), Verdict::Invalid)),
            None,
        ]
    );
    let Work::Done(conflict) = &work[3] else {
        unreachable!()
    };
    assert!(conflict.detail.contains("line 1"), "{conflict:?}");
}

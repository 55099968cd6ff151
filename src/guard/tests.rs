//! Protection: loading (fail closed), verdicts, job-name rules, and the live reload of the
//! protect file (real files, short real polls; a timeout only fails a test that hangs).

use super::watch::{Step, Tracker};
use super::*;
use std::path::Path;
use std::time::Duration;

const JOB: &str = "7c1e0a52-1f0e-4b8a-9a43-2f6a1d0c9b11";
const OTHER: &str = "d1b85018-2769-45be-89bc-03f66b60e6cb";

fn rails(file: Option<&Path>, names: &[&str]) -> GuardRails {
    GuardRails {
        protect_file: file.map(Path::to_path_buf),
        protect_job_names: names.iter().map(|n| n.to_string()).collect(),
        ..GuardRails::default()
    }
}

fn target(json: serde_json::Value) -> Target {
    Target::from_wire(&json).unwrap()
}

fn job(id: &str) -> Target {
    target(serde_json::json!({"type": "em.job", "job_id": id}))
}

#[test]
fn without_rules_everything_is_allowed() {
    let p = Protection::load(&GuardRails::default()).unwrap();
    assert_eq!(p.check(&job(JOB)), Verdict::Allowed);
    assert!(!p.job_name_rules_apply(&job(JOB)));
    assert_eq!(p.protected_name("prod-db"), None);
    assert_eq!(p.check_name("prod-db"), Verdict::Allowed);
}

#[test]
fn a_missing_or_malformed_file_or_a_bad_glob_stops_start_up_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("absent.txt");
    let e = Protection::load(&rails(Some(&missing), &[])).unwrap_err();
    assert_eq!(e.key, "REAPER_PROTECT_FILE");
    assert!(e.to_string().contains("cannot read `"), "{e}");
    assert!(e.to_string().contains("absent.txt"), "{e}");
    let bad = dir.path().join("bad.txt");
    std::fs::write(&bad, format!("{JOB}\n# fine\nnot an id\n")).unwrap();
    let e = Protection::load(&rails(Some(&bad), &[])).unwrap_err();
    assert_eq!(e.key, "REAPER_PROTECT_FILE");
    assert!(e.to_string().contains("bad.txt` line 3: "), "{e}");
    let e = Protection::load(&rails(None, &["prod-["])).unwrap_err();
    assert_eq!(e.key, "REAPER_PROTECT_JOB_NAMES");
}

#[test]
fn the_file_protects_a_job_its_includes_and_its_links() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("protect.txt");
    std::fs::write(&path, format!("urn:veeam:Job:{JOB}\n")).unwrap();
    let p = Protection::load(&rails(Some(&path), &[])).unwrap();
    let rule = format!("job {JOB} is protected (REAPER_PROTECT_FILE line 1)");
    for t in job_targets(JOB) {
        assert_eq!(p.check(&t), Verdict::Protected(rule.clone()), "{t:?}");
    }
    assert_eq!(p.check(&job(OTHER)), Verdict::Allowed);
}

/// A target of each of the four `em.job*` types on job `id`.
fn job_targets(id: &str) -> [Target; 4] {
    [
        job(id),
        target(serde_json::json!({"type": "em.job_include", "job_id": id, "include_id": OTHER})),
        target(
            serde_json::json!({"type": "em.job_linked_repository", "job_id": id,
                                  "repository_id": OTHER}),
        ),
        target(
            serde_json::json!({"type": "em.job_linked_job", "job_id": id,
                                  "linked_job_id": OTHER}),
        ),
    ]
}

#[test]
fn job_name_globs_apply_to_the_four_job_types_only() {
    let p = Protection::load(&rails(None, &["prod-*"])).unwrap();
    assert!(job_targets(JOB).iter().all(|t| p.job_name_rules_apply(t)));
    let others = [
        target(serde_json::json!({"type": "em.task", "task_id": "task-1"})),
        target(
            serde_json::json!({"type": "dcs.background_task", "project_id": "p",
                                  "instance_id": "i", "task_id": "t"}),
        ),
    ];
    assert!(!others.iter().any(|t| p.job_name_rules_apply(t)));
    assert_eq!(
        p.check(&job(JOB)),
        Verdict::Allowed,
        "names need the job's name"
    );
    assert_eq!(p.protected_name("PROD-db-01").as_deref(), Some("prod-*"));
    assert_eq!(
        p.check_name("PROD-db-01"),
        Verdict::Protected(
            "job name `PROD-db-01` matches `prod-*` (REAPER_PROTECT_JOB_NAMES)".into()
        )
    );
    assert_eq!(p.check_name("staging-db"), Verdict::Allowed);
}

#[test]
fn a_change_is_applied_once_two_reads_agree_and_only_once() {
    let old = || Ok(b"a\n".to_vec());
    let new = || Ok(b"b\n".to_vec());
    let gone = || Err("No such file or directory (os error 2)".to_string());
    let mut t = Tracker::new(b"a\n".to_vec());
    let steps = [
        (old(), Step::Same),
        (Ok(Vec::new()), Step::Settling), // truncated, about to be rewritten
        (new(), Step::Settling),
        (new(), Step::Apply(new())),
        (new(), Step::Same),
        (old(), Step::Settling),
        (new(), Step::Back), // changed back before it counted
        (gone(), Step::Settling),
        (gone(), Step::Apply(gone())),
        (gone(), Step::Same),
        (new(), Step::Settling),
        (new(), Step::Apply(new())),
    ];
    for (i, (seen, want)) in steps.into_iter().enumerate() {
        assert_eq!(t.observe(seen), want, "read {i}");
    }
}

/// A protect file holding `text` at first, its [`Protection`], and a watcher reading it
/// every 20 ms.
struct Watched {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
    p: Protection,
    shutdown: CancellationToken,
    watcher: tokio::task::JoinHandle<()>,
}

impl Watched {
    fn start(text: &str) -> Watched {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("protect.txt");
        std::fs::write(&path, text).unwrap();
        let p = Protection::load(&rails(Some(&path), &[])).unwrap();
        let shutdown = CancellationToken::new();
        let every = Duration::from_millis(20);
        let watcher = tokio::spawn(watch::run(p.clone(), every, shutdown.clone()));
        Watched {
            _dir: dir,
            path,
            p,
            shutdown,
            watcher,
        }
    }

    /// Waits until `target`'s verdict satisfies `want`, failing after a generous time.
    async fn until(&self, target: &Target, what: &str, want: impl Fn(&Verdict) -> bool) {
        for _ in 0..1000 {
            if want(&self.p.check(target)) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("never {what}: {:?}", self.p.check(target));
    }

    async fn stop(self) {
        self.shutdown.cancel();
        self.watcher.await.unwrap();
    }
}

fn protected(v: &Verdict) -> bool {
    matches!(v, Verdict::Protected(_))
}

#[tokio::test]
async fn a_file_changed_then_made_malformed_then_fixed_while_running_is_obeyed() {
    let w = Watched::start(&format!("{JOB}\n"));
    let (job, other) = (job(JOB), job(OTHER));
    assert!(protected(&w.p.check(&job)));
    assert_eq!(w.p.check(&other), Verdict::Allowed);

    std::fs::write(&w.path, format!("# swapped\n{OTHER}\n")).unwrap();
    let rule = format!("job {OTHER} is protected (REAPER_PROTECT_FILE line 2)");
    w.until(&other, "protects the new id", |v| {
        *v == Verdict::Protected(rule.clone())
    })
    .await;
    assert_eq!(w.p.check(&job), Verdict::Allowed, "the old id is free");

    std::fs::write(&w.path, format!("{OTHER}\n{JOB} {OTHER}\n")).unwrap();
    w.until(
        &job,
        "unavailable while malformed",
        |v| matches!(v, Verdict::Unavailable(why) if why.contains("protect.txt` line 2: ")),
    )
    .await;
    assert!(
        matches!(w.p.check(&other), Verdict::Unavailable(_)),
        "for every target"
    );

    std::fs::write(&w.path, format!("{JOB}\n")).unwrap();
    w.until(&job, "protected again", protected).await;
    assert_eq!(w.p.check(&other), Verdict::Allowed);
    w.stop().await;
}

#[tokio::test]
async fn a_file_deleted_while_running_stops_deletes_until_it_is_back() {
    let w = Watched::start(&format!("{JOB}\n"));
    let (job, other) = (job(JOB), job(OTHER));
    std::fs::remove_file(&w.path).unwrap();
    w.until(
        &job,
        "unavailable once deleted",
        |v| matches!(v, Verdict::Unavailable(why) if why.contains("cannot read")),
    )
    .await;
    assert!(matches!(w.p.check(&other), Verdict::Unavailable(_)));
    std::fs::write(&w.path, format!("{OTHER}\n")).unwrap();
    w.until(&job, "free once back without it", |v| {
        *v == Verdict::Allowed
    })
    .await;
    assert!(protected(&w.p.check(&other)));
    w.stop().await;
}

#[tokio::test]
async fn without_a_file_the_watcher_ends_at_once() {
    let p = Protection::load(&rails(None, &["prod-*"])).unwrap();
    p.spawn_watcher(CancellationToken::new()).await.unwrap();
}

#[test]
fn the_readme_example_protect_file_is_valid() {
    let readme = include_str!("../../README.md");
    let section = readme
        .split("### Protected objects")
        .nth(1)
        .expect("the README explains protected objects");
    let example = section
        .split("```text\n")
        .nth(1)
        .and_then(|s| s.split("```").next())
        .expect("with an example file");
    let list = protect::ProtectList::parse(Path::new("README.md"), example.as_bytes()).unwrap();
    assert_eq!(list.len(), 4);
    let include = target(serde_json::json!({"type": "em.job_include",
        "job_id": "D1B85018-2769-45BE-89BC-03F66B60E6CB", "include_id": JOB}));
    assert!(list.find(&include).is_some());
}

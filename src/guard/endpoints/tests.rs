//! Protection per endpoint: an endpoint's own rules add to the top-level ones and are named
//! by their endpoint; a bad file of one endpoint stops start-up naming it; a file made bad
//! while running holds only the endpoints it applies to; each file is watched once.

use super::super::{Verdict, watch};
use super::*;
use crate::request::Target;
use std::path::Path;
use std::time::Duration;

const JOB: &str = "7c1e0a52-1f0e-4b8a-9a43-2f6a1d0c9b11";
const OTHER: &str = "d1b85018-2769-45be-89bc-03f66b60e6cb";

fn job(id: &str) -> Target {
    Target::from_wire(&serde_json::json!({"type": "em.job", "job_id": id})).unwrap()
}

/// Two EM endpoints `em-a` (with its own `protect_file` and `protect_job_names`) and `em-b`
/// (without), under the top-level `protect_file` and `protect_job_names = "prod-*"`.
fn config(dir: &Path, global: &Path, own: &Path) -> Config {
    let toml = dir.join("reaper.toml");
    let em = |name: &str, extra: &str| {
        format!(
            "[[em]]\nname = \"{name}\"\nurl = \"https://{name}\"\nusername = \"u\"\n\
             password = \"p\"\n{extra}"
        )
    };
    let own = format!(
        "protect_file = \"{}\"\nprotect_job_names = [\"fin-*\"]\n",
        own.display()
    );
    let text = format!(
        "protect_file = \"{}\"\nprotect_job_names = \"prod-*\"\n{}{}",
        global.display(),
        em("em-a", &own),
        em("em-b", "")
    );
    std::fs::write(&toml, text).unwrap();
    Config::from_vars([("REAPER_CONFIG".into(), toml.to_str().unwrap().into())]).unwrap()
}

/// A directory with a top-level protect file listing [`JOB`] and `em-a`'s listing [`OTHER`].
fn files() -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let (global, own) = (dir.path().join("global.txt"), dir.path().join("em-a.txt"));
    std::fs::write(&global, format!("{JOB}\n")).unwrap();
    std::fs::write(&own, format!("# em-a only\n{OTHER}\n")).unwrap();
    (dir, global, own)
}

#[test]
fn an_endpoints_own_rules_add_to_the_top_level_ones_and_are_named_by_their_endpoint() {
    let (dir, global, own) = files();
    let ps = Protections::load(&config(dir.path(), &global, &own)).unwrap();
    let (a, b) = (ps.of("em-a"), ps.of("em-b"));
    let by_global = format!("job {JOB} is protected (REAPER_PROTECT_FILE line 1)");
    for p in [a, b, ps.of("not-configured")] {
        assert_eq!(p.check(&job(JOB)), Verdict::Protected(by_global.clone()));
    }
    let by_own = format!("job {OTHER} is protected (protect_file of `em-a` line 2)");
    assert_eq!(a.check(&job(OTHER)), Verdict::Protected(by_own));
    assert_eq!(b.check(&job(OTHER)), Verdict::Allowed, "em-a's file only");
    assert_eq!(
        a.check_name("Fin-2024"),
        Verdict::Protected(
            "job name `Fin-2024` matches `fin-*` (protect_job_names of `em-a`)".into()
        )
    );
    assert_eq!(b.check_name("fin-2024"), Verdict::Allowed);
    for p in [a, b] {
        assert!(p.job_name_rules_apply(&job(JOB)));
        assert_eq!(p.protected_name("PROD-db").as_deref(), Some("prod-*"));
    }
    assert_eq!(ps.watched().layers.len(), 2, "each file watched once");
}

#[test]
fn a_bad_file_of_one_endpoint_stops_start_up_naming_the_endpoint() {
    let (dir, global, own) = files();
    std::fs::write(&own, "ok\nnot an id\n").unwrap();
    let e = Protections::load(&config(dir.path(), &global, &own)).unwrap_err();
    assert_eq!(e.key, "protect_file of `em-a`");
    assert!(e.to_string().contains("em-a.txt` line 2: "), "{e}");
    std::fs::remove_file(&own).unwrap();
    let e = Protections::load(&config(dir.path(), &global, &own)).unwrap_err();
    assert!(e.to_string().contains("cannot read `"), "{e}");
}

/// Waits until the endpoints whose protection cannot be used are `want`.
async fn until_unavailable(ps: &Protections, want: &[&str]) {
    for _ in 0..1000 {
        let mut now = ps.unavailable();
        now.sort();
        if now == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("never {want:?}: {:?}", ps.unavailable());
}

#[tokio::test]
async fn a_file_made_bad_while_running_holds_only_the_endpoints_it_applies_to() {
    let (dir, global, own) = files();
    let ps = Protections::load(&config(dir.path(), &global, &own)).unwrap();
    let shutdown = CancellationToken::new();
    let every = Duration::from_millis(20);
    let watcher = tokio::spawn(watch::run(ps.watched(), every, shutdown.clone()));
    assert!(ps.unavailable().is_empty());

    std::fs::write(&own, "two ids\n").unwrap();
    until_unavailable(&ps, &["em-a"]).await;
    assert!(matches!(
        ps.of("em-a").check(&job(OTHER)),
        Verdict::Unavailable(_)
    ));
    assert_eq!(ps.of("em-b").check(&job(OTHER)), Verdict::Allowed);
    assert!(
        matches!(ps.of("em-a").check(&job(JOB)), Verdict::Protected(_)),
        "what the top-level file protects stays protected"
    );
    std::fs::write(&own, format!("{OTHER}\n")).unwrap();
    until_unavailable(&ps, &[]).await;

    std::fs::write(&global, "two ids\n").unwrap();
    until_unavailable(&ps, &["em-a", "em-b"]).await;
    std::fs::write(&global, format!("{JOB}\n")).unwrap();
    until_unavailable(&ps, &[]).await;
    shutdown.cancel();
    watcher.await.unwrap();
}

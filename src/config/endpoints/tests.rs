//! Several endpoints in one configuration: `[[em]]` and `[[dcs]]` tables read with their own
//! settings over the top-level ones, the rules on names, the refusal to mix tables with the
//! variables, errors that name the table and its key and never a secret.

use crate::config::{Config, ConfigError, Format};
use std::path::PathBuf;

/// A TOML file holding `text`, in a directory kept for the test's life.
struct File {
    dir: tempfile::TempDir,
    path: String,
}

fn file(text: &str) -> File {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("reaper.toml");
    std::fs::write(&path, text).unwrap();
    File {
        path: path.to_str().unwrap().to_string(),
        dir,
    }
}

/// The configuration of the file `text`, with the variables `env` beside it.
fn config(text: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let f = file(text);
    let mut vars = vec![("REAPER_CONFIG".to_string(), f.path.clone())];
    vars.extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    Config::from_vars(vars)
}

/// The error of the file `text`, as printed.
fn error(text: &str) -> String {
    config(text, &[]).unwrap_err().to_string()
}

const TWO_EMS_AND_A_DCS: &str = r#"
rate_per_sec = 5
burst = 3
max_deletes_per_hour = 100
protect_job_names = "prod-*"

[[em]]
name = "em-a"
url = "https://em-a.example.com:9398/"
username = "svc-a"
password = "pw-a"
format = "json"
rate_per_sec = 20
dry_run = true
protect_job_names = ["fin-*", "hr-*"]

[[em]]
name = "em-b"
url = "https://em-b.example.com:9398"
username = "svc-b"
password = "pw-b"
insecure_tls = true
max_deletes_per_hour = 10
breaker_ratio = 0.5
protect_file = "/etc/reaper/em-b.txt"

[[dcs]]
name = "dcs-1"
url = "https://dcs.example.com"
token = "t0ken"
burst = 7
max_in_flight = 2
"#;

#[test]
fn two_em_tables_and_a_dcs_table_each_get_their_settings_over_the_top_level_ones() {
    let c = config(TWO_EMS_AND_A_DCS, &[]).unwrap();
    let [a, b] = &c.em[..] else {
        panic!("two EMs: {:?}", c.em)
    };
    assert_eq!(
        (a.name.as_str(), a.url.as_str()),
        ("em-a", "https://em-a.example.com:9398")
    );
    assert_eq!((a.username.as_str(), a.format), ("svc-a", Format::Json));
    assert_eq!(a.password.current().expose(), "pw-a");
    assert_eq!((b.name.as_str(), b.format), ("em-b", Format::Xml));
    assert!(b.http.insecure_tls && !a.http.insecure_tls);
    // Budgets: a table's value overrides, the rest is inherited.
    assert_eq!(
        (
            a.budget.rate_per_sec,
            a.budget.burst,
            a.budget.max_in_flight
        ),
        (20.0, 3, 8)
    );
    assert_eq!((b.budget.rate_per_sec, b.budget.burst), (5.0, 3));
    let [d] = &c.dcs[..] else {
        panic!("one DCS: {:?}", c.dcs)
    };
    assert_eq!(d.name, "dcs-1");
    let budget = (
        d.budget.rate_per_sec,
        d.budget.burst,
        d.budget.max_in_flight,
    );
    assert_eq!(budget, (5.0, 7, 2));
    // Guard rails: overridden where set, inherited elsewhere.
    let (ga, gb, gd) = (
        c.guard_for("em-a"),
        c.guard_for("em-b"),
        c.guard_for("dcs-1"),
    );
    assert!(ga.dry_run && !gb.dry_run && !gd.dry_run);
    assert_eq!(
        (
            ga.max_deletes_per_hour,
            gb.max_deletes_per_hour,
            gd.max_deletes_per_hour
        ),
        (100, 10, 100)
    );
    assert_eq!((ga.breaker_ratio, gb.breaker_ratio), (0.2, 0.5));
    assert_eq!(c.guard, c.guard_for("not-configured"));
    assert!(!c.guard.dry_run, "the top level is untouched");
    // Protection adds up: the top-level globs stay, each table's own come on top.
    assert_eq!(ga.protect_job_names, ["prod-*"]);
    assert_eq!(
        c.endpoint_guards["em-a"].protect_job_names,
        ["fin-*", "hr-*"]
    );
    let own_file = c.endpoint_guards["em-b"].protect_file.clone();
    assert_eq!(own_file, Some(PathBuf::from("/etc/reaper/em-b.txt")));
    assert_eq!(
        gb.protect_file, None,
        "the top-level file (none) is not replaced"
    );
    assert_eq!(c.endpoint_guards["dcs-1"], Default::default());
}

#[test]
fn an_endpoint_of_each_kind_may_come_from_the_variables_beside_tables_of_the_other() {
    let c = config(
        "[[dcs]]\nurl = \"https://dcs\"\ntoken = \"t\"\n",
        &[
            ("REAPER_EM_URL", "https://em:9398"),
            ("REAPER_EM_USERNAME", "u"),
            ("REAPER_EM_PASSWORD", "p"),
        ],
    )
    .unwrap();
    assert_eq!(c.em[0].name, "em");
    assert_eq!(c.dcs[0].name, "dcs", "one table needs no name");
}

#[test]
fn tables_and_the_variables_of_the_same_kind_do_not_mix() {
    let em = "[[em]]\nurl = \"https://em\"\nusername = \"u\"\npassword = \"p\"\n";
    let e = config(em, &[("REAPER_EM_URL", "https://other")]).unwrap_err();
    assert_eq!(e.key, "REAPER_EM_URL");
    assert!(e.reason.contains("has [[em]] tables"), "{e}");
    assert!(e.reason.contains("not both"), "{e}");
    let e = config(&format!("em_format = \"json\"\n{em}"), &[]).unwrap_err();
    assert_eq!(e.key, "REAPER_EM_FORMAT", "at the top of the file too: {e}");
    let dcs = "[[dcs]]\nurl = \"https://dcs\"\ntoken = \"t\"\n";
    let e = config(dcs, &[("REAPER_DCS_RATE_PER_SEC", "3")]).unwrap_err();
    assert_eq!(e.key, "REAPER_DCS_RATE_PER_SEC", "{e}");
}

#[test]
fn a_name_is_needed_when_a_kind_has_several_tables_and_each_must_be_unique_and_well_formed() {
    let em = |name: &str| {
        format!("[[em]]\n{name}url = \"https://em\"\nusername = \"u\"\npassword = \"p\"\n")
    };
    let e = error(&format!("{}{}", em("name = \"a\"\n"), em("")));
    assert!(
        e.contains("[[em]] #2: name: required in every [[em]] table"),
        "{e}"
    );
    let e = error(&format!("{}{}", em("name = \"a\"\n"), em("name = \"a\"\n")));
    assert!(
        e.contains("[[em]] #2 (`a`): name: `a` is also the name of [[em]] #1 (`a`)"),
        "{e}"
    );
    let dcs = "[[dcs]]\nname = \"em\"\nurl = \"https://dcs\"\ntoken = \"t\"\n";
    let env = [
        ("REAPER_EM_URL", "https://em:9398"),
        ("REAPER_EM_USERNAME", "u"),
        ("REAPER_EM_PASSWORD", "p"),
    ];
    let e = config(dcs, &env).unwrap_err();
    assert!(
        e.reason.contains("`em` is also the name of REAPER_EM_NAME"),
        "unique across EM and DCS: {e}"
    );
    for bad in ["em a", "..", "em/a", &"x".repeat(65), "émé"] {
        let e = error(&em(&format!("name = \"{bad}\"\n")));
        assert!(e.contains("[[em]] #1: name: `"), "{bad:?}: {e}");
        assert!(e.contains("not an endpoint name"), "{bad:?}: {e}");
    }
    let e = Config::from_vars([("REAPER_DCS_NAME".into(), "a b".into())]);
    assert!(e.is_ok(), "a name is read only with its endpoint");
    let e = Config::from_vars(
        [("REAPER_EM_NAME", "a b"), env[0], env[1], env[2]]
            .map(|(k, v)| (k.to_string(), v.to_string())),
    )
    .unwrap_err();
    assert_eq!(e.key, "REAPER_EM_NAME", "{e}");
}

#[test]
fn with_routing_by_endpoint_no_endpoint_queue_may_be_the_dead_letter_or_lease_queue() {
    let em = |name: &str| {
        format!(
            "[[em]]\nname = \"{name}\"\nurl = \"https://em\"\nusername = \"u\"\npassword = \"p\"\n"
        )
    };
    let route = [("REAPER_ROUTE_BY_ENDPOINT", "true")];
    for name in ["dead", "lease"] {
        assert!(
            config(&em(name), &[]).is_ok(),
            "{name} is fine without routing"
        );
        let e = config(&em(name), &route).unwrap_err().to_string();
        let queue = format!("its queue `reaper.requests.{name}` would be");
        assert!(e.contains(&queue), "{e}");
    }
    let moved = [
        ("REAPER_ROUTE_BY_ENDPOINT", "true"),
        ("REAPER_DEAD_LETTER_QUEUE", "reaper.requests.graveyard"),
    ];
    let e = config(&em("graveyard"), &moved).unwrap_err().to_string();
    assert!(e.contains("would be the dead-letter queue"), "{e}");
}

#[test]
fn an_unknown_or_misplaced_key_in_a_table_is_named_with_the_closest_known_one() {
    let e =
        error("[[em]]\nname = \"em-a\"\nurl = \"https://em\"\npasswrd = \"x\"\ntoken = \"t\"\n");
    assert!(e.contains("REAPER_CONFIG"), "{e}");
    assert!(
        e.contains("[[em]] #1 (`em-a`): unknown key `passwrd` (did you mean `password`?)"),
        "{e}"
    );
    assert!(
        e.contains("unknown key `token`"),
        "a DCS key in an EM table: {e}"
    );
    let e = error("[[dcs]]\nurl = \"https://dcs\"\niam_ulr = \"https://iam\"\n");
    assert!(
        e.contains("unknown key `iam_ulr` (did you mean `iam_url`?)"),
        "{e}"
    );
    let e = error("[[dcs]]\nurl = \"https://dcs\"\nmax_attempts = 3\n");
    assert!(
        e.contains("unknown key `max_attempts`"),
        "top-level only: {e}"
    );
    let e = error("[em]\nurl = \"https://em\"\n");
    assert!(e.contains("write each endpoint as a [[em]] table"), "{e}");
}

#[test]
fn a_bad_value_in_a_table_names_the_table_and_the_key_as_the_file_writes_them() {
    let f = file("");
    let table = |body: &str| {
        std::fs::write(&f.path, format!("[[em]]\nname = \"em-a\"\n{body}")).unwrap();
        Config::from_vars([("REAPER_CONFIG".to_string(), f.path.clone())]).unwrap_err()
    };
    let at = format!("in `{}`: [[em]] #1 (`em-a`): ", f.path);
    let e = table("url = \"em.example.com\"\n");
    assert_eq!(e.key, "REAPER_CONFIG");
    assert!(
        e.reason
            .starts_with(&format!("{at}url: `em.example.com` is not an http(s) URL")),
        "{e}"
    );
    let e = table("url = \"https://em\"\npassword = \"p\"\n");
    assert_eq!(
        e.reason,
        format!("{at}username: required when `url` is set"),
        "variables in the reason are written as keys"
    );
    let e = table("username = \"u\"\npassword = \"p\"\n");
    assert_eq!(e.reason, format!("{at}url: required"));
    let ok = "url = \"https://em\"\nusername = \"u\"\npassword = \"p\"\n";
    let e = table(&format!("{ok}rate_per_sec = \"fast\"\n"));
    assert!(
        e.reason.starts_with(&format!("{at}rate_per_sec: `fast`")),
        "{e}"
    );
    let e = table(&format!("{ok}breaker_min = 60\n"));
    assert!(
        e.reason
            .contains("breaker_window: 50 is smaller than `breaker_min` (60)"),
        "checked with what it inherits: {e}"
    );
    let e = table(&format!("{ok}protect_job_names = [\"a,b\"]\n"));
    assert!(e.reason.contains("entry 1 holds a comma"), "{e}");
    let e = table(&format!("{ok}dry_run = \"maybe\"\n"));
    assert!(
        e.reason.contains("dry_run: `maybe` is not true or false"),
        "{e}"
    );
    drop(f.dir);
}

#[test]
fn no_error_about_a_table_ever_shows_a_secret() {
    let secret = "hunter2-Zq9";
    let f = file("");
    let pw_file = format!("{}/{secret}", f.dir.path().display());
    for body in [
        format!(
            "url = \"https://em\"\nusername = \"u\"\npassword = \"{secret}\"\npassword_file = \"/x\"\n"
        ),
        format!("url = \"https://em\"\nusername = \"u\"\npassword_file = \"{secret}\"\n"),
        format!("url = \"https://em\"\nusername = \"u\"\npassword_file = \"{pw_file}\"\n"),
        format!("url = \"ftp://u:{secret}@em\"\n"),
        format!("url = \"https://em\"\npassword = [\"{secret}\"]\n"),
        format!("url = \"https://em\"\npassword = {{ v = \"{secret}\" }}\n"),
        format!("url = \"https://em\"\npasword = \"{secret}\"\n"),
        format!(
            "url = \"https://em\"\nusername = \"u\"\npassword = \"{secret}\"\nformat = \"yaml\"\n"
        ),
    ] {
        std::fs::write(&f.path, format!("[[em]]\nname = \"em-a\"\n{body}")).unwrap();
        let e = Config::from_vars([("REAPER_CONFIG".to_string(), f.path.clone())])
            .unwrap_err()
            .to_string();
        assert!(!e.contains(secret), "{body} echoed the secret: {e}");
        assert!(e.contains("[[em]] #1 (`em-a`)"), "{e}");
    }
    let dcs =
        format!("[[dcs]]\nurl = \"https://dcs\"\ntoken = \"{secret}\"\ntoken_file = \"/x\"\n");
    std::fs::write(&f.path, dcs).unwrap();
    let e = Config::from_vars([("REAPER_CONFIG".to_string(), f.path.clone())]).unwrap_err();
    assert!(
        e.reason.contains("set `token` or `token_file`, not both"),
        "{e}"
    );
    assert!(!e.to_string().contains(secret), "{e}");
}

#[test]
fn top_level_job_name_globs_may_be_an_array_too() {
    let c = config("protect_job_names = [\"prod-*\", \" db? \"]\n", &[]).unwrap();
    assert_eq!(c.guard.protect_job_names, ["prod-*", "db?"]);
    let e = error("protect_job_names = [\"prod-*\", 3]\n");
    assert!(e.contains("entry 2 is not a string"), "{e}");
    let e = error("ledger = [\"a\"]\n");
    assert!(e.contains("holds an array, not a plain value"), "{e}");
}

#[test]
fn plain_http_urls_of_several_endpoints_are_warned_about_by_name() {
    let text = TWO_EMS_AND_A_DCS.replace("https://em-b.example.com", "http://em-b.example.com");
    let c = config(&text, &[]).unwrap();
    let warnings = c.warnings();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].starts_with("REAPER_EM_URL of endpoint `em-b` is `http://em-b"),
        "{warnings:?}"
    );
}

#[test]
fn the_readme_example_holds_only_keys_its_tables_take() {
    let readme = include_str!("../../../README.md");
    let example = readme
        .split("### Several endpoints in one worker")
        .nth(1)
        .and_then(|s| s.split("```toml\n").nth(1))
        .and_then(|s| s.split("```").next())
        .expect("the README shows a TOML example of several endpoints");
    let f = file(example);
    // Read as the file is read (the secret and CA files it names do not exist here).
    let read = super::super::file::read_toml(&f.path).unwrap();
    let names = |tables: &[super::super::tables::RawTable]| -> Vec<String> {
        tables
            .iter()
            .map(|t| t.vars["REAPER_EM_NAME"].clone())
            .collect()
    };
    assert_eq!(names(&read.tables.em), ["em-paris", "em-lyon"]);
    assert_eq!(read.tables.dcs.len(), 1);
    assert_eq!(
        read.tables.dcs[0].vars["REAPER_DCS_IAM_URL"],
        "https://iam.ap-southeast-1.myhuaweicloud.com"
    );
}

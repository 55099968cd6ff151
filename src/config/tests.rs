//! Configuration: defaults, errors naming their key, secrets, files.

use super::*;

fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn defaults_serve_a_local_run() {
    let c = Config::from_vars(vars(&[])).unwrap();
    assert_eq!(c.topology.request_queue, "reaper.requests");
    assert_eq!(c.topology.dead_letter_queue, "reaper.requests.dead");
    assert_eq!(c.ledger, PathBuf::from("reaper.db"));
    assert!(c.em.is_empty());
    assert_eq!(c.max_attempts, 8);
    assert_eq!(c.task_timeout, Duration::from_secs(3600));
}

#[test]
fn a_bad_value_names_its_key() {
    for (key, value) in [
        ("REAPER_RATE_PER_SEC", "fast"),
        ("REAPER_RATE_PER_SEC", "inf"),
        ("REAPER_RATE_PER_SEC", "1e-30"),
        ("REAPER_RATE_PER_SEC", "-1"),
        ("REAPER_MAX_ATTEMPTS", "0"),
        ("REAPER_TASK_TIMEOUT", "forever"),
        ("REAPER_EM_INSECURE_TLS", "maybe"),
        ("REAPER_QUEUE_TYPE", "stream"),
        ("REAPER_EM_URL", "em.example.com"),
        ("REAPER_POLL_LATENESS", "0"),
        ("REAPER_POLL_LATENESS", "150%"),
        ("REAPER_POLL_LATENESS", "soon"),
    ] {
        let e = Config::from_vars(vars(&[(key, value)])).unwrap_err();
        assert_eq!(e.key, key, "{e}");
        assert!(e.to_string().contains(key));
    }
}

#[test]
fn poll_lateness_is_a_share_or_off() {
    let lateness = |v: &str| {
        Config::from_vars(vars(&[("REAPER_POLL_LATENESS", v)]))
            .unwrap()
            .poll_lateness
    };
    assert_eq!(
        Config::from_vars(vars(&[])).unwrap().poll_lateness,
        Some(0.1)
    );
    assert_eq!(lateness("0.2"), Some(0.2));
    assert_eq!(lateness(" 5% "), Some(0.05));
    assert_eq!(lateness("OFF"), None);
}

#[test]
fn em_settings_need_credentials_and_keep_the_password_secret() {
    let e = Config::from_vars(vars(&[("REAPER_EM_URL", "https://em:9398")])).unwrap_err();
    assert_eq!(e.key, "REAPER_EM_USERNAME");
    let c = Config::from_vars(vars(&[
        ("REAPER_EM_URL", "https://em:9398/"),
        ("REAPER_EM_USERNAME", "svc"),
        ("REAPER_EM_PASSWORD", "hunter2"),
        ("REAPER_EM_FORMAT", "json"),
    ]))
    .unwrap();
    let em = c.em.into_iter().next().unwrap();
    assert_eq!(em.url, "https://em:9398");
    assert_eq!(em.format, Format::Json);
    assert!(!format!("{em:?}").contains("hunter2"));
}

#[test]
fn a_password_file_is_read_and_a_toml_file_sits_under_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("pw");
    std::fs::write(&pw, "s3cret\n").unwrap();
    let toml_path = dir.path().join("reaper.toml");
    std::fs::write(
        &toml_path,
        "rate_per_sec = 5\nmax_attempts = 3\nledger = \"x.db\"\n",
    )
    .unwrap();
    let c = Config::from_vars(vars(&[
        ("REAPER_CONFIG", toml_path.to_str().unwrap()),
        ("REAPER_MAX_ATTEMPTS", "4"),
        ("REAPER_EM_URL", "http://127.0.0.1:1"),
        ("REAPER_EM_USERNAME", "u"),
        ("REAPER_EM_PASSWORD_FILE", pw.to_str().unwrap()),
    ]))
    .unwrap();
    assert_eq!(c.max_attempts, 4, "environment wins over the file");
    assert_eq!(c.ledger, PathBuf::from("x.db"));
    let em = c.em.into_iter().next().unwrap();
    assert_eq!(em.budget.rate_per_sec, 5.0);
    assert_eq!(em.password.current().expose(), "s3cret");
    assert_eq!(
        em.password.path(),
        Some(pw.as_path()),
        "kept to be read again"
    );
}

#[test]
fn errors_quote_values_only_of_keys_that_cannot_hold_a_secret() {
    let secret = "hunter2-Zq9";
    let dir = tempfile::tempdir().unwrap();
    let toml = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_string()
    };
    let cases: Vec<Vec<(String, String)>> = vec![
        // A secret pasted where a file name belongs.
        vars(&[
            ("REAPER_EM_URL", "https://em:9398"),
            ("REAPER_EM_USERNAME", "u"),
            ("REAPER_EM_PASSWORD_FILE", secret),
        ]),
        vars(&[
            ("REAPER_DCS_URL", "https://dcs"),
            ("REAPER_DCS_TOKEN_FILE", secret),
        ]),
        // Credentials in a URL's user part.
        vars(&[("REAPER_EM_URL", &format!("ftp://svc:{secret}@em:9398"))]),
        // An endpoint table holding a password (and no URL): refused without printing it.
        vars(&[(
            "REAPER_CONFIG",
            &toml(
                "table.toml",
                &format!("[[em]]\nname = \"em1\"\npassword = \"{secret}\"\n"),
            ),
        )]),
        vars(&[(
            "REAPER_CONFIG",
            &toml(
                "inline.toml",
                &format!("em = {{ password = \"{secret}\" }}\n"),
            ),
        )]),
        // A syntax error on the line of the password.
        vars(&[(
            "REAPER_CONFIG",
            &toml(
                "broken.toml",
                &format!("rate_per_sec = 5\nem_password = \"{secret}\n"),
            ),
        )]),
        vars(&[(
            "REAPER_CONFIG",
            &toml("bare.toml", &format!("em_password = {secret}\n")),
        )]),
    ];
    for case in cases {
        let e = Config::from_vars(case.clone()).unwrap_err().to_string();
        assert!(!e.contains(secret), "{case:?} echoed the secret: {e}");
        assert!(e.contains("REAPER_"), "the message names a key: {e}");
    }
    let e = Config::from_vars(vars(&[(
        "REAPER_CONFIG",
        &toml("line.toml", "rate_per_sec = 5\nem_password = \"open\n"),
    )]))
    .unwrap_err()
    .to_string();
    assert!(e.contains("line 2"), "{e}");
    let e = Config::from_vars(vars(&[(
        "REAPER_EM_URL",
        &format!("ftp://svc:{secret}@em:9398/x"),
    )]))
    .unwrap_err()
    .to_string();
    assert!(e.contains("`ftp://***@em:9398/x`"), "{e}");
    // Values of other keys are still quoted, to help the operator.
    let e = Config::from_vars(vars(&[("REAPER_RATE_PER_SEC", "fast")])).unwrap_err();
    assert!(e.to_string().contains("`fast`"), "{e}");
}

#[test]
fn a_dcs_budget_is_checked_like_the_em_one() {
    for rate in ["inf", "NaN", "-1", "1e-9"] {
        let e = Config::from_vars(vars(&[
            ("REAPER_DCS_URL", "https://dcs"),
            ("REAPER_DCS_TOKEN", "t"),
            ("REAPER_DCS_RATE_PER_SEC", rate),
        ]))
        .unwrap_err();
        assert_eq!(e.key, "REAPER_DCS_RATE_PER_SEC", "{rate}: {e}");
    }
}

#[test]
fn plain_http_endpoint_urls_are_warned_about_by_key() {
    let c = Config::from_vars(vars(&[
        ("REAPER_EM_URL", "http://em:9398"),
        ("REAPER_EM_USERNAME", "u"),
        ("REAPER_EM_PASSWORD", "p"),
        ("REAPER_DCS_URL", "https://dcs"),
        ("REAPER_DCS_IAM_URL", "http://iam"),
        ("REAPER_DCS_DOMAIN", "d"),
        ("REAPER_DCS_USERNAME", "u"),
        ("REAPER_DCS_PASSWORD", "p"),
    ]))
    .unwrap();
    let warnings = c.warnings();
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(warnings[0].starts_with("REAPER_EM_URL is `http://em:9398`"));
    assert!(warnings[1].starts_with("REAPER_DCS_IAM_URL is `http://iam`"));
    let secure = Config::from_vars(vars(&[
        ("REAPER_EM_URL", "https://em:9398"),
        ("REAPER_EM_USERNAME", "u"),
        ("REAPER_EM_PASSWORD", "p"),
    ]))
    .unwrap();
    assert!(secure.warnings().is_empty());
}

#[test]
fn guard_rails_default_to_a_real_run_with_the_breaker_on() {
    let g = Config::from_vars(vars(&[])).unwrap().guard;
    assert_eq!(g, GuardRails::default());
    assert!(!g.dry_run);
    assert_eq!(g.protect_file, None);
    assert!(g.protect_job_names.is_empty());
    assert_eq!(g.max_deletes_per_hour, 0, "no cap");
    assert_eq!(
        (g.breaker_ratio, g.breaker_min, g.breaker_window),
        (0.2, 20, 50)
    );
    assert!(g.breaker_enabled());
}

#[test]
fn guard_rails_are_read_from_the_environment_and_the_toml_file() {
    let dir = tempfile::tempdir().unwrap();
    let toml_path = dir.path().join("reaper.toml");
    std::fs::write(
        &toml_path,
        "dry_run = true\nprotect_file = \"/etc/reaper/protect.txt\"\nbreaker_ratio = 0.5\n\
         max_deletes_per_hour = 30\n",
    )
    .unwrap();
    let g = Config::from_vars(vars(&[
        ("REAPER_CONFIG", toml_path.to_str().unwrap()),
        ("REAPER_PROTECT_JOB_NAMES", " prod-* , Finance??,db[0-9] "),
        ("REAPER_BREAKER_MIN", "5"),
        ("REAPER_BREAKER_WINDOW", "5"),
    ]))
    .unwrap()
    .guard;
    assert!(g.dry_run);
    assert_eq!(
        g.protect_file,
        Some(PathBuf::from("/etc/reaper/protect.txt"))
    );
    assert_eq!(g.protect_job_names, ["prod-*", "Finance??", "db[0-9]"]);
    assert_eq!(g.max_deletes_per_hour, 30);
    assert_eq!(
        (g.breaker_ratio, g.breaker_min, g.breaker_window),
        (0.5, 5, 5)
    );
    let off = Config::from_vars(vars(&[
        ("REAPER_BREAKER_RATIO", "0"),
        ("REAPER_BREAKER_MIN", "0"),
        ("REAPER_BREAKER_WINDOW", "0"),
    ]))
    .unwrap()
    .guard;
    assert!(
        !off.breaker_enabled(),
        "ratio 0 disables; min and window do not matter"
    );
}

#[test]
fn a_bad_guard_rail_names_its_key() {
    const NAMES: &str = "REAPER_PROTECT_JOB_NAMES";
    const MIN: &str = "REAPER_BREAKER_MIN";
    const RATIO: &str = "REAPER_BREAKER_RATIO";
    // (key set, its value, the key the error names, what it says)
    for (set, value, key, says) in [
        (
            "REAPER_DRY_RUN",
            "maybe",
            "REAPER_DRY_RUN",
            "not true or false",
        ),
        (
            "REAPER_MAX_DELETES_PER_HOUR",
            "-1",
            "REAPER_MAX_DELETES_PER_HOUR",
            "`-1`",
        ),
        (RATIO, "1.5", RATIO, "from 0 to 1"),
        (RATIO, "-0.1", RATIO, "from 0 to 1"),
        (RATIO, "NaN", RATIO, "from 0 to 1"),
        (MIN, "0", MIN, "at least 1"),
        (MIN, "many", MIN, "`many`"),
        (
            MIN,
            "60",
            "REAPER_BREAKER_WINDOW",
            "smaller than REAPER_BREAKER_MIN (60)",
        ),
        (
            NAMES,
            "prod-*,,test-*",
            NAMES,
            "entry 2 of `prod-*,,test-*` is empty",
        ),
        (NAMES, "prod-*,", NAMES, "entry 2"),
        (NAMES, "prod-[", NAMES, "`prod-[` is not a glob"),
    ] {
        let e = Config::from_vars(vars(&[(set, value)])).unwrap_err();
        assert_eq!(e.key, key, "{set}={value}: {e}");
        assert!(e.to_string().contains(says), "{set}={value}: {e}");
    }
}

#[test]
fn an_unknown_key_stops_the_configuration_naming_the_closest_known_one() {
    for typo in ["REAPER_DRY_RUNN", "reaper_dry_run", "Reaper_Dry_Run"] {
        let e = Config::from_vars(vars(&[(typo, "true")])).unwrap_err();
        assert_eq!(e.key, typo);
        assert_eq!(
            e.to_string(),
            format!(
                "configuration: {typo}: unknown setting (did you mean REAPER_DRY_RUN?) (a key \
                 reaper does not read is refused, never ignored)"
            )
        );
    }
    assert!(
        source::Source::from_vars(vars(&[("REAPER_DRY_RUNN", "true")])).is_err(),
        "checked where every command's settings are read (the log format's too)"
    );
    let dir = tempfile::tempdir().unwrap();
    let toml_path = dir.path().join("reaper.toml");
    std::fs::write(
        &toml_path,
        "ledger = \"x.db\"\nprotect_jobnames = \"prod-*\"\n",
    )
    .unwrap();
    let e = Config::from_vars(vars(&[("REAPER_CONFIG", toml_path.to_str().unwrap())])).unwrap_err();
    assert_eq!(e.key, "REAPER_CONFIG");
    assert!(
        e.to_string()
            .contains("unknown setting `protect_jobnames` (did you mean `protect_job_names`?)"),
        "{e}"
    );
    assert!(
        Config::from_vars(vars(&[("RUST_LOG", "debug"), ("HOME", "/root")])).is_ok(),
        "other programs' variables are not reaper's business"
    );
}

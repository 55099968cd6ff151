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
    assert!(c.em.is_none());
    assert_eq!(c.max_attempts, 8);
    assert_eq!(c.task_timeout, Duration::from_secs(3600));
}

#[test]
fn a_bad_value_names_its_key() {
    for (key, value) in [
        ("REAPER_RATE_PER_SEC", "fast"),
        ("REAPER_MAX_ATTEMPTS", "0"),
        ("REAPER_TASK_TIMEOUT", "forever"),
        ("REAPER_EM_INSECURE_TLS", "maybe"),
        ("REAPER_QUEUE_TYPE", "stream"),
        ("REAPER_EM_URL", "em.example.com"),
    ] {
        let e = Config::from_vars(vars(&[(key, value)])).unwrap_err();
        assert_eq!(e.key, key, "{e}");
        assert!(e.to_string().contains(key));
    }
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
    let em = c.em.unwrap();
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
    let em = c.em.unwrap();
    assert_eq!(em.budget.rate_per_sec, 5.0);
    assert_eq!(em.password.current().expose(), "s3cret");
    assert_eq!(
        em.password.path(),
        Some(pw.as_path()),
        "kept to be read again"
    );
}

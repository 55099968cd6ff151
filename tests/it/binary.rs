//! The `reaper run` binary as an operator runs it: configured by the environment, serving
//! health and metrics, stopping cleanly on SIGTERM, and never logging a secret; and the
//! operator commands that act on its ledger.

use crate::common::*;
use reaper::event::Outcome;
use reaper::ledger::{Change, Finish, Ledger, NewEvent, State, now_ms};
use reaper::request::DeleteRequest;
use reaper::sim::SimConfig;
use std::process::{Command, Stdio};
use std::time::Duration;

/// The `reaper` binary with an empty environment but `PATH`: only what a test sets reaches it,
/// never a `REAPER_*` or `RUST_LOG` of the shell that runs the tests.
pub(crate) fn reaper_bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_reaper"));
    c.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    c
}

/// A running `reaper` whose output is read as it comes: a full pipe would block its logging
/// (and with it the worker) long before the test reads it.
pub(crate) struct Running {
    pub(crate) child: std::process::Child,
    stdout: std::thread::JoinHandle<Vec<u8>>,
    stderr: std::thread::JoinHandle<Vec<u8>>,
}

impl Running {
    /// `kill -9`: the process ends at once, without any of its own shutdown path.
    pub(crate) async fn kill9(mut self) -> std::process::Output {
        self.child.kill().unwrap();
        self.output().await
    }

    /// Waits for the process to end by itself; its status and output.
    pub(crate) async fn output(self) -> std::process::Output {
        let Running {
            mut child,
            stdout,
            stderr,
        } = self;
        tokio::task::spawn_blocking(move || std::process::Output {
            status: child.wait().unwrap(),
            stdout: stdout.join().unwrap(),
            stderr: stderr.join().unwrap(),
        })
        .await
        .unwrap()
    }
}

/// Starts `cmd` with both outputs piped and drained.
pub(crate) fn start(cmd: &mut Command) -> Running {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let drain = |mut pipe: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut read = Vec::new();
            let _ = pipe.read_to_end(&mut read);
            read
        })
    };
    let stdout = drain(Box::new(child.stdout.take().unwrap()));
    let stderr = drain(Box::new(child.stderr.take().unwrap()));
    Running {
        child,
        stdout,
        stderr,
    }
}

/// Sends SIGTERM to the running binary and waits for its output.
pub(crate) async fn stop_with_sigterm(running: Running) -> std::process::Output {
    let killed = Command::new("kill")
        .args(["-TERM", &running.child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    running.output().await
}

/// `GET url`: the status and body, or `(0, "")` when nothing answers within 10 s.
pub(crate) async fn get(url: &str) -> (u16, String) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    match client.get(url).send().await {
        Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
        Err(_) => (0, String::new()),
    }
}

/// Waits until `reaper run` answers `/readyz` with 200 on `metrics`.
async fn wait_ready(metrics: &str) {
    wait_until("/readyz answers 200", Duration::from_secs(30), || async {
        get(&format!("http://{metrics}/readyz")).await.0 == 200
    })
    .await;
}

#[tokio::test]
async fn reaper_run_serves_health_and_metrics_stops_on_sigterm_and_logs_no_secret() {
    let password = "s3cret-Pa55-word";
    let env = TestEnv::new(SimConfig {
        password: password.into(),
        task_duration: (Duration::from_millis(100), Duration::from_millis(100)),
        ..SimConfig::default()
    })
    .await;
    let mut events = env.watcher().await;
    let metrics = format!("127.0.0.1:{}", free_port());
    let child = start(
        reaper_run(&env, "em", &metrics)
            .env("RUST_LOG", "debug")
            .env("REAPER_EM_PASSWORD", password),
    );
    wait_ready(&metrics).await;
    assert_eq!(get(&format!("http://{metrics}/healthz")).await.0, 200);
    env.publisher()
        .await
        .publish_all(&[job_request("bin-1", &guid())])
        .await
        .unwrap();
    let got = collect(&mut events, 1, Duration::from_secs(30)).await;
    assert_eq!(got["bin-1"][0].1.data.outcome, Outcome::Deleted);
    wait_until(
        "the metrics count the request",
        Duration::from_secs(10),
        || async {
            get(&format!("http://{metrics}/metrics"))
                .await
                .1
                .contains("reaper_requests{state=\"succeeded\",outcome=\"deleted\"} 1")
        },
    )
    .await;
    let (_, text) = get(&format!("http://{metrics}/metrics")).await;
    assert!(text.contains("reaper_outbox_unpublished 0"), "{text}");
    assert!(text.contains("reaper_ready 1"), "{text}");

    let out = stop_with_sigterm(child).await;
    let logs = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "exit {:?}: {logs}", out.status);
    assert_eq!(env.sim.stats().logoffs, 1, "the EM session was logged off");
    assert_debug_logs_without_secrets(&logs, password);
    env.cleanup().await;
}

/// Debug logs of a run were captured, and neither the EM password nor the broker's
/// credentials are in them; the plain-http EM URL is warned about once.
fn assert_debug_logs_without_secrets(logs: &str, password: &str) {
    assert!(
        logs.contains("logged on to Enterprise Manager"),
        "debug logs were captured"
    );
    assert!(
        !logs.contains(password),
        "the EM password leaked into the logs"
    );
    assert!(
        !logs.contains("guest:guest"),
        "the AMQP credentials leaked into the logs"
    );
    assert_eq!(
        logs.matches("REAPER_EM_URL is `http://").count(),
        1,
        "a plain-http endpoint is warned about once, naming its key: {logs}"
    );
}

/// The forms a password could take in a log line: as text, and as the bytes of an AMQP frame
/// (`[103, 117, …]`, with or without spaces, or in hex).
fn password_forms(password: &str) -> Vec<String> {
    let bytes = password.as_bytes();
    let join = |sep: &str| {
        bytes
            .iter()
            .map(u8::to_string)
            .collect::<Vec<_>>()
            .join(sep)
    };
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    vec![password.to_string(), join(", "), join(","), hex]
}

#[tokio::test]
async fn trace_logs_never_carry_the_broker_password() {
    let broker = amqp_url().await;
    let password = "Wr0ng-Pa55-Zx81q";
    let url = broker.replacen("guest:guest@", &format!("guest:{password}@"), 1);
    assert_ne!(
        url, broker,
        "the test broker URL carries guest:guest: {broker}"
    );
    let dir = tempfile::tempdir().unwrap();
    let child = start(
        reaper_bin()
            .arg("run")
            .env(
                "RUST_LOG",
                "trace,lapin=trace,amq_protocol=trace,amq_protocol_tcp=trace",
            )
            .env("REAPER_AMQP_URL", &url)
            .env("REAPER_LEDGER", dir.path().join("ledger.db"))
            .env("REAPER_METRICS_ADDR", "off"),
    );
    // The broker refuses the password; the worker retries with back-off meanwhile.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let out = stop_with_sigterm(child).await;
    let logs = String::from_utf8_lossy(&out.stderr);
    assert!(
        logs.contains("DEBUG") && logs.contains("lapin::"),
        "verbose logs were captured, lapin's own (up to debug) among them: {logs}"
    );
    assert!(
        logs.contains("ACCESS_REFUSED") || logs.contains("cannot connect to RabbitMQ"),
        "the handshake reached the broker and was refused: {logs}"
    );
    for form in password_forms(password) {
        assert!(
            !logs.contains(&form),
            "the broker password leaked into the logs as `{form}`"
        );
    }
}

#[test]
fn a_configuration_error_never_echoes_a_password_from_the_toml_file() {
    let password = "T0ml-Secret-Qw7";
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in [
        (
            "tables.toml",
            format!(
                "[[em]]\nname = \"em1\"\nurl = \"https://em:9398\"\npassword = \"{password}\"\n"
            ),
        ),
        (
            "broken.toml",
            format!("em_url = \"https://em\"\nem_password = \"{password}\n"),
        ),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        let out = reaper_bin()
            .arg("run")
            .env("RUST_LOG", "trace")
            .env("REAPER_CONFIG", &path)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{name}: {err}");
        assert!(err.contains("configuration: REAPER_"), "{name}: {err}");
        assert!(
            err.contains(name),
            "{name}: the message names the file: {err}"
        );
        for form in password_forms(password) {
            assert!(!err.contains(&form), "{name} echoed the password: {err}");
        }
    }
}

#[tokio::test]
async fn a_bad_setting_stops_start_up_with_a_message_naming_the_key() {
    let out = reaper_bin()
        .arg("run")
        .env("REAPER_RATE_PER_SEC", "lots")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("REAPER_RATE_PER_SEC"), "{err}");
}

#[test]
fn a_misspelt_dry_run_stops_reaper_run_naming_the_typo_and_the_key_it_meant() {
    let out = reaper_bin()
        .arg("run")
        .env("REAPER_DRY_RUNN", "true")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("REAPER_DRY_RUNN: unknown setting (did you mean REAPER_DRY_RUN?)"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

#[cfg(unix)]
#[tokio::test]
async fn a_setting_that_is_not_unicode_is_named_and_another_variable_is_passed_over() {
    use std::os::unix::ffi::OsStrExt;
    let not_unicode = std::ffi::OsStr::from_bytes(b"\xff\xfe");
    let out = reaper_bin()
        .arg("run")
        .env("REAPER_RATE_PER_SEC", not_unicode)
        .env("SOME_OTHER_TOOL", not_unicode)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("REAPER_RATE_PER_SEC"), "{err}");
    assert!(err.contains("not valid Unicode"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

fn reaper_cmd(env: &TestEnv) -> Command {
    let t = &env.cfg.topology;
    let mut c = reaper_bin();
    c.env("REAPER_AMQP_URL", env.cfg.amqp_url.expose())
        .env("REAPER_REQUEST_QUEUE", &t.request_queue)
        .env("REAPER_LEDGER", env.ledger_path());
    c
}

/// Request files in `dir`: five good JSON lines, the first of them again with a bad line
/// after it, and a CSV of two requests of batch `b1` (one naming its job by URN).
fn request_files(dir: &std::path::Path) -> [std::path::PathBuf; 3] {
    let [good, bad, csv] = ["good.jsonl", "bad.jsonl", "batch.csv"].map(|f| dir.join(f));
    let lines: Vec<String> = (0..5)
        .map(|i| serde_json::to_string(&job_request(&format!("enq-{i}"), &guid())).unwrap())
        .collect();
    std::fs::write(&good, lines.join("\n") + "\n").unwrap();
    let traversal = r#"{"request_id":"x","target":{"type":"em.job","job_id":"../x"}}"#;
    std::fs::write(&bad, format!("{}\n{traversal}\n", lines[0])).unwrap();
    let rows = format!(
        "request_id,type,job_id,batch_id\ncsv-1,em.job,{},b1\ncsv-2,em.job,urn:veeam:Job:{},b1\n",
        guid(),
        guid()
    );
    std::fs::write(&csv, rows).unwrap();
    [good, bad, csv]
}

/// `reaper enqueue FILE`: its exit code and standard error.
fn enqueue(env: &TestEnv, file: &std::path::Path) -> (Option<i32>, String) {
    let out = reaper_cmd(env).arg("enqueue").arg(file).output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[tokio::test]
async fn enqueue_validates_every_line_first_then_publishes_with_confirms() {
    let env = TestEnv::new(SimConfig::default()).await;
    let [good, bad, csv] = request_files(env.dir.path());
    let requests = &env.cfg.topology.request_queue;

    let (code, err) = enqueue(&env, &bad);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("bad.jsonl:2"), "{err}");
    assert_eq!(
        queue_depth(&env.conn, requests).await,
        0,
        "nothing published"
    );
    for file in [&good, &csv] {
        let (code, err) = enqueue(&env, file);
        assert_eq!(code, Some(0), "{err}");
    }
    assert_eq!(queue_depth(&env.conn, requests).await, 7);

    // The published requests are the contract's: a worker deletes all seven.
    let mut events = env.watcher().await;
    let worker = env.start_worker();
    let got = collect(&mut events, 7, Duration::from_secs(30)).await;
    assert!(
        got.values()
            .all(|e| e[0].1.data.outcome == Outcome::Deleted)
    );
    assert_eq!(got["csv-2"][0].1.data.batch_id.as_deref(), Some("b1"));
    worker.stop().await;
    assert_status_and_report(&env);
    env.cleanup().await;
}

/// `reaper status` and `reaper report` on the ledger of the enqueue test's seven deletions.
fn assert_status_and_report(env: &TestEnv) {
    let status = reaper_cmd(env).arg("status").output().unwrap();
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(
        text.lines().any(|l| l.starts_with("succeeded")
            && l.contains("deleted")
            && l.trim_end().ends_with('7')),
        "{text}"
    );
    let one = reaper_cmd(env).args(["status", "enq-0"]).output().unwrap();
    let text = String::from_utf8_lossy(&one.stdout);
    assert!(
        text.contains("accepted") && text.contains("polling") && text.contains("succeeded"),
        "{text}"
    );
    let report = reaper_cmd(env)
        .args(["report", "--batch", "b1"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&report.stdout);
    assert_eq!(text.lines().count(), 3, "header and two rows: {text}");
    assert!(text.lines().nth(1).unwrap().starts_with("csv-1,em.job,"));
    let missing = reaper_cmd(env)
        .args(["status", "no-such-request"])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(3));
}

/// A request received at `received`, ended at `finished` (if given) with its event published.
async fn recorded(ledger: &Ledger, id: &str, received: i64, finished: Option<i64>) {
    let body = serde_json::to_vec(&job_request(id, &guid())).unwrap();
    let req = DeleteRequest::decode(&body, None).unwrap();
    ledger.accept(&req, "em", received).await.unwrap();
    let Some(at) = finished else { return };
    let finish = Finish {
        outcome: "deleted".into(),
        finished_at: at,
    };
    let change = Change::to(State::Succeeded, "ok");
    let event = |_: &_| NewEvent {
        event_id: format!("ev-{id}"),
        request_id: Some(id.to_string()),
        routing_key: "delete.succeeded".into(),
        payload: "{}".into(),
    };
    ledger.finish(id, &change, &finish, event).await.unwrap();
    let seqs: Vec<i64> = ledger
        .pending_events(i64::MAX, 100)
        .await
        .unwrap()
        .iter()
        .map(|r| r.seq)
        .collect();
    ledger.mark_published(&seqs, at).await.unwrap();
}

#[tokio::test]
async fn reaper_prune_forgets_only_requests_that_finished_before_the_cutoff() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.db");
    let day = 86_400_000;
    let now = now_ms();
    let ledger = Ledger::open(&path).await.unwrap();
    recorded(&ledger, "old-a", now - 45 * day, Some(now - 40 * day)).await;
    recorded(&ledger, "old-b", now - 45 * day, Some(now - 31 * day)).await;
    recorded(&ledger, "recent", now - 45 * day, Some(now - 29 * day)).await;
    recorded(&ledger, "open", now - 45 * day, None).await;
    ledger.close().await;

    let out = reaper_bin()
        .args(["prune", "--finished-before", "30d"])
        .env("REAPER_LEDGER", &path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("2 requests, 4 history rows, 2 published events"),
        "{stdout}"
    );

    let ledger = Ledger::open(&path).await.unwrap();
    for gone in ["old-a", "old-b"] {
        assert!(ledger.get(gone).await.unwrap().is_none(), "{gone}");
        assert!(ledger.history(gone).await.unwrap().is_empty(), "{gone}");
    }
    let recent = ledger.get("recent").await.unwrap().unwrap();
    assert_eq!(recent.outcome.as_deref(), Some("deleted"));
    assert_eq!(ledger.history("recent").await.unwrap().len(), 2);
    let open = ledger.get("open").await.unwrap().unwrap();
    assert_eq!(
        open.state(),
        State::Accepted,
        "an unfinished request is never pruned"
    );
    assert_eq!(ledger.backlog().await.unwrap(), 1);

    let none = reaper_bin()
        .args(["prune", "--finished-before", "soon"])
        .env("REAPER_LEDGER", &path)
        .output()
        .unwrap();
    assert_eq!(
        none.status.code(),
        Some(2),
        "a bad duration is a usage error"
    );
    assert!(String::from_utf8_lossy(&none.stderr).contains("--finished-before"));
}

/// `reaper run` against the simulator and the test's topology, its endpoint named `endpoint`,
/// serving health and metrics on `metrics`.
fn reaper_run(env: &TestEnv, endpoint: &str, metrics: &str) -> Command {
    reaper_run_on(env, &env.ledger_path(), endpoint, metrics)
}

/// [`reaper_run`] with its own ledger file.
pub(crate) fn reaper_run_on(
    env: &TestEnv,
    ledger: &std::path::Path,
    endpoint: &str,
    metrics: &str,
) -> Command {
    let t = &env.cfg.topology;
    let mut c = reaper_bin();
    c.arg("run")
        .env("REAPER_AMQP_URL", env.cfg.amqp_url.expose())
        .env("REAPER_REQUEST_QUEUE", &t.request_queue)
        .env("REAPER_DEAD_LETTER_QUEUE", &t.dead_letter_queue)
        .env("REAPER_DEAD_LETTER_EXCHANGE", &t.dead_letter_exchange)
        .env("REAPER_EVENTS_EXCHANGE", &t.events_exchange)
        .env("REAPER_QUEUE_EXPIRES", "10m")
        .env("REAPER_LEDGER", ledger)
        .env("REAPER_EM_URL", env.sim.base_url())
        .env("REAPER_EM_NAME", endpoint)
        .env("REAPER_EM_USERNAME", "reaper")
        .env("REAPER_EM_PASSWORD", "reaper")
        .env("REAPER_POLL_INITIAL", "100ms")
        .env("REAPER_METRICS_ADDR", metrics);
    c
}

/// The value of the sample `series` (name and labels, exactly as rendered) in `text`.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test]
async fn reaper_run_counts_calls_logons_outcomes_events_and_dead_letters_and_logs_json_lines() {
    let env = TestEnv::new(SimConfig {
        task_duration: (Duration::from_millis(100), Duration::from_millis(100)),
        ..SimConfig::default()
    })
    .await;
    let mut events = env.watcher().await;
    let metrics = format!("127.0.0.1:{}", free_port());
    let em = format!("em-{}", &guid()[..8]);
    let child = start(reaper_run(&env, &em, &metrics).env("REAPER_LOG_FORMAT", "json"));
    wait_ready(&metrics).await;
    let batch: Vec<_> = (0..3)
        .map(|i| job_request(&format!("m-{i}"), &guid()))
        .collect();
    let publisher = env.publisher().await;
    publisher.publish_all(&batch).await.unwrap();
    publisher.publish_raw(b"{not json", None).await.unwrap();
    let got = collect(&mut events, 3, Duration::from_secs(30)).await;
    for i in 0..3 {
        assert_eq!(got[&format!("m-{i}")][0].1.data.outcome, Outcome::Deleted);
    }

    let want = [
        format!("reaper_outcomes_total{{endpoint=\"{em}\",outcome=\"deleted\"}} 3"),
        "reaper_events_published_total{routing_key=\"delete.succeeded\"} 3".to_string(),
        "reaper_dead_lettered_total 1".to_string(),
    ];
    wait_until(
        "the metrics count the batch",
        Duration::from_secs(10),
        || async {
            let text = get(&format!("http://{metrics}/metrics")).await.1;
            want.iter().all(|w| text.lines().any(|l| l == w))
        },
    )
    .await;
    let (_, text) = get(&format!("http://{metrics}/metrics")).await;
    assert_call_metrics(&text, &em);

    let out = stop_with_sigterm(child).await;
    let logs = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "exit {:?}: {logs}", out.status);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.is_empty(), "{stdout}");
    assert_json_logs(&logs);
    env.cleanup().await;
}

/// The remote-call metrics of endpoint `em` after three job deletions.
fn assert_call_metrics(text: &str, em: &str) {
    let calls = |op: &str, status: &str| {
        let series = format!(
            "reaper_remote_calls_total{{endpoint=\"{em}\",operation=\"{op}\",status=\"{status}\"}}"
        );
        sample(text, &series)
    };
    assert_eq!(calls("delete", "202"), Some(3.0), "{text}");
    assert!(calls("poll", "200").is_some_and(|n| n >= 3.0), "{text}");
    let logons = format!("reaper_logons_total{{endpoint=\"{em}\",result=\"ok\"}}");
    assert_eq!(sample(text, &logons), Some(1.0), "{text}");
    let took = format!(
        "reaper_remote_call_duration_seconds_count{{endpoint=\"{em}\",operation=\"delete\"}}"
    );
    assert_eq!(sample(text, &took), Some(3.0), "{text}");
    assert!(text.contains("# TYPE reaper_remote_call_duration_seconds histogram"));
    let waits = format!("reaper_budget_wait_seconds_count{{endpoint=\"{em}\"}}");
    assert!(
        sample(text, &waits).is_some_and(|n| n >= 7.0),
        "every call waited for the budget (a logon, 3 deletes, 3 polls at least): {text}"
    );
    let up = format!("reaper_endpoint_up{{endpoint=\"{em}\"}}");
    assert_eq!(sample(text, &up), Some(1.0), "{text}");
    assert_eq!(sample(text, "reaper_events_returned_total"), None);
}

/// Every line of `logs` is a JSON object with a level and fields; the run's milestones are
/// among them.
fn assert_json_logs(logs: &str) {
    let lines: Vec<serde_json::Value> = logs
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(
        lines
            .iter()
            .all(|l| l["level"].is_string() && l["fields"].is_object()),
        "{logs}"
    );
    let said = |what: &str| lines.iter().any(|l| l["fields"]["message"] == what);
    assert!(said("logged on to Enterprise Manager"), "{logs}");
    assert!(said("stop signal received: shutting down"), "{logs}");
}

#[test]
fn an_unknown_log_format_stops_reaper_with_a_message_naming_the_key() {
    let out = Command::new(env!("CARGO_BIN_EXE_reaper"))
        .arg("run")
        .env_clear()
        .env("REAPER_LOG_FORMAT", "yaml")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("REAPER_LOG_FORMAT") && err.contains("`yaml` is not text or json"),
        "{err}"
    );
}

#[tokio::test]
async fn reaper_demo_prints_progress_lines_and_a_summary_without_info_logs() {
    let amqp = amqp_url().await;
    let out = Command::new(env!("CARGO_BIN_EXE_reaper"))
        .args([
            "demo",
            "--count",
            "20",
            "--task-duration",
            "50ms",
            "--timeout",
            "2m",
        ])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("REAPER_AMQP_URL", &amqp)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("summary of batch demo-"), "{stdout}");
    assert!(
        stdout
            .lines()
            .any(|l| l.split_whitespace().eq(["deleted", "20"])),
        "{stdout}"
    );
    assert!(stdout.contains("events received    20/20"), "{stdout}");
    assert!(
        !stderr.contains("INFO") && !stderr.contains("logged on to Enterprise Manager"),
        "the demo logs at warn by default: {stderr}"
    );
    let quiet = stdout.lines().all(|l| !l.contains('\u{1b}'));
    assert!(
        quiet,
        "no progress bar when the output is not a terminal: {stdout}"
    );
}

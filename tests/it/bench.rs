//! `reaper bench` as an operator runs it, with small numbers: it measures the worker as a
//! child process of its own and prints every figure, each plausible. No wall-clock limit is
//! asserted (machines are noisy); the broker is the real one, and its absence fails the test.

use crate::binary::reaper_bin;
use crate::common::amqp_url;

/// The number in `line` just before ` {unit}` (the first such).
fn number_before(line: &str, unit: &str) -> Option<f64> {
    let head = &line[..line.find(&format!(" {unit}"))?];
    let number = head.split_whitespace().last()?;
    number.trim_end_matches(['%', ',', ';']).parse().ok()
}

/// The lines of `out` that start (once trimmed) with `label`, in order.
fn lines<'a>(out: &'a str, label: &str) -> Vec<&'a str> {
    out.lines()
        .filter(|l| l.trim_start().starts_with(label))
        .collect()
}

/// The number before `unit` on each line labelled `label` that has `unit`; there must be
/// `count` of them.
fn figures(out: &str, label: &str, unit: &str, count: usize) -> Vec<f64> {
    let found: Vec<f64> = lines(out, label)
        .iter()
        .filter(|l| l.contains(&format!(" {unit}")))
        .map(|l| number_before(l, unit).unwrap_or_else(|| panic!("no `{unit}` in `{l}`")))
        .collect();
    assert_eq!(found.len(), count, "{count} `{label}` lines in:\n{out}");
    found
}

#[tokio::test]
async fn reaper_bench_measures_the_worker_alone_and_prints_every_figure() {
    let url = amqp_url().await;
    let args = [
        "bench",
        "--requests",
        "200",
        "--in-flight",
        "500",
        "--budget-rate",
        "0",
        "--poll-tasks",
        "0",
        "--capacity",
        "4",
        "--capacity-requests",
        "300",
    ];
    let out = tokio::task::spawn_blocking(move || {
        reaper_bin()
            .args(args)
            .env("REAPER_AMQP_URL", url)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let logs = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}\n{logs}");
    assert!(
        lines(&text, "command:")[0].ends_with(&args.join(" ")),
        "{text}"
    );

    // Two throughput runs (tasks that end at once, tasks of 1 s), the worker a child.
    assert_eq!(lines(&text, "throughput:").len(), 2, "{text}");
    assert!(lines(&text, "throughput:")[0].contains("child process"));
    for rate in figures(&text, "completed", "requests/s", 2) {
        assert!(rate > 0.0, "{text}");
    }
    for calls in figures(&text, "EM calls", "calls per completed request", 2) {
        assert!((1.0..10.0).contains(&calls), "{text}");
    }
    for ms in figures(&text, "worker CPU", "ms per request", 2) {
        assert!(ms > 0.0, "{text}");
    }
    for ms in figures(&text, "bench CPU", "ms per request", 2) {
        assert!(ms > 0.0, "{text}");
    }
    // Every request is written to the ledger, so some commits are counted; group commit lets
    // requests share them, so fewer than one a request is right, never 50.
    for tx in figures(&text, "worker ledger", "SQLite transactions", 2) {
        assert!(tx > 0.0 && tx < 50.0, "{text}");
    }

    // The memory run: the child's memory idle, loaded and at its peak; polls; a kill -9.
    let memory = lines(&text, "worker memory")
        .into_iter()
        .find(|l| l.contains("idle"))
        .unwrap_or_else(|| panic!("no idle memory line in:\n{text}"));
    let idle = number_before(memory, "MiB resident idle").unwrap();
    let loaded = number_before(memory, "MiB with 500 tasks in flight").unwrap();
    let peak = number_before(memory, "MiB peak").unwrap();
    assert!(idle > 1.0 && loaded > 1.0 && peak >= loaded, "{text}");
    assert!(
        figures(&text, "while they poll", "polls/s", 1)[0] > 0.0,
        "{text}"
    );
    let cpu = figures(&text, "while they poll", "of one core", 1)[0];
    assert!(cpu > 0.0, "{text}");
    let restart = lines(&text, "after kill -9")[0];
    let ready = number_before(restart, "s after the kill, a new").unwrap();
    let answered = number_before(restart, "s after it").unwrap();
    assert!(ready > 0.0 && answered >= ready, "{text}");

    // The capacity run: the first calls above the capacity met 503s; the time and its bound.
    let early = lines(&text, "503 first 10 s")[0];
    let rejected = number_before(early, "of").unwrap();
    let calls = number_before(early, "calls").unwrap();
    assert!(rejected >= 1.0 && calls > rejected, "{text}");
    assert_eq!(lines(&text, "503 after 10 s").len(), 1, "{text}");
    assert!(
        figures(&text, "capacity allows", "s =", 1)[0] > 0.0,
        "{text}"
    );
    let ratio: f64 = lines(&text, "ratio")[0]
        .split_whitespace()
        .nth(1)
        .and_then(|r| r.parse().ok())
        .unwrap();
    assert!(ratio > 0.0, "{text}");
}

//! A `reaper run` worker as a child process, so that `reaper bench` measures the worker alone
//! (its CPU, memory and ledger transactions apart from the simulator, publisher and watcher
//! that stay in the bench's process). It is this very binary (`std::env::current_exe()`),
//! configured only by the `REAPER_…` variables of a [`Config`] ([`Config::to_env`]): secrets
//! reach it through its environment, never its command line, and are never printed. It is
//! ready once its `/readyz` answers 200, and it is killed when its handle is dropped — after
//! a run, on an error, on unwinding — so no run leaves a worker behind. The last lines it
//! wrote to stderr go into the error when it dies early.

use super::procfs::{self, Usage};
use crate::config::Config;
use anyhow::Context;
use std::collections::VecDeque;
use std::io::BufRead;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a new worker may take to answer `/readyz` with 200 (connect to the broker,
/// declare, resume a ledger of 100,000 tasks).
const READY_WITHIN: Duration = Duration::from_secs(120);

/// Lines of the worker's stderr kept for an error message.
const TAIL_LINES: usize = 30;

/// A running child worker; killed when dropped.
pub struct WorkerProcess {
    child: Child,
    metrics: SocketAddr,
    tail: Arc<Mutex<VecDeque<String>>>,
    http: reqwest::Client,
}

impl WorkerProcess {
    /// Starts `reaper run` configured as `cfg` (its metrics on a free port of 127.0.0.1,
    /// whatever `cfg` says) and waits until it is ready. `REAPER_…` variables of this process
    /// are not passed on (the child's configuration is `cfg`, whole), but for
    /// `REAPER_LOG_FORMAT`; `RUST_LOG` is.
    pub async fn start(cfg: &Config) -> anyhow::Result<Self> {
        let metrics = free_local_addr()?;
        let vars = Config {
            metrics_addr: Some(metrics),
            ..cfg.clone()
        }
        .to_env()?;
        let exe = std::env::current_exe().context("finding this program to start a worker")?;
        let mut cmd = Command::new(exe);
        cmd.arg("run")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (key, _) in std::env::vars_os() {
            let name = key.to_string_lossy();
            let reaper = name
                .get(..7)
                .is_some_and(|p| p.eq_ignore_ascii_case("REAPER_"));
            if reaper && name != "REAPER_LOG_FORMAT" {
                cmd.env_remove(&key);
            }
        }
        cmd.envs(vars.iter());
        let mut child = cmd
            .spawn()
            .context("starting `reaper run` as a child process")?;
        let tail = Arc::new(Mutex::new(VecDeque::new()));
        if let Some(stderr) = child.stderr.take() {
            keep_tail(stderr, Arc::clone(&tail));
        }
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()?;
        let mut worker = WorkerProcess {
            child,
            metrics,
            tail,
            http,
        };
        worker.wait_ready().await?;
        Ok(worker)
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The child's CPU time so far and memory now (from `/proc/<pid>`).
    pub fn usage(&self) -> Usage {
        procfs::usage(Some(self.pid()))
    }

    /// Waits until `/readyz` answers 200; an error with the end of its stderr if the child
    /// ends first or is not ready within [`READY_WITHIN`].
    async fn wait_ready(&mut self) -> anyhow::Result<()> {
        let url = format!("http://{}/readyz", self.metrics);
        let started = Instant::now();
        loop {
            self.check_alive()?;
            if let Ok(r) = self.http.get(&url).send().await
                && r.status().is_success()
            {
                return Ok(());
            }
            if started.elapsed() > READY_WITHIN {
                anyhow::bail!(
                    "the child worker (pid {}) was not ready within {} s; the end of its \
                     stderr:\n{}",
                    self.pid(),
                    READY_WITHIN.as_secs(),
                    self.stderr_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// An error with the end of its stderr if the child has ended.
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        match self.child.try_wait()? {
            None => Ok(()),
            Some(status) => {
                // Give the reader a moment to take the last lines from the pipe.
                std::thread::sleep(Duration::from_millis(100));
                anyhow::bail!(
                    "the child worker (pid {}) ended early ({status}); the end of its stderr:\n{}",
                    self.pid(),
                    self.stderr_tail()
                )
            }
        }
    }

    /// The value of the metric `name` (a sample without labels) on the child's `/metrics`.
    pub async fn metric(&mut self, name: &str) -> anyhow::Result<f64> {
        self.check_alive()?;
        let url = format!("http://{}/metrics", self.metrics);
        let text = self.http.get(&url).send().await?.text().await?;
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
            .with_context(|| format!("the child worker's /metrics has no sample of {name}"))
    }

    /// `kill -9`: the child ends at once, without any of its shutdown path (the operating
    /// system releases its ledger lock).
    pub fn kill9(&mut self) {
        self.kill_and_reap();
    }

    /// Stops the child as an operator would (SIGTERM, through `kill`), waiting up to
    /// `grace` for it to end, then kills it. Warns (with its stderr's end) when it did not end
    /// cleanly.
    pub async fn stop(mut self, grace: Duration) {
        let pid = self.pid().to_string();
        let signalled = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .is_ok_and(|s| s.success());
        let started = Instant::now();
        while signalled && started.elapsed() < grace {
            match self.child.try_wait() {
                Ok(Some(status)) if status.success() => return,
                Ok(Some(status)) => {
                    tracing::warn!(%status, tail = self.stderr_tail(), "the child worker stopped with an error");
                    return;
                }
                _ => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
        tracing::warn!(
            pid,
            "the child worker did not stop within its grace: killed"
        );
        // Dropping `self` kills it.
    }

    fn kill_and_reap(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }

    /// The last lines the child wrote to stderr.
    pub fn stderr_tail(&self) -> String {
        let tail = self.tail.lock().unwrap_or_else(|e| e.into_inner());
        tail.iter().cloned().collect::<Vec<_>>().join("\n")
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        self.kill_and_reap();
    }
}

/// Reads `stderr` on a thread of its own (a full pipe would block the child's logging, and
/// with it the worker), keeping its last [`TAIL_LINES`] lines.
fn keep_tail(stderr: std::process::ChildStderr, tail: Arc<Mutex<VecDeque<String>>>) {
    std::thread::spawn(move || {
        let mut reader = std::io::BufReader::new(stderr);
        let mut line = Vec::new();
        while reader.read_until(b'\n', &mut line).is_ok_and(|n| n > 0) {
            let text = without_colours(String::from_utf8_lossy(&line).trim_end());
            let mut tail = tail.lock().unwrap_or_else(|e| e.into_inner());
            if tail.len() == TAIL_LINES {
                tail.pop_front();
            }
            tail.push_back(text);
            line.clear();
        }
    });
}

/// `line` without its terminal colour sequences (`ESC [ … m`), which the worker's text logs
/// carry even into a pipe.
fn without_colours(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // Skip up to and including the sequence's final letter.
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// A port of 127.0.0.1 free now (the child binds it a moment later).
fn free_local_addr() -> anyhow::Result<SocketAddr> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?)
}

#[cfg(test)]
mod tests {
    #[test]
    fn colour_sequences_are_taken_out_of_the_tail() {
        let line = "\u{1b}[2m2026-12-04T15:05:11Z\u{1b}[0m \u{1b}[33m WARN\u{1b}[0m reaper: x";
        assert_eq!(
            super::without_colours(line),
            "2026-12-04T15:05:11Z  WARN reaper: x"
        );
    }
}

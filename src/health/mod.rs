//! Endpoint health (design 1.7): whether each remote endpoint (an EM, a DCS with its IAM) can
//! be used. A call that meets endpoint trouble — no answer, or reaper's own credentials
//! refused — marks its endpoint `down`; while down no call is made for requests (they wait,
//! spending no attempt), and one prober per endpoint probes it with a capped backoff until
//! it answers, which marks it `up` again ([`probe`]).
//!
//! Each change of state is logged once here and handed, as a [`Transition`], to whoever
//! holds the receiving end (the worker puts it in the outbox as an `endpoint.*` event).
//! Knows nothing of HTTP, the ledger or the broker; reasons never carry a secret (they are
//! built from error messages, which never do).

pub mod probe;

use crate::retry::{Backoff, Jitter};
use chrono::{DateTime, Utc};
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

/// How long the prober waits before each probe: 1 s doubling to 60 s, no jitter (one prober
/// per endpoint per process: nothing to spread).
pub const PROBE: Backoff = Backoff {
    initial: Duration::from_secs(1),
    factor: 2.0,
    max: Duration::from_secs(60),
    jitter: Jitter::None,
};

/// An endpoint that goes down again sooner than this after coming up keeps its probe backoff
/// (a flapping endpoint is probed ever more rarely, up to [`PROBE`]'s cap), else it starts over.
pub const STABLE: Duration = Duration::from_secs(60);

/// Whether an endpoint can be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Up,
    Down,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Up => "up",
            State::Down => "down",
        }
    }
}

/// An endpoint's state as seen now, for `/readyz` and `/metrics`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub endpoint: String,
    pub state: State,
    /// When it entered this state.
    pub since: DateTime<Utc>,
    /// Why: what failed (down), or how the probe was answered (up).
    pub reason: String,
}

/// A change of state, handed on once: the endpoint's state after it.
pub type Transition = Snapshot;

/// The pure part: state, reason, and the probe schedule. Time is passed in.
#[derive(Debug, Clone)]
pub struct Status {
    state: State,
    since: DateTime<Utc>,
    reason: String,
    /// Probes that failed in this episode (carried over from the last one when it flaps).
    failed_probes: u32,
    /// When it last came up, to tell a flap from a new episode.
    up_at: Option<Instant>,
}

impl Status {
    /// Up, as every endpoint is assumed until a call says otherwise.
    pub fn new(now: DateTime<Utc>) -> Self {
        Status {
            state: State::Up,
            since: now,
            reason: "no trouble seen".into(),
            failed_probes: 0,
            up_at: None,
        }
    }

    pub fn state(&self) -> State {
        self.state
    }

    /// A call met endpoint trouble. Up → down returns `true` (a change to announce); while
    /// down, only the reason is brought up to date.
    pub fn trouble(&mut self, reason: &str, now: DateTime<Utc>, at: Instant) -> bool {
        self.reason = reason.to_string();
        if self.state == State::Down {
            return false;
        }
        let flapping = self.up_at.is_some_and(|t| at.duration_since(t) < STABLE);
        if !flapping {
            self.failed_probes = 0;
        }
        self.state = State::Down;
        self.since = now;
        true
    }

    /// A probe failed: still down, the next probe waits longer.
    pub fn probe_failed(&mut self, reason: &str) {
        self.reason = reason.to_string();
        self.failed_probes = self.failed_probes.saturating_add(1);
    }

    /// A probe was answered. Down → up returns `true`.
    pub fn probe_succeeded(&mut self, how: &str, now: DateTime<Utc>, at: Instant) -> bool {
        if self.state == State::Up {
            return false;
        }
        self.state = State::Up;
        self.since = now;
        self.reason = how.to_string();
        self.up_at = Some(at);
        true
    }

    /// How long to wait before the next probe.
    pub fn probe_delay(&self) -> Duration {
        PROBE.delay(self.failed_probes + 1)
    }

    fn snapshot(&self, endpoint: &str) -> Snapshot {
        Snapshot {
            endpoint: endpoint.to_string(),
            state: self.state,
            since: self.since,
            reason: self.reason.clone(),
        }
    }
}

/// One endpoint's health, shared by its client, its prober, the engine and `/readyz`.
pub struct EndpointHealth {
    name: String,
    status: Mutex<Status>,
    /// `true` while down: the prober waits on it.
    down: watch::Sender<bool>,
    /// Where transitions go; `None` for a client used on its own.
    transitions: Option<mpsc::UnboundedSender<Transition>>,
}

impl EndpointHealth {
    /// Health whose transitions are sent to `transitions`. The channel is unbounded but its
    /// traffic is not: a change back to `up` needs a probe, and probes are at least 1 s apart.
    pub fn new(name: impl Into<String>, transitions: mpsc::UnboundedSender<Transition>) -> Self {
        Self::build(name.into(), Some(transitions))
    }

    /// Health whose transitions are only logged (a client used on its own, in tests).
    pub fn detached(name: impl Into<String>) -> Self {
        Self::build(name.into(), None)
    }

    fn build(name: String, transitions: Option<mpsc::UnboundedSender<Transition>>) -> Self {
        EndpointHealth {
            name,
            status: Mutex::new(Status::new(Utc::now())),
            down: watch::Sender::new(false),
            transitions,
        }
    }

    /// The endpoint's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Status> {
        self.status.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn is_down(&self) -> bool {
        self.lock().state == State::Down
    }

    /// Why the endpoint is down, while it is.
    pub fn down_reason(&self) -> Option<String> {
        let s = self.lock();
        (s.state == State::Down).then(|| s.reason.clone())
    }

    pub fn snapshot(&self) -> Snapshot {
        self.lock().snapshot(&self.name)
    }

    /// How long the prober waits before its next probe.
    pub fn probe_delay(&self) -> Duration {
        self.lock().probe_delay()
    }

    /// A call met endpoint trouble: marks the endpoint down (logged and announced once).
    pub fn trouble(&self, reason: &str) {
        let changed = self.lock().trouble(reason, Utc::now(), Instant::now());
        if changed {
            tracing::warn!(endpoint = %self.name, %reason,
                "endpoint down: requests for it wait (no attempt is spent) while it is probed");
            self.announce(State::Down);
        }
    }

    /// A probe failed: the endpoint stays down.
    pub fn probe_failed(&self, reason: &str) {
        self.lock().probe_failed(reason);
        tracing::debug!(endpoint = %self.name, %reason, "endpoint still down");
    }

    /// A probe was answered: marks the endpoint up (logged and announced once).
    pub fn probe_succeeded(&self, how: &str) {
        let (changed, since) = {
            let mut s = self.lock();
            let since = s.since;
            (s.probe_succeeded(how, Utc::now(), Instant::now()), since)
        };
        if changed {
            let down_for = (Utc::now() - since).to_std().unwrap_or_default();
            tracing::warn!(endpoint = %self.name, reason = %how,
                down_for = %humantime::format_duration(Duration::from_secs(down_for.as_secs())),
                "endpoint up again: waiting requests resume");
            self.announce(State::Up);
        }
    }

    /// Waits until the endpoint is down.
    ///
    /// Cancel safety: safe.
    pub async fn wait_down(&self) {
        let mut rx = self.down.subscribe();
        let _ = rx.wait_for(|down| *down).await;
    }

    fn announce(&self, state: State) {
        self.down.send_replace(state == State::Down);
        if let Some(tx) = &self.transitions {
            let _ = tx.send(self.snapshot());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn trouble_marks_down_once_and_a_probe_brings_it_up_once() {
        let t0 = Instant::now();
        let now = Utc::now();
        let mut s = Status::new(now);
        assert_eq!(s.state(), State::Up);
        assert!(s.trouble("connection refused", now, t0), "up → down");
        assert!(!s.trouble("logon refused", now, t0), "already down");
        assert_eq!(
            s.snapshot("em").reason,
            "logon refused",
            "the latest reason"
        );
        s.probe_failed("still refused");
        assert_eq!(s.state(), State::Down);
        assert!(
            s.probe_succeeded("logged on", now, t0 + secs(3)),
            "down → up"
        );
        assert!(!s.probe_succeeded("logged on", now, t0 + secs(4)));
        let snap = s.snapshot("em");
        assert_eq!((snap.state, snap.reason.as_str()), (State::Up, "logged on"));
    }

    #[test]
    fn probes_back_off_from_one_second_to_a_minute() {
        let mut s = Status::new(Utc::now());
        s.trouble("timed out", Utc::now(), Instant::now());
        let mut delays = Vec::new();
        for _ in 0..9 {
            delays.push(s.probe_delay().as_secs());
            s.probe_failed("timed out");
        }
        assert_eq!(delays, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
    }

    #[test]
    fn a_flapping_endpoint_keeps_its_backoff_and_a_stable_one_starts_over() {
        let t0 = Instant::now();
        let now = Utc::now();
        let mut s = Status::new(now);
        s.trouble("timed out", now, t0);
        for _ in 0..4 {
            s.probe_failed("timed out");
        }
        assert_eq!(s.probe_delay(), secs(16));
        s.probe_succeeded("answered", now, t0 + secs(30));
        s.trouble("timed out", now, t0 + secs(40));
        assert_eq!(s.probe_delay(), secs(16), "down again 10 s after: a flap");
        s.probe_succeeded("answered", now, t0 + secs(60));
        s.trouble("timed out", now, t0 + secs(60) + STABLE);
        assert_eq!(s.probe_delay(), secs(1), "up for a while: a new episode");
    }

    #[tokio::test]
    async fn transitions_are_sent_once_each_and_wake_the_prober() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let h = std::sync::Arc::new(EndpointHealth::new("em", tx));
        let waiter = tokio::spawn({
            let h = std::sync::Arc::clone(&h);
            async move { h.wait_down().await }
        });
        h.trouble("connection refused");
        h.trouble("connection refused");
        waiter.await.unwrap();
        assert_eq!(h.down_reason().as_deref(), Some("connection refused"));
        h.probe_failed("still refused");
        h.probe_succeeded("logged on");
        let down = rx.recv().await.unwrap();
        assert_eq!((down.endpoint.as_str(), down.state), ("em", State::Down));
        assert_eq!(down.reason, "connection refused");
        let up = rx.recv().await.unwrap();
        assert_eq!((up.state, up.reason.as_str()), (State::Up, "logged on"));
        assert!(up.since >= down.since);
        assert!(rx.try_recv().is_err(), "one transition each");
        assert!(!h.is_down());
    }
}

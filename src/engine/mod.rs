//! The engine: takes due requests from the ledger and moves each one step — dispatch the
//! DELETE, poll the task, verify the deletion — through the endpoint clients. Scheduling is
//! by the ledger's `due_at` (earliest first: new deletes and due polls share one queue fairly),
//! so a hundred thousand running tasks cost rows, not sleeping tasks. The rows of an endpoint
//! that is down are left waiting (design 1.7). Knows nothing of the broker or the metrics:
//! the worker (`crate::worker`) composes it with them.

mod active;
mod brakes;
mod dcs;
mod em;
mod events;
mod fence;
mod next;
mod polls;
mod rails;
mod remote;
mod step;

pub use active::Active;
pub use next::{Ending, Next};
pub use rails::{Screen, screen_target};
pub use remote::{UNNAMED_ENDPOINT, dcs_client_of, em_client_of};

use crate::config::{Config, GuardRails};
use crate::dcs::DcsClient;
use crate::em::EmClient;
use crate::guard::Protections;
use crate::health::EndpointHealth;
use crate::ledger::{Ledger, RequestRow, Skip, now_ms};
use fence::StepEnd;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// Milliseconds of a duration, as the ledger counts time.
fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// How long a claimed row is held before a scheduler pass may hand it out again. Each step
/// writes the row's real next due time when it ends, so the lease only matters for a step
/// that never ends (its process died: leases are released at the next start). It must be
/// longer than any one step can take: a wait for the endpoint's budget (a `Retry-After`
/// pause is capped at 5 minutes) plus two HTTP timeouts.
const LEASE: Duration = Duration::from_secs(2 * 60 * 60);

/// When a step failed (e.g. the ledger was busy), how soon its request is tried again.
const STEP_RETRY: Duration = Duration::from_secs(30);

/// How long, at most, a claim waits for more permits while many steps are running.
const CLAIM_GATHER: Duration = Duration::from_millis(5);

/// The longest idle sleep between ledger looks.
const MAX_IDLE: Duration = Duration::from_secs(1);

/// How fast the follow-ups of an endpoint without a rate budget are resumed after a restart.
const RESUME_RATE_UNLIMITED: f64 = 100.0;

/// At start-up: picks up where the last process stopped. The leases of the steps it had in
/// flight are released; every other request keeps its due time (design 2.6). The EM tasks
/// it followed belong to its logon sessions, which this process cannot use: each needs a
/// verification, and those are spread over time at half the endpoint's rate budget, so that
/// they cannot burst against the endpoint and new requests are served beside them.
pub async fn resume(ledger: &Ledger, cfg: &Config) -> anyhow::Result<()> {
    let released = ledger.resume().await?;
    let now = now_ms();
    let mut spread = 0;
    for em in cfg.em.iter() {
        let rate = match em.budget.rate_per_sec {
            r if r > 0.0 => r / 2.0,
            _ => RESUME_RATE_UNLIMITED,
        };
        let spacing_ms = ((1000.0 / rate).ceil() as i64).max(1);
        spread += ledger.spread_follow_ups(&em.name, now, spacing_ms).await?;
    }
    if released + spread > 0 {
        tracing::info!(
            released,
            spread,
            "resuming from the ledger: leases of interrupted steps released, follow-ups spread"
        );
    }
    Ok(())
}

/// How soon a request that met endpoint trouble is due again. The scheduler holds it while
/// its endpoint is down, so this only spaces out a request whose endpoint is already back.
const WAIT_RECHECK: Duration = Duration::from_secs(1);

/// The engine of one worker.
pub struct Engine {
    pub(crate) ledger: Ledger,
    pub(crate) cfg: Arc<Config>,
    pub(crate) em: HashMap<String, Arc<EmClient>>,
    pub(crate) dcs: HashMap<String, Arc<DcsClient>>,
    /// The protected objects of each endpoint, asked before every DELETE.
    pub(crate) protections: Protections,
    /// Each endpoint's guard rails (the top-level ones with its table's over them), resolved
    /// once when the engine is built.
    guards: HashMap<String, GuardRails>,
    /// The endpoints this worker may call now (the others' rows wait, polls included).
    pub active: Arc<Active>,
    /// The endpoints at their delete cap.
    caps: brakes::CapState,
    /// Room to dispatch DELETEs, per endpoint.
    gates: brakes::Gates,
    /// When to poll running tasks: learned per kind of task, else the backoff policy.
    polls: polls::PollPlanner,
    /// Woken when intake accepts a request.
    pub wake: Arc<Notify>,
    /// Woken when an event is written to the outbox.
    pub(crate) outbox_wake: Arc<Notify>,
}

impl Engine {
    pub fn new(
        ledger: Ledger,
        cfg: Arc<Config>,
        em: HashMap<String, Arc<EmClient>>,
        dcs: HashMap<String, Arc<DcsClient>>,
        protections: Protections,
        outbox_wake: Arc<Notify>,
    ) -> Self {
        let gates = brakes::Gates::new(&cfg);
        let names = em.keys().chain(dcs.keys());
        let guards = names.map(|n| (n.clone(), cfg.guard_for(n))).collect();
        Engine {
            gates,
            polls: polls::PollPlanner::new(ledger.clone(), &cfg),
            ledger,
            cfg,
            em,
            dcs,
            protections,
            guards,
            active: Arc::new(Active::everything()),
            caps: Default::default(),
            wake: Arc::new(Notify::new()),
            outbox_wake,
        }
    }

    /// The health of every endpoint the engine calls.
    fn endpoints(&self) -> impl Iterator<Item = &Arc<EndpointHealth>> {
        let em = self.em.values().map(|c| c.health());
        em.chain(self.dcs.values().map(|c| c.health()))
    }

    /// Makes the engine call only the endpoints `active` allows (a worker's election).
    pub fn with_active(mut self, active: Arc<Active>) -> Self {
        self.active = active;
        self
    }

    /// The names of the endpoints whose rows are not handed out at all: those that are down
    /// now, and those this worker may not call (it is their standby).
    fn down_endpoints(&self) -> Vec<String> {
        let mut down = self
            .active
            .standby_among(self.em.keys().chain(self.dcs.keys()));
        let sick = self.endpoints().filter(|h| h.is_down());
        down.extend(sick.map(|h| h.name().to_string()));
        down
    }

    /// The endpoints whose unsent work waits (their polls go on): those whose protection
    /// cannot be used now (a changed protect file of theirs is unusable), and those at their
    /// delete cap. Claiming such work only to hand it back would churn through the backlog.
    fn held_endpoints(&self) -> Vec<String> {
        let mut held = self.protections.unavailable();
        held.extend(self.caps.held(now_ms()));
        held
    }

    /// The guard rails of `endpoint` (the top-level ones for an endpoint not configured).
    pub(crate) fn guard(&self, endpoint: &str) -> &GuardRails {
        self.guards.get(endpoint).unwrap_or(&self.cfg.guard)
    }

    /// Whether the endpoint named `name` is down now, or this worker may not call it.
    pub(crate) fn is_down(&self, name: &str) -> bool {
        !self.active.allows(name) || self.endpoints().any(|h| h.name() == name && h.is_down())
    }

    /// Runs until cancelled, then lets in-flight steps finish within the grace period
    /// (what does not finish is parked: its lease is released at the next start).
    ///
    /// Cancel safety: steps are never cut mid-way by cancel itself, only by the grace timeout.
    pub async fn run(self: Arc<Self>, cancel: CancellationToken) -> anyhow::Result<()> {
        let concurrency = self.cfg.engine_concurrency;
        let permits = Arc::new(Semaphore::new(concurrency));
        let mut steps = JoinSet::new();
        // Under load, a claim waits for a quarter of the permits (or `CLAIM_GATHER`): one
        // claim hands out many rows, instead of one claim per step that ends.
        let batch = (concurrency / 4).max(1);
        let mut last_claim = std::time::Instant::now();
        while !cancel.is_cancelled() {
            while let Some(done) = steps.try_join_next() {
                log_step(done);
            }
            let free = permits.available_permits();
            let skip = Skip {
                held: self.held_endpoints(),
                ..Skip::down(self.down_endpoints())
            };
            let gathering = (free > 0 && free < batch && concurrency - free >= batch)
                .then(|| CLAIM_GATHER.checked_sub(last_claim.elapsed()))
                .flatten();
            if free > 0 && gathering.is_none() {
                let now = now_ms();
                let lease = now + LEASE.as_millis() as i64;
                let rows = self
                    .ledger
                    .claim_due(now, free as u32, lease, &skip)
                    .await?;
                last_claim = std::time::Instant::now();
                let claimed = rows.len();
                for row in rows {
                    let permit = Arc::clone(&permits).acquire_owned().await?;
                    steps.spawn(Arc::clone(&self).guarded_step(row, permit));
                }
                if claimed == free {
                    continue; // there may be more due work: look again once a permit is free
                }
            }
            let sleep = match gathering {
                Some(left) => left,
                None => match self.ledger.next_due(now_ms(), &skip).await? {
                    Some(t) => Duration::from_millis(
                        (t - now_ms()).clamp(0, MAX_IDLE.as_millis() as i64) as u64,
                    ),
                    None => MAX_IDLE,
                },
            };
            let room = permits.available_permits() > 0;
            tokio::select! {
                _ = cancel.cancelled() => {}
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(sleep), if room => {}
                Some(done) = steps.join_next(), if !steps.is_empty() => log_step(done),
            }
        }
        drain(steps, self.cfg.shutdown_grace).await;
        Ok(())
    }

    /// One step of `row`, holding `permit` until it ends. A failed step is tried again soon;
    /// a panicked one is handled by [`Engine::after_panic`].
    async fn guarded_step(
        self: Arc<Self>,
        row: RequestRow,
        permit: OwnedSemaphorePermit,
    ) -> anyhow::Result<()> {
        let (id, claimed_attempts) = (row.request_id.clone(), row.attempts);
        let end = fence::guarded(self.step(row)).await;
        drop(permit);
        match end {
            StepEnd::Done => Ok(()),
            StepEnd::Failed(e) => {
                // Most likely the ledger itself failed: try again soon rather than after the
                // whole lease.
                let retry_at = now_ms() + ms(STEP_RETRY);
                let _ = self.ledger.release(&id, retry_at).await;
                Err(e.context(format!("request {id}")))
            }
            StepEnd::Panicked(message) => {
                self.after_panic(&id, claimed_attempts, &message).await;
                Ok(())
            }
        }
    }
}

/// Waits up to `grace` for the steps in flight; the rest are parked (their requests are
/// resumed from the ledger at the next start).
async fn drain(mut steps: JoinSet<anyhow::Result<()>>, grace: Duration) {
    let drained = tokio::time::timeout(grace, async {
        while let Some(done) = steps.join_next().await {
            log_step(done);
        }
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            parked = steps.len(),
            "grace period over: parking unfinished steps"
        );
        steps.shutdown().await;
    }
}

impl Engine {
    /// A step panicked: a bug, not a verdict on the request. The request stays unfinished in
    /// the ledger and is due again soon; an attempt the step had counted is given back (it was
    /// aborted, not spent). Logged at error level with the request id, once per panic.
    async fn after_panic(&self, request_id: &str, claimed_attempts: i64, message: &str) {
        let now = now_ms();
        let given_back = self
            .ledger
            .give_back_attempt(request_id, claimed_attempts, now)
            .await;
        let retry_at = now + STEP_RETRY.as_millis() as i64;
        let released = self.ledger.release(request_id, retry_at).await;
        tracing::error!(
            request_id,
            panic = message,
            attempt_given_back = given_back.as_ref().is_ok_and(|g| *g),
            retry_in = ?STEP_RETRY,
            "a step panicked: the request stays unfinished and is tried again"
        );
        if let Err(e) = given_back.and(released) {
            tracing::error!(
                request_id,
                error = format!("{e:#}"),
                "the ledger could not be updated after the panic; the request waits for its lease"
            );
        }
    }
}

fn log_step(done: Result<anyhow::Result<()>, tokio::task::JoinError>) {
    match done {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::error!(
            error = format!("{e:#}"),
            "step failed; retried after its lease"
        ),
        Err(e) if e.is_cancelled() => {}
        Err(e) => tracing::error!(error = %e, "step panicked"),
    }
}

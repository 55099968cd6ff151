//! The worker's endpoints: one client per configured EM and DCS endpoint, each with its own
//! budget and health, built once and kept for the life of the process (an EM logon session
//! outlives any broker reconnect); a prober per endpoint; and the reporter that turns each
//! change of an endpoint's health into an `endpoint.*` event in the outbox.

use crate::config::Config;
use crate::dcs::DcsClient;
use crate::em::EmClient;
use crate::engine::Active;
use crate::engine::UNNAMED_ENDPOINT;
use crate::event::{EndpointData, EndpointEvent};
use crate::health::{self, EndpointHealth, Transition};
use crate::ledger::{Ledger, NewEvent, now_ms};
use crate::limit::Limiter;
use crate::request::{DeleteRequest, System};
use crate::retry::Backoff;
use anyhow::Context;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// The endpoint clients of one worker, keyed by endpoint name, and their budgets.
pub struct Endpoints {
    pub em: HashMap<String, Arc<EmClient>>,
    pub dcs: HashMap<String, Arc<DcsClient>>,
    /// Every endpoint's limiter (each client holds its own too).
    pub limiters: Vec<Arc<Limiter>>,
}

impl Endpoints {
    /// Builds the clients of the configuration, each reporting its changes of health to
    /// `transitions`. DCS has a budget of its own, separate from EM's.
    pub fn build(
        cfg: &Config,
        transitions: mpsc::UnboundedSender<Transition>,
    ) -> anyhow::Result<Self> {
        let health = |name: &str| Arc::new(EndpointHealth::new(name, transitions.clone()));
        let (mut em, mut limiters) = (HashMap::new(), Vec::new());
        for s in &cfg.em {
            let limiter = Arc::new(Limiter::named(&s.name, s.budget));
            limiters.push(Arc::clone(&limiter));
            let client = EmClient::new(s, limiter, health(&s.name))
                .with_context(|| format!("EM endpoint `{}`", s.name))?;
            em.insert(s.name.clone(), Arc::new(client));
        }
        let mut dcs = HashMap::new();
        for s in &cfg.dcs {
            let limiter = Arc::new(Limiter::named(&s.name, s.budget));
            limiters.push(Arc::clone(&limiter));
            let client = DcsClient::new(s, limiter, health(&s.name))
                .with_context(|| format!("DCS endpoint `{}`", s.name))?;
            dcs.insert(s.name.clone(), Arc::new(client));
        }
        Ok(Endpoints { em, dcs, limiters })
    }

    /// Every endpoint's health.
    pub fn health(&self) -> Vec<Arc<EndpointHealth>> {
        let em = self.em.values().map(|c| Arc::clone(c.health()));
        em.chain(self.dcs.values().map(|c| Arc::clone(c.health())))
            .collect()
    }

    /// The names of every endpoint, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.em.keys().chain(self.dcs.keys()).cloned().collect();
        names.sort();
        names
    }

    /// Starts one prober per endpoint, until `cancel`. A probe is a call: it waits until
    /// `active` lets this worker call the endpoint.
    pub fn spawn_probers(&self, cancel: &CancellationToken, active: &Arc<Active>) -> JoinSet<()> {
        let mut probers = JoinSet::new();
        for (name, c) in &self.em {
            let (client, active, name) = (Arc::clone(c), Arc::clone(active), name.clone());
            let probe = move || {
                let (client, active, name) =
                    (Arc::clone(&client), Arc::clone(&active), name.clone());
                async move {
                    active.until_allowed(&name).await;
                    client.probe().await
                }
            };
            let secrets = vec![c.password().clone()];
            let run = health::probe::run(Arc::clone(c.health()), secrets, probe, cancel.clone());
            probers.spawn(run);
        }
        for (name, c) in &self.dcs {
            let (client, active, name) = (Arc::clone(c), Arc::clone(active), name.clone());
            let probe = move || {
                let (client, active, name) =
                    (Arc::clone(&client), Arc::clone(&active), name.clone());
                async move {
                    active.until_allowed(&name).await;
                    client.probe().await
                }
            };
            let run =
                health::probe::run(Arc::clone(c.health()), c.secrets(), probe, cancel.clone());
            probers.spawn(run);
        }
        probers
    }

    /// Logs the EM sessions off (once, at shutdown), those of the endpoints `active` still
    /// lets this worker call: a standby calls nothing.
    pub async fn log_off(&self, active: &Active) {
        for (name, client) in self.em.iter().filter(|(n, _)| active.allows(n)) {
            if let Err(e) = client.log_off().await {
                tracing::warn!(endpoint = %name, error = %e, "EM log-off failed");
            }
        }
    }
}

/// Where a request of `system` that names no `endpoint` goes: the one endpoint of `system`
/// (`em` / `dcs` when none is configured: the request is refused as such). `None` when
/// several are configured: the request must name one, it is never picked for it.
pub fn default_endpoint(cfg: &Config, system: System) -> Option<String> {
    let names: Vec<&String> = match system {
        System::Em => cfg.em.iter().map(|e| &e.name).collect(),
        System::Dcs => cfg.dcs.iter().map(|d| &d.name).collect(),
    };
    match names[..] {
        [] => Some(match system {
            System::Em => "em".into(),
            System::Dcs => "dcs".into(),
        }),
        [one] => Some(one.clone()),
        _ => None,
    }
}

/// The endpoint recorded for a request of `system` that names none: the
/// [`default_endpoint`], or [`UNNAMED_ENDPOINT`] when several are configured, which the
/// engine refuses (`unsupported`) with the configured names.
pub fn recorded_endpoint(cfg: &Config, system: System) -> String {
    default_endpoint(cfg, system).unwrap_or_else(|| UNNAMED_ENDPOINT.into())
}

/// The endpoint `req` goes to: its own `endpoint`, else [`recorded_endpoint`].
pub fn endpoint_of(cfg: &Config, req: &DeleteRequest) -> String {
    req.endpoint
        .clone()
        .unwrap_or_else(|| recorded_endpoint(cfg, req.target.system()))
}

/// Writes each change of an endpoint's health to the outbox as an `endpoint.*` event and wakes
/// the publisher (and the engine, when an endpoint came back), until `stop`; then writes what
/// is still queued. A failed write is tried again with back-off: no change is lost.
pub async fn report(
    mut transitions: mpsc::UnboundedReceiver<Transition>,
    ledger: Ledger,
    worker: String,
    outbox_wake: Arc<Notify>,
    engine_wake: Arc<Notify>,
    stop: CancellationToken,
) {
    loop {
        let t = tokio::select! {
            _ = stop.cancelled() => break,
            t = transitions.recv() => match t {
                Some(t) => t,
                None => return,
            },
        };
        write(&ledger, &worker, &t, &stop).await;
        outbox_wake.notify_one();
        if t.state == health::State::Up {
            engine_wake.notify_one();
        }
    }
    while let Ok(t) = transitions.try_recv() {
        write(&ledger, &worker, &t, &stop).await;
    }
    outbox_wake.notify_one();
}

/// The outbox row of a transition.
pub fn endpoint_event(worker: &str, t: &Transition) -> NewEvent {
    let ev = EndpointEvent::endpoint(
        worker,
        EndpointData::new(&t.endpoint, t.state.as_str(), &t.reason, t.since),
    );
    NewEvent::of_endpoint(&ev)
}

async fn write(ledger: &Ledger, worker: &str, t: &Transition, stop: &CancellationToken) {
    let event = endpoint_event(worker, t);
    let mut failures = 0;
    while let Err(e) = ledger.add_event(&event, now_ms()).await {
        failures += 1;
        tracing::error!(error = format!("{e:#}"), endpoint = %t.endpoint,
            "cannot write the endpoint event to the outbox; trying again");
        if failures >= 5 && stop.is_cancelled() {
            return; // stopping: the change was logged, the event is given up
        }
        tokio::time::sleep(Backoff::RECONNECT.delay(failures)).await;
    }
}

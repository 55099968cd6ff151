//! reaper — a bulk-deletion worker.
//!
//! Delete requests arrive on RabbitMQ; each becomes the right DELETE call against Veeam
//! Backup Enterprise Manager or Huawei Cloud DCS, rate-limited per endpoint, recorded in
//! a SQLite ledger, followed to its end, and answered with exactly one outcome event.
//!
//! Map of the modules (dependencies point downwards):
//! - [`cli`]: the subcommands (`run`, `simulate`, `demo`, `bench`, `enqueue`, `status`, `report`,
//!   `prune`, `pause`, `resume`, `cancel`, `replay`).
//! - [`worker`]: the composition root: builds and supervises the parts of `reaper run`.
//! - [`engine`]: the dispatcher, poller and verifier driven by the ledger: `step` (dispatch,
//!   finish), `next` (what a step decides), `remote` (which client a request goes to),
//!   `em` (EM answer mappings and follow-up steps), `dcs` (DCS answer mapping), `events`
//!   (a request's events, read from its ledger row).
//! - [`broker`]: RabbitMQ topology, intake (consumer) and the outbox publisher.
//! - [`ledger`]: the SQLite ledger and outbox.
//! - [`em`]: the Enterprise Manager client and wire codecs.
//! - [`dcs`]: the Huawei Cloud DCS client (IAM tokens, error classes, wire shapes).
//! - [`health`]: whether each endpoint is up or down, and its prober.
//! - [`guard`]: protected objects (the protect file, job-name globs) asked before any DELETE.
//! - [`limit`], [`retry`], [`http`]: call budgets, backoff policy, HTTP plumbing.
//! - [`metrics`]: `/metrics`, `/healthz`, `/readyz` for operators.
//! - [`request`], [`event`]: the message contracts; `event` owns every event's envelope and
//!   id rule (outcome, submitted, invalid, endpoint).
//! - [`config`]: the typed configuration.
//! - [`sim`]: the EM + DCS simulator used by `simulate`, `demo` and the tests.
#![deny(unsafe_code)]

pub mod broker;
pub mod cli;
pub mod config;
pub mod dcs;
pub mod em;
pub mod engine;
pub mod event;
pub mod guard;
pub mod health;
pub mod http;
pub mod ledger;
pub mod limit;
pub mod metrics;
pub mod request;
pub mod retry;
pub mod sim;
pub mod worker;

//! The integration tests, built as one binary: each module was once a file of its own under
//! `tests/`, and all of them share the harness in `common` (real RabbitMQ, the in-process
//! simulator over real HTTP, a ledger file per test).

mod common;

mod adaptive_budget;
mod bench;
mod binary;
mod brakes;
mod broker_reconnect;
mod compose;
mod controls;
mod dcs_pipeline;
mod em_client;
mod em_pipeline;
mod em_tls;
mod endpoint_health;
mod endpoints;
mod guard_rails;
mod kubernetes;
mod limits;
mod outbox;
mod pipeline;
mod plan;
mod polls;
mod replicas;
mod sharding;
mod sim_dcs;
mod sim_em;
mod sim_em_reads;

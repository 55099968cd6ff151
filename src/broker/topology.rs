//! The topology the worker declares at start-up, idempotently (design 1.1, 1.8): the
//! dead-letter exchange and queue, the request queue — or, when requests are routed by
//! endpoint, the direct exchange and one queue per endpoint served — and the events exchange.
//! Request queues carry `x-single-active-consumer`, so RabbitMQ delivers a queue's requests to
//! one consumer only. A queue or exchange that exists with other arguments cannot be changed
//! in place: that stops start-up with [`TopologyMismatch`], which says how to migrate.

use super::{long, soft_error};
use crate::config::Topology;
use anyhow::Context;
use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::protocol::AMQPSoftError;
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, ExchangeKind};

/// A request queue a worker consumes, and whose requests it carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestQueue {
    /// The queue's name.
    pub name: String,
    /// Routed by endpoint: the one endpoint whose requests it holds. `None`: the one request
    /// queue, holding the requests of every endpoint.
    pub endpoint: Option<String>,
}

impl RequestQueue {
    /// The exclusive queue whose holder is the queue's active worker.
    pub fn lease(&self) -> String {
        format!("{}.lease", self.name)
    }

    /// The endpoints whose calls belong to whoever holds this queue (`all`: those served).
    pub fn endpoints(&self, all: &[String]) -> Vec<String> {
        match &self.endpoint {
            Some(e) => vec![e.clone()],
            None => all.to_vec(),
        }
    }
}

/// The request queues of a worker serving `endpoints`: the one request queue, or, routed by
/// endpoint, `<request queue>.<endpoint>` for each.
pub fn request_queues(t: &Topology, endpoints: &[String]) -> Vec<RequestQueue> {
    if !t.route_by_endpoint {
        return vec![RequestQueue {
            name: t.request_queue.clone(),
            endpoint: None,
        }];
    }
    endpoints
        .iter()
        .map(|e| RequestQueue {
            name: format!("{}.{e}", t.request_queue),
            endpoint: Some(e.clone()),
        })
        .collect()
}

/// The broker has a queue or exchange under one of reaper's names with other arguments or of
/// another kind. Nothing can fix that but an operator: it stops start-up.
#[derive(Debug)]
pub struct TopologyMismatch(pub String);

impl std::fmt::Display for TopologyMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TopologyMismatch {}

/// Declares the topology for `queues`, idempotently.
pub async fn declare(ch: &Channel, t: &Topology, queues: &[RequestQueue]) -> anyhow::Result<()> {
    exchange(ch, &t.dead_letter_exchange, ExchangeKind::Fanout, None).await?;
    queue(ch, &t.dead_letter_queue, queue_args(t, None)).await?;
    bind(ch, &t.dead_letter_queue, &t.dead_letter_exchange, "").await?;
    if t.route_by_endpoint {
        // A request for an endpoint no worker serves goes to the dead-letter queue, whole,
        // instead of being dropped by the broker.
        let ae = Some(t.dead_letter_exchange.as_str());
        exchange(ch, &t.request_queue, ExchangeKind::Direct, ae).await?;
    }
    for q in queues {
        queue(ch, &q.name, queue_args(t, Some(&t.dead_letter_exchange))).await?;
        if let Some(endpoint) = &q.endpoint {
            bind(ch, &q.name, &t.request_queue, endpoint).await?;
        }
    }
    exchange(ch, &t.events_exchange, ExchangeKind::Topic, None).await
}

/// The arguments of one of the topology's queues: its type; for a request queue (one that
/// dead-letters) where it dead-letters and its single active consumer; its expiry (temporary
/// topologies only).
fn queue_args(t: &Topology, dead_letter_exchange: Option<&str>) -> FieldTable {
    let mut args = FieldTable::default();
    let queue_type = if t.quorum { "quorum" } else { "classic" };
    args.insert("x-queue-type".into(), long(queue_type));
    if let Some(dlx) = dead_letter_exchange {
        args.insert("x-dead-letter-exchange".into(), long(dlx));
        args.insert("x-single-active-consumer".into(), AMQPValue::Boolean(true));
    }
    if let Some(d) = t.expires {
        args.insert(
            "x-expires".into(),
            AMQPValue::LongLongInt(d.as_millis() as i64),
        );
    }
    args
}

/// Declares a durable exchange (with an alternate exchange for what it cannot route).
async fn exchange(
    ch: &Channel,
    name: &str,
    kind: ExchangeKind,
    alternate: Option<&str>,
) -> anyhow::Result<()> {
    let durable = ExchangeDeclareOptions {
        durable: true,
        ..Default::default()
    };
    let mut args = FieldTable::default();
    if let Some(ae) = alternate {
        args.insert("alternate-exchange".into(), long(ae));
    }
    let declared = ch.exchange_declare(name.into(), kind, durable, args).await;
    declared.map_err(|e| mismatch(e, "exchange", name))
}

/// Declares a durable queue.
async fn queue(ch: &Channel, name: &str, args: FieldTable) -> anyhow::Result<()> {
    let durable = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    let declared = ch.queue_declare(name.into(), durable, args).await;
    declared.map(|_| ()).map_err(|e| mismatch(e, "queue", name))
}

async fn bind(ch: &Channel, queue: &str, exchange: &str, key: &str) -> anyhow::Result<()> {
    ch.queue_bind(
        queue.into(),
        exchange.into(),
        key.into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .with_context(|| format!("binding queue {queue} to exchange {exchange}"))
}

/// A failed declaration: [`TopologyMismatch`] with the way out when the broker has `name`
/// with other arguments (`PRECONDITION_FAILED`), else the error with its context.
fn mismatch(e: lapin::Error, what: &str, name: &str) -> anyhow::Error {
    match soft_error(&e) {
        Some((AMQPSoftError::PRECONDITIONFAILED, broker)) => {
            anyhow::Error::new(TopologyMismatch(format!(
                "the {what} `{name}` exists on the broker with other arguments than reaper \
                 declares ({broker}). Arguments cannot change in place. To migrate: stop the \
                 producers, let the old worker drain it (or move its messages with a shovel), \
                 delete it (`rabbitmqctl delete_queue {name}` / `rabbitmqadmin delete \
                 {what} name={name}`) and start reaper, which declares it anew \
                 (request queues: REAPER_QUEUE_TYPE, dead-lettering to the DLX, \
                 x-single-active-consumer=true); or give reaper new names \
                 (REAPER_REQUEST_QUEUE, …) and point the producers at them."
            )))
        }
        _ => anyhow::Error::new(e).context(format!("declaring {what} {name}")),
    }
}

/// Deletes a topology's queues and exchanges (the demo's and tests' temporary ones).
pub async fn cleanup_topology(ch: &lapin::Channel, t: &Topology) {
    use lapin::options::{ExchangeDeleteOptions, QueueDeleteOptions};
    for q in [&t.request_queue, &t.dead_letter_queue] {
        let _ = ch
            .queue_delete(q.as_str().into(), QueueDeleteOptions::default())
            .await;
    }
    for x in [&t.events_exchange, &t.dead_letter_exchange] {
        let _ = ch
            .exchange_delete(x.as_str().into(), ExchangeDeleteOptions::default())
            .await;
    }
}

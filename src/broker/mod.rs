//! RabbitMQ: connection, topology (design 1.1), intake of requests and the outbox drain.
//! Knows the ledger (intake records into it, the publisher drains it) but no HTTP.

pub mod client;
pub mod intake;
pub mod publisher;

use crate::config::Topology;
use anyhow::Context;
use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{Channel, Connection, ConnectionProperties, ExchangeKind};

/// Connects to the broker. The URL is a credential: it is never logged.
pub async fn connect(url: &str, name: &str) -> anyhow::Result<Connection> {
    let props = ConnectionProperties::default()
        .with_connection_name(LongString::from(name.as_bytes().to_vec()));
    Connection::connect(url, props)
        .await
        .map_err(|e| anyhow::anyhow!("cannot connect to RabbitMQ: {e}"))
}

fn long(s: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(s.as_bytes().to_vec()))
}

/// Declares the topology, idempotently: the dead-letter exchange and queue, the request
/// queue (quorum by default, dead-lettering to the DLX) and the events topic exchange.
pub async fn declare(ch: &Channel, t: &Topology) -> anyhow::Result<()> {
    declare_exchange(ch, &t.dead_letter_exchange, ExchangeKind::Fanout).await?;
    declare_queue(ch, &t.dead_letter_queue, queue_args(t, None), "").await?;
    ch.queue_bind(
        t.dead_letter_queue.as_str().into(),
        t.dead_letter_exchange.as_str().into(),
        "".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .with_context(|| {
        format!(
            "binding {} to {}",
            t.dead_letter_queue, t.dead_letter_exchange
        )
    })?;
    let requests = queue_args(t, Some(&t.dead_letter_exchange));
    let hint = " (if it exists with other arguments, set REAPER_QUEUE_TYPE to match)";
    declare_queue(ch, &t.request_queue, requests, hint).await?;
    declare_exchange(ch, &t.events_exchange, ExchangeKind::Topic).await
}

/// The arguments of one of the topology's queues: its type, where it dead-letters (if
/// anywhere), and its expiry (temporary topologies only).
fn queue_args(t: &Topology, dead_letter_exchange: Option<&str>) -> FieldTable {
    let mut args = FieldTable::default();
    let queue_type = if t.quorum { "quorum" } else { "classic" };
    args.insert("x-queue-type".into(), long(queue_type));
    if let Some(dlx) = dead_letter_exchange {
        args.insert("x-dead-letter-exchange".into(), long(dlx));
    }
    if let Some(d) = t.expires {
        args.insert(
            "x-expires".into(),
            AMQPValue::LongLongInt(d.as_millis() as i64),
        );
    }
    args
}

/// Declares a durable exchange.
async fn declare_exchange(ch: &Channel, name: &str, kind: ExchangeKind) -> anyhow::Result<()> {
    let durable = ExchangeDeclareOptions {
        durable: true,
        ..Default::default()
    };
    ch.exchange_declare(name.into(), kind, durable, FieldTable::default())
        .await
        .with_context(|| format!("declaring exchange {name}"))
}

/// Declares a durable queue; `hint` ends the error message.
async fn declare_queue(
    ch: &Channel,
    name: &str,
    args: FieldTable,
    hint: &str,
) -> anyhow::Result<()> {
    let durable = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    ch.queue_declare(name.into(), durable, args)
        .await
        .with_context(|| format!("declaring queue {name}{hint}"))?;
    Ok(())
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

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
    let durable = ExchangeDeclareOptions {
        durable: true,
        ..Default::default()
    };
    let queue_opts = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    let queue_type = if t.quorum { "quorum" } else { "classic" };
    ch.exchange_declare(
        t.dead_letter_exchange.as_str().into(),
        ExchangeKind::Fanout,
        durable,
        FieldTable::default(),
    )
    .await
    .with_context(|| format!("declaring exchange {}", t.dead_letter_exchange))?;
    let mut dead_args = FieldTable::default();
    dead_args.insert("x-queue-type".into(), long(queue_type));
    if let Some(d) = t.expires {
        dead_args.insert(
            "x-expires".into(),
            AMQPValue::LongLongInt(d.as_millis() as i64),
        );
    }
    ch.queue_declare(t.dead_letter_queue.as_str().into(), queue_opts, dead_args)
        .await
        .with_context(|| format!("declaring queue {}", t.dead_letter_queue))?;
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
    let mut args = FieldTable::default();
    args.insert("x-queue-type".into(), long(queue_type));
    args.insert(
        "x-dead-letter-exchange".into(),
        long(&t.dead_letter_exchange),
    );
    if let Some(d) = t.expires {
        args.insert(
            "x-expires".into(),
            AMQPValue::LongLongInt(d.as_millis() as i64),
        );
    }
    ch.queue_declare(t.request_queue.as_str().into(), queue_opts, args)
        .await
        .with_context(|| {
            format!(
                "declaring queue {} (if it exists with other arguments, set REAPER_QUEUE_TYPE to match)",
                t.request_queue
            )
        })?;
    ch.exchange_declare(
        t.events_exchange.as_str().into(),
        ExchangeKind::Topic,
        durable,
        FieldTable::default(),
    )
    .await
    .with_context(|| format!("declaring exchange {}", t.events_exchange))?;
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

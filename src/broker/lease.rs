//! The lease that elects a request queue's active worker (design 1.8): an exclusive queue,
//! `<request queue>.lease`, that only one connection can hold. The broker deletes it when its
//! connection ends — a clean stop, a lost network, `kill -9` — and a standby's next try takes
//! it. Single active consumer alone would not do: RabbitMQ does not tell an AMQP 0-9-1
//! consumer that it became the active one, and a worker must know it before it polls the
//! running tasks in its own ledger.

use super::{long, soft_error};
use anyhow::Context;
use lapin::Connection;
use lapin::options::QueueDeclareOptions;
use lapin::protocol::AMQPSoftError;
use lapin::types::FieldTable;

/// Tries to take the lease named `lease` for `conn`: `true` when this connection holds it now,
/// `false` when another one does. Any other failure is an error (the connection is likely
/// gone).
pub async fn take_lease(conn: &Connection, lease: &str) -> anyhow::Result<bool> {
    let ch = conn.create_channel().await?;
    let options = QueueDeclareOptions {
        exclusive: true,
        durable: false,
        auto_delete: false,
        ..Default::default()
    };
    let mut args = FieldTable::default();
    args.insert("x-queue-type".into(), long("classic"));
    match ch.queue_declare(lease.into(), options, args).await {
        Ok(_) => {
            let _ = ch.close(200, "lease taken".into()).await;
            Ok(true)
        }
        Err(e) => match soft_error(&e) {
            // The broker closed the channel; the connection lives on.
            Some((AMQPSoftError::RESOURCELOCKED, _)) => Ok(false),
            _ => Err(e).with_context(|| format!("taking the lease {lease}")),
        },
    }
}

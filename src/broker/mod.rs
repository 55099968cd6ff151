//! RabbitMQ: connection, topology (design 1.1, 1.8), the lease that elects the active worker,
//! intake of requests and the outbox drain.
//! Knows the ledger (intake records into it, the publisher drains it) but no HTTP.

pub mod client;
pub mod intake;
mod lease;
pub mod publisher;
mod topology;

pub use lease::take_lease;
pub use topology::{RequestQueue, TopologyMismatch, cleanup_topology, declare, request_queues};

use lapin::types::{AMQPValue, LongString};
use lapin::{Connection, ConnectionProperties};

/// The largest AMQP frame reaper proposes, unless the URL sets `frame_max`. lapin keeps a
/// receive and a send buffer of 32 frames per connection, so RabbitMQ's default of 128 KiB
/// costs 8 MiB of resident memory a connection; reaper's messages are a few KiB, and a larger
/// one is only split into more frames.
pub const FRAME_MAX: u32 = 16 * 1024;

/// Connects to the broker. The URL is a credential: it is never logged.
pub async fn connect(url: &str, name: &str) -> anyhow::Result<Connection> {
    let props = ConnectionProperties::default()
        .with_connection_name(LongString::from(name.as_bytes().to_vec()));
    let connected = match url.parse::<lapin::uri::AMQPUri>() {
        Ok(mut uri) => {
            uri.query.frame_max.get_or_insert(FRAME_MAX);
            Connection::connect_uri(uri, props).await
        }
        // lapin parses it again and says what is wrong with it.
        Err(_) => Connection::connect(url, props).await,
    };
    connected.map_err(|e| anyhow::anyhow!("cannot connect to RabbitMQ: {e}"))
}

fn long(s: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(s.as_bytes().to_vec()))
}

/// The channel-level error the broker answered with, if `e` is one (the channel is closed).
fn soft_error(e: &lapin::Error) -> Option<(lapin::protocol::AMQPSoftError, String)> {
    use lapin::protocol::AMQPErrorKind;
    match e.kind() {
        lapin::ErrorKind::ProtocolError(p) => match p.kind() {
            AMQPErrorKind::Soft(soft) => Some((soft.clone(), p.get_message().to_string())),
            AMQPErrorKind::Hard(_) => None,
        },
        _ => None,
    }
}

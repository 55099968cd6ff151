//! The producer and observer side of the contracts, for `reaper enqueue`, `reaper demo` and
//! tests: publish requests with confirms, and watch the events exchange through a queue of
//! one's own.

use crate::config::Topology;
use crate::event::{CloudEvent, EndpointEvent};
use crate::request::RequestWire;
use futures_util::StreamExt;
use lapin::options::{
    BasicConsumeOptions, BasicPublishOptions, ConfirmSelectOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, Consumer};

/// Publishes delete requests, persistent and with `message_id` = `request_id`, and waits for
/// every confirm: to the request queue through the default exchange or, routed by endpoint
/// (design 1.8), through the direct exchange named like the request queue with the request's
/// endpoint as routing key.
pub struct RequestPublisher {
    ch: Channel,
    queue: String,
    routed: bool,
}

impl RequestPublisher {
    pub async fn new(conn: &Connection, topology: &Topology) -> anyhow::Result<Self> {
        let ch = conn.create_channel().await?;
        ch.confirm_select(ConfirmSelectOptions::default()).await?;
        Ok(RequestPublisher {
            ch,
            queue: topology.request_queue.clone(),
            routed: topology.route_by_endpoint,
        })
    }

    /// Publishes a raw body (for tests of malformed input) with an optional `message_id`, to
    /// the request queue (not when routed by endpoint: a raw body names no endpoint).
    pub async fn publish_raw(&self, body: &[u8], message_id: Option<&str>) -> anyhow::Result<()> {
        let confirm = self.send(body, message_id, None).await?;
        self.confirmed(confirm).await
    }

    /// Publishes a batch of requests and waits for all their confirms.
    pub async fn publish_all(&self, requests: &[RequestWire]) -> anyhow::Result<()> {
        let mut pending = Vec::with_capacity(requests.len());
        for r in requests {
            let body = serde_json::to_vec(r)?;
            let (id, endpoint) = (r.request_id.as_deref(), r.endpoint.as_deref());
            pending.push(self.send(&body, id, endpoint).await?);
        }
        for confirm in pending {
            self.confirmed(confirm).await?;
        }
        Ok(())
    }

    /// Routed by endpoint: checks that each of `endpoints` has its queue, so that nothing is
    /// published for an endpoint no worker has declared (the exchange would dead-letter it).
    pub async fn check_routes(
        &self,
        conn: &Connection,
        endpoints: impl IntoIterator<Item = &str>,
    ) -> anyhow::Result<()> {
        if !self.routed {
            return Ok(());
        }
        for endpoint in endpoints {
            let queue = format!("{}.{endpoint}", self.queue);
            let ch = conn.create_channel().await?;
            let passive = QueueDeclareOptions {
                passive: true,
                ..Default::default()
            };
            if let Err(e) = ch
                .queue_declare(queue.as_str().into(), passive, FieldTable::default())
                .await
            {
                anyhow::bail!(
                    "no queue {queue} for endpoint `{endpoint}` ({e}): start a worker serving                      it with REAPER_ROUTE_BY_ENDPOINT=true first"
                );
            }
            let _ = ch.close(200, "checked".into()).await;
        }
        Ok(())
    }

    /// Sends one persistent message, `mandatory`, to the request queue, or routed by endpoint
    /// to `endpoint`'s.
    async fn send(
        &self,
        body: &[u8],
        message_id: Option<&str>,
        endpoint: Option<&str>,
    ) -> anyhow::Result<lapin::PublisherConfirm> {
        let (exchange, key) = match (self.routed, endpoint) {
            (false, _) => ("", self.queue.as_str()),
            (true, Some(endpoint)) => (self.queue.as_str(), endpoint),
            (true, None) => anyhow::bail!(
                "requests are routed by endpoint (REAPER_ROUTE_BY_ENDPOINT): this one names none"
            ),
        };
        let mut props = BasicProperties::default()
            .with_content_type("application/json".into())
            .with_delivery_mode(2);
        if let Some(id) = message_id {
            props = props.with_message_id(id.into());
        }
        let options = BasicPublishOptions {
            mandatory: true,
            ..Default::default()
        };
        Ok(self
            .ch
            .basic_publish(exchange.into(), key.into(), options, body, props)
            .await?)
    }

    /// Waits for a confirm: a nack or a returned message is an error.
    async fn confirmed(&self, confirm: lapin::PublisherConfirm) -> anyhow::Result<()> {
        let c = confirm.await?;
        anyhow::ensure!(c.is_ack(), "the broker nacked a request");
        anyhow::ensure!(
            c.take_message().is_none(),
            "the broker returned a request: does the queue {} exist?",
            self.queue
        );
        Ok(())
    }
}

/// An event from the events exchange.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A request's outcome (`delete.*`).
    Outcome(Box<CloudEvent>),
    /// An endpoint's change of state (`endpoint.*`).
    Endpoint(Box<EndpointEvent>),
}

/// Watches the events exchange through an exclusive queue (bound to `#` unless told).
pub struct EventWatcher {
    ch: Channel,
    consumer: Consumer,
    pub queue: String,
    /// Endpoint events met by [`EventWatcher::next`] on its way to an outcome.
    endpoint_events: Vec<(String, EndpointEvent)>,
}

impl EventWatcher {
    /// Declares the exchange (idempotently), an exclusive queue, binds it, and starts consuming.
    pub async fn new(conn: &Connection, topology: &Topology) -> anyhow::Result<Self> {
        Self::bound_to(conn, topology, "#").await
    }

    /// [`EventWatcher::new`] with the queue bound by `binding` only (e.g. `delete.succeeded`),
    /// as a consumer interested in some events binds its queue.
    pub async fn bound_to(
        conn: &Connection,
        topology: &Topology,
        binding: &str,
    ) -> anyhow::Result<Self> {
        let ch = conn.create_channel().await?;
        ch.exchange_declare(
            topology.events_exchange.as_str().into(),
            lapin::ExchangeKind::Topic,
            lapin::options::ExchangeDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await?;
        let q = ch
            .queue_declare(
                "".into(),
                QueueDeclareOptions {
                    exclusive: true,
                    auto_delete: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await?;
        let queue = q.name().to_string();
        ch.queue_bind(
            queue.as_str().into(),
            topology.events_exchange.as_str().into(),
            binding.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
        // Auto-ack: the queue is this watcher's own, and `next` stays cancel safe.
        let consumer = ch
            .basic_consume(
                queue.as_str().into(),
                "".into(),
                BasicConsumeOptions {
                    no_ack: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await?;
        Ok(EventWatcher {
            ch,
            consumer,
            queue,
            endpoint_events: Vec::new(),
        })
    }

    /// Closes the watcher's channel (its queue goes with it).
    pub async fn close(&self) {
        let _ = self.ch.close(200, "watcher closed".into()).await;
    }

    /// The next event of any kind, with its routing key.
    ///
    /// Cancel safety: safe; an event not yet taken stays in the consumer's buffer.
    pub async fn next_event(&mut self) -> anyhow::Result<(String, Event)> {
        let d = self
            .consumer
            .next()
            .await
            .ok_or_else(|| anyhow::anyhow!("the event consumer was closed"))??;
        let key = d.routing_key.to_string();
        let bad = |e| anyhow::anyhow!("an event ({key}) is not a reaper CloudEvent: {e}");
        let ev = if key.starts_with("endpoint.") {
            Event::Endpoint(Box::new(serde_json::from_slice(&d.data).map_err(bad)?))
        } else {
            Event::Outcome(Box::new(serde_json::from_slice(&d.data).map_err(bad)?))
        };
        Ok((key, ev))
    }

    /// The next request outcome event, with its routing key. Endpoint events that come
    /// before it are kept for [`EventWatcher::take_endpoint_events`].
    ///
    /// Cancel safety: safe; an event not yet taken stays in the consumer's buffer.
    pub async fn next(&mut self) -> anyhow::Result<(String, CloudEvent)> {
        loop {
            match self.next_event().await? {
                (key, Event::Outcome(ev)) => return Ok((key, *ev)),
                (key, Event::Endpoint(ev)) => self.endpoint_events.push((key, *ev)),
            }
        }
    }

    /// The endpoint events [`EventWatcher::next`] met so far (taken: each is returned once).
    pub fn take_endpoint_events(&mut self) -> Vec<(String, EndpointEvent)> {
        std::mem::take(&mut self.endpoint_events)
    }
}

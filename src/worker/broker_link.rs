//! The worker's link to RabbitMQ: connect, declare the topology, run the outbox publisher,
//! and for each request queue take its lease (design 1.8) — while another worker holds it,
//! this one is the queue's standby, trying again every [`LEASE_RETRY`] — then consume it.
//! When the connection is lost, every lease is lost with it: the endpoints are taken back from
//! the engine at once, and the link reconnects with back-off (`Backoff::RECONNECT`) while the
//! rest of the worker waits. A topology that exists with other arguments stops the worker.
//! Intake stops on `intake_stop`; the publisher drains the outbox once more on
//! `publisher_stop`, then the connection is closed.

use crate::broker::{
    self, RequestQueue, TopologyMismatch, intake::IntakeCtx, publisher::Publisher,
};
use crate::config::Config;
use crate::engine::Active;
use crate::metrics::{BrokerState, Health};
use crate::retry::Backoff;
use futures_util::future::try_join_all;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// A session that lasted this long was a working one: the back-off starts over after it.
const SETTLED: Duration = Duration::from_secs(10);

/// How often a standby tries to take a queue's lease.
pub const LEASE_RETRY: Duration = Duration::from_secs(1);

/// Intake and the publisher, reconnected as needed.
pub struct BrokerLink {
    pub cfg: Arc<Config>,
    pub intake: IntakeCtx,
    pub publisher: Publisher,
    pub health: Arc<Health>,
    /// The request queues this worker consumes once it holds their leases.
    pub queues: Vec<RequestQueue>,
    /// Every endpoint the worker serves.
    pub endpoints: Vec<String>,
    /// Which endpoints the engine may call: those of the queues whose lease is held.
    pub active: Arc<Active>,
    /// Woken when the worker becomes active for a queue.
    pub engine_wake: Arc<Notify>,
}

impl BrokerLink {
    /// Runs sessions until the publisher is stopped (after intake), reconnecting after a
    /// failure. While stopping, an unreachable broker is not waited for: unpublished events
    /// stay in the outbox for the next start. An `Err` is a [`TopologyMismatch`]: the worker
    /// must stop.
    pub async fn run(
        self,
        intake_stop: CancellationToken,
        publisher_stop: CancellationToken,
    ) -> anyhow::Result<()> {
        let mut failures = 0u32;
        loop {
            let started = Instant::now();
            let session = self.session(&intake_stop, &publisher_stop).await;
            // No lease outlives its connection: the engine stops calling at once.
            self.active.allow(&self.endpoints, false);
            match session {
                Ok(()) => break,
                Err(e) if e.downcast_ref::<TopologyMismatch>().is_some() => {
                    self.health.set_broker(BrokerState::Stopped);
                    return Err(e);
                }
                Err(e) => {
                    if started.elapsed() >= SETTLED {
                        failures = 0;
                    }
                    failures += 1;
                    let delay = Backoff::RECONNECT.delay(failures);
                    self.health.set_broker(BrokerState::Reconnecting);
                    tracing::error!(error = format!("{e:#}"), retry_in = ?delay,
                        "broker connection lost; reconnecting (no endpoint is called meanwhile)");
                    tokio::select! {
                        _ = publisher_stop.cancelled() => break,
                        _ = tokio::time::sleep(delay) => {}
                    }
                }
            }
        }
        self.health.set_broker(BrokerState::Stopped);
        Ok(())
    }

    /// One connection: `Ok` once the publisher stopped cleanly, `Err` when the connection or
    /// a channel failed.
    async fn session(
        &self,
        intake_stop: &CancellationToken,
        publisher_stop: &CancellationToken,
    ) -> anyhow::Result<()> {
        let name = format!("reaper/{}", self.cfg.worker_name);
        let conn = broker::connect(self.cfg.amqp_url.expose(), &name).await?;
        let result = self.on(&conn, intake_stop, publisher_stop).await;
        self.active.allow(&self.endpoints, false);
        let _ = conn.close(200, "reaper stopping".into()).await;
        result
    }

    async fn on(
        &self,
        conn: &lapin::Connection,
        intake_stop: &CancellationToken,
        publisher_stop: &CancellationToken,
    ) -> anyhow::Result<()> {
        let setup = conn.create_channel().await?;
        broker::declare(&setup, &self.cfg.topology, &self.queues).await?;
        let _ = setup.close(200, "topology declared".into()).await;
        let publisher = self
            .publisher
            .run(conn.create_channel().await?, publisher_stop.clone());
        let leased = AtomicUsize::new(0);
        let serving = self
            .queues
            .iter()
            .map(|q| self.serve(conn, q, &leased, intake_stop));
        let intake = try_join_all(serving);
        tokio::pin!(intake, publisher);
        let mut consuming = !intake_stop.is_cancelled();
        self.health.set_broker(if consuming {
            BrokerState::Standby
        } else {
            BrokerState::Stopped
        });
        let mut publishing = true;
        while consuming || publishing {
            tokio::select! {
                r = &mut intake, if consuming => {
                    r.map_err(|e| e.context("intake failed"))?;
                    consuming = false;
                    self.health.set_broker(BrokerState::Stopped);
                }
                r = &mut publisher, if publishing => {
                    r.map_err(|e| e.context("publisher failed"))?;
                    publishing = false;
                }
            }
        }
        Ok(())
    }

    /// Waits as the standby of `queue` until this connection takes its lease, then lets the
    /// engine call the queue's endpoints and consumes the queue until `stop`.
    async fn serve(
        &self,
        conn: &lapin::Connection,
        queue: &RequestQueue,
        leased: &AtomicUsize,
        stop: &CancellationToken,
    ) -> anyhow::Result<()> {
        let mut said = false;
        while !broker::take_lease(conn, &queue.lease()).await? {
            if !said {
                tracing::info!(queue = %queue.name,
                    "another worker is active for this queue: standing by (no endpoint is called)");
                said = true;
            }
            tokio::select! {
                _ = stop.cancelled() => return Ok(()),
                _ = tokio::time::sleep(LEASE_RETRY) => {}
            }
        }
        let endpoints = queue.endpoints(&self.endpoints);
        tracing::info!(queue = %queue.name, ?endpoints, "active for this queue");
        self.active.allow(&endpoints, true);
        self.engine_wake.notify_one();
        if leased.fetch_add(1, Ordering::SeqCst) + 1 == self.queues.len() {
            self.health.set_broker(BrokerState::Consuming);
        }
        let intake = self.intake.for_queue(queue);
        intake.run(conn.create_channel().await?, stop.clone()).await
    }
}

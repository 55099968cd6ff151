//! The worker's link to RabbitMQ: connect, declare the topology, run intake and the outbox
//! publisher on channels of their own, and — when the connection is lost — reconnect with
//! back-off (`Backoff::RECONNECT`) while the rest of the worker (engine, endpoint sessions)
//! goes on. Intake stops on `intake_stop`; the publisher drains the outbox once more on
//! `publisher_stop`, then the connection is closed.

use crate::broker::{self, intake::IntakeCtx, publisher::Publisher};
use crate::config::Config;
use crate::metrics::{BrokerState, Health};
use crate::retry::Backoff;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// A session that lasted this long was a working one: the back-off starts over after it.
const SETTLED: Duration = Duration::from_secs(10);

/// Intake and the publisher, reconnected as needed.
pub struct BrokerLink {
    pub cfg: Arc<Config>,
    pub intake: IntakeCtx,
    pub publisher: Publisher,
    pub health: Arc<Health>,
}

impl BrokerLink {
    /// Runs sessions until the publisher is stopped (after intake), reconnecting after a
    /// failure. While stopping, an unreachable broker is not waited for: unpublished events
    /// stay in the outbox for the next start.
    pub async fn run(self, intake_stop: CancellationToken, publisher_stop: CancellationToken) {
        let mut failures = 0u32;
        loop {
            let started = Instant::now();
            match self.session(&intake_stop, &publisher_stop).await {
                Ok(()) => break,
                Err(e) => {
                    if started.elapsed() >= SETTLED {
                        failures = 0;
                    }
                    failures += 1;
                    let delay = Backoff::RECONNECT.delay(failures);
                    self.health.set_broker(BrokerState::Reconnecting);
                    tracing::error!(error = format!("{e:#}"), retry_in = ?delay,
                        "broker connection lost; reconnecting (the engine goes on)");
                    tokio::select! {
                        _ = publisher_stop.cancelled() => break,
                        _ = tokio::time::sleep(delay) => {}
                    }
                }
            }
        }
        self.health.set_broker(BrokerState::Stopped);
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
        broker::declare(&setup, &self.cfg.topology).await?;
        let _ = setup.close(200, "topology declared".into()).await;
        let (ch_in, ch_out) = (conn.create_channel().await?, conn.create_channel().await?);
        let intake = self.intake.run(ch_in, intake_stop.clone());
        let publisher = self.publisher.run(ch_out, publisher_stop.clone());
        tokio::pin!(intake, publisher);
        let mut consuming = !intake_stop.is_cancelled();
        self.health.set_broker(if consuming {
            BrokerState::Consuming
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
}

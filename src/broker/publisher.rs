//! The outbox drain: publishes pending events to the events exchange with publisher confirms
//! and `mandatory`, and marks a row published only after its confirm. A returned message (no
//! queue bound for its routing key) or a nack is a failure: the row stays and is re-sent.

use crate::event::CONTENT_TYPE;
use crate::ledger::{Ledger, OutboxRow, now_ms};
use crate::retry::Backoff;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::{BasicProperties, Channel};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Events published per confirm round.
const BATCH: u32 = 256;

/// Drains the outbox to one exchange.
pub struct Publisher {
    pub ledger: Ledger,
    pub exchange: String,
    pub worker_name: String,
    pub wake: Arc<Notify>,
}

impl Publisher {
    /// Publishes until cancelled, then drains what is left once. An `Err` means the channel
    /// failed: the caller reconnects, and unconfirmed rows are re-sent then.
    ///
    /// Cancel safety: a round in progress when cancel fires is completed first.
    pub async fn run(&self, ch: Channel, cancel: CancellationToken) -> anyhow::Result<()> {
        let result = self.drain(&ch, cancel).await;
        if result.is_ok() {
            let _ = ch.close(200, "publisher stopped".into()).await;
        }
        result
    }

    async fn drain(&self, ch: &Channel, cancel: CancellationToken) -> anyhow::Result<()> {
        ch.confirm_select(ConfirmSelectOptions::default()).await?;
        let mut failures = 0u32;
        loop {
            let (sent, failed) = self.round(ch).await?;
            if failed > 0 {
                failures += 1;
                let delay = Backoff::RECONNECT.delay(failures);
                tokio::select! {
                    _ = cancel.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(delay) => {}
                }
                continue;
            }
            failures = 0;
            if sent > 0 {
                continue;
            }
            if cancel.is_cancelled() {
                return Ok(());
            }
            tokio::select! {
                _ = cancel.cancelled() => {}
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }

    /// Publishes one batch and waits for its confirms. Returns (confirmed, failed).
    pub async fn round(&self, ch: &Channel) -> anyhow::Result<(usize, usize)> {
        let rows = self.ledger.pending_events(BATCH).await?;
        if rows.is_empty() {
            return Ok((0, 0));
        }
        let mut pending = Vec::with_capacity(rows.len());
        for row in &rows {
            let confirm = ch
                .basic_publish(
                    self.exchange.as_str().into(),
                    row.routing_key.as_str().into(),
                    BasicPublishOptions {
                        mandatory: true,
                        ..Default::default()
                    },
                    row.payload.as_bytes(),
                    self.properties(row),
                )
                .await?;
            pending.push((row.seq, confirm));
        }
        let mut ok = Vec::new();
        let mut failed = Vec::new();
        for (seq, confirm) in pending {
            let confirmation = confirm.await?;
            if confirmation.is_ack() {
                match confirmation.take_message() {
                    None => ok.push(seq),
                    Some(returned) => {
                        tracing::warn!(
                            exchange = %self.exchange,
                            routing_key = %returned.delivery.routing_key,
                            reply = %returned.reply_text,
                            "event returned by the broker (no queue bound for it); will retry"
                        );
                        failed.push(seq);
                    }
                }
            } else {
                tracing::warn!(seq, "event nacked by the broker; will retry");
                failed.push(seq);
            }
        }
        let now = now_ms();
        self.ledger.mark_published(&ok, now).await?;
        self.ledger.mark_unpublished(&failed).await?;
        Ok((ok.len(), failed.len()))
    }

    fn properties(&self, row: &OutboxRow) -> BasicProperties {
        BasicProperties::default()
            .with_content_type(CONTENT_TYPE.into())
            .with_message_id(row.event_id.as_str().into())
            .with_delivery_mode(2)
            .with_timestamp((now_ms() / 1000) as u64)
            .with_app_id(format!("reaper/{}", self.worker_name).as_str().into())
            .with_type(row.routing_key.as_str().into())
    }
}

//! The outbox drain: publishes due events to the events exchange with publisher confirms
//! and `mandatory`, and marks a row published only after a positive confirm without a
//! return. A returned message (no queue bound for its routing key) or a nack is a failure of
//! that row alone: it stays pending and backs off on its own ([`Backoff::OUTBOX`]), while the
//! rows behind it go out. Unconfirmed rows (the channel failed) stay due and are re-sent.

use crate::event::CONTENT_TYPE;
use crate::ledger::{Ledger, OutboxRow, RetryAt, now_ms};
use crate::retry::Backoff;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::{BasicProperties, Channel};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Events published per confirm round.
const BATCH: u32 = 256;

/// The longest idle wait: events written by another process (an operator command on the same
/// ledger) cannot wake this one, so the outbox is looked at again at least this often.
const IDLE: Duration = Duration::from_secs(1);

/// Drains the outbox to one exchange.
pub struct Publisher {
    pub ledger: Ledger,
    pub exchange: String,
    pub worker_name: String,
    pub wake: Arc<Notify>,
}

/// Why the broker did not take an event.
enum Refusal {
    /// Returned: no queue is bound for its routing key.
    Returned(String),
    Nacked,
}

impl Publisher {
    /// Publishes until cancelled, then drains what is due once more. An `Err` means the
    /// channel failed: the caller reconnects, and unconfirmed rows are re-sent then.
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
        loop {
            let (sent, failed) = self.round(ch).await?;
            // Failed rows are not due again at once, so this ends once nothing is due.
            if sent + failed > 0 {
                continue;
            }
            if cancel.is_cancelled() {
                return Ok(());
            }
            let wait = match self.ledger.next_event_at().await? {
                Some(at) => Duration::from_millis((at - now_ms()).max(0) as u64).min(IDLE),
                None => IDLE,
            };
            tokio::select! {
                _ = cancel.cancelled() => {}
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Publishes one batch of due events and waits for their confirms. Returns (confirmed,
    /// failed); each failed row is set to be tried again after its own back-off.
    pub async fn round(&self, ch: &Channel) -> anyhow::Result<(usize, usize)> {
        let rows = self.ledger.pending_events(now_ms(), BATCH).await?;
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
            pending.push((row, confirm));
        }
        let mut ok = Vec::new();
        let mut failed = Vec::new();
        for (row, confirm) in pending {
            let confirmation = confirm.await?;
            if confirmation.is_ack() {
                match confirmation.take_message() {
                    None => {
                        metrics::counter!("reaper_events_published_total",
                            "routing_key" => row.routing_key.clone())
                        .increment(1);
                        ok.push(row.seq)
                    }
                    Some(returned) => {
                        metrics::counter!("reaper_events_returned_total").increment(1);
                        failed.push((row, Refusal::Returned(returned.reply_text.to_string())))
                    }
                }
            } else {
                failed.push((row, Refusal::Nacked));
            }
        }
        let now = now_ms();
        self.ledger.mark_published(&ok, now).await?;
        let retries: Vec<RetryAt> = failed
            .iter()
            .map(|(row, why)| self.retry(row, why, now))
            .collect();
        self.ledger.mark_unpublished(&retries).await?;
        Ok((ok.len(), failed.len()))
    }

    /// When to try a refused row again; says so at the first failure and then at each
    /// doubling of its failures (1, 2, 4, 8, …), at debug level in between, so that an event
    /// no queue takes for hours does not flood the log.
    fn retry(&self, row: &OutboxRow, why: &Refusal, now: i64) -> RetryAt {
        let failures = u32::try_from(row.attempts.saturating_add(1)).unwrap_or(u32::MAX);
        let delay = Backoff::OUTBOX.delay(failures);
        let request_id = row.request_id.as_deref().unwrap_or("-");
        let (what, reply) = match why {
            Refusal::Returned(reply) => (
                "event returned by the broker (no queue bound for its routing key)",
                reply.as_str(),
            ),
            Refusal::Nacked => ("event nacked by the broker", ""),
        };
        if is_log_step(failures) {
            tracing::warn!(exchange = %self.exchange, routing_key = %row.routing_key,
                event_id = %row.event_id, request_id, failures, reply, retry_in = ?delay,
                "{what}; it stays in the outbox and is sent again");
        } else {
            tracing::debug!(routing_key = %row.routing_key, event_id = %row.event_id,
                failures, reply, retry_in = ?delay, "{what}");
        }
        RetryAt {
            seq: row.seq,
            at: now.saturating_add(delay.as_millis() as i64),
        }
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

/// Whether the `failures`-th failure of one event is worth a warning: the first, and then
/// each time the count doubles.
fn is_log_step(failures: u32) -> bool {
    failures.is_power_of_two()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_event_is_warned_about_at_doubling_failure_counts_only() {
        let warned: Vec<u32> = (1..=100).filter(|n| is_log_step(*n)).collect();
        assert_eq!(warned, [1, 2, 4, 8, 16, 32, 64]);
    }

    #[test]
    fn a_refused_event_backs_off_from_a_second_to_a_minute() {
        assert_eq!(Backoff::OUTBOX.base_delay(1), Duration::from_secs(1));
        assert_eq!(Backoff::OUTBOX.base_delay(3), Duration::from_secs(4));
        assert_eq!(Backoff::OUTBOX.base_delay(40), Duration::from_secs(60));
        for n in 1..30 {
            let d = Backoff::OUTBOX.delay(n);
            assert!(
                d >= Backoff::OUTBOX.base_delay(n) / 2,
                "never due again at once"
            );
        }
    }
}

//! Intake: consumes the request queue with manual acks and a bounded prefetch, records each
//! request in the ledger, and acks only after the ledger has committed it (design 2.1).
//! Undecodable or invalid messages are rejected without requeue (→ dead-letter queue) with an
//! `invalid` event when their request id can be read. Intake pauses above the backlog bound.

use crate::event::{CloudEvent, ErrorInfo, EventData, Outcome};
use crate::ledger::{Intake, Ledger, NewEvent, now_ms};
use crate::request::{DeleteRequest, Rejection, System};
use crate::retry::Backoff;
use futures_util::StreamExt;
use lapin::Channel;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicQosOptions, BasicRejectOptions,
};
use lapin::types::FieldTable;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// What to do with a delivery once it has been handled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    Ack,
    /// Reject without requeue: the broker dead-letters it whole.
    DeadLetter,
}

/// Everything intake needs, shared with nothing but the ledger and two wake-ups.
pub struct IntakeCtx {
    pub ledger: Ledger,
    pub queue: String,
    pub prefetch: u16,
    pub backlog_limit: u64,
    pub worker_name: String,
    pub em_endpoint: String,
    pub dcs_endpoint: String,
    /// Wakes the engine when a new request is accepted.
    pub engine_wake: Arc<Notify>,
    /// Wakes the publisher when an event was written.
    pub outbox_wake: Arc<Notify>,
}

/// An `invalid` event for a message that could not be accepted.
pub fn invalid_event(
    worker: &str,
    request_id: Option<&str>,
    reason: &str,
    body: &[u8],
) -> NewEvent {
    let mut seed = format!("invalid:{}:", request_id.unwrap_or_default()).into_bytes();
    seed.extend_from_slice(body);
    let event_id = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, &seed).to_string();
    let data = EventData {
        request_id: request_id.map(str::to_string),
        correlation_id: None,
        batch_id: None,
        target: None,
        outcome: Outcome::Invalid,
        task: None,
        http_status: None,
        attempts: 0,
        error: Some(ErrorInfo {
            kind: "invalid".into(),
            message: reason.to_string(),
            ..Default::default()
        }),
        received_at: Some(chrono::Utc::now()),
        submitted_at: None,
        finished_at: Some(chrono::Utc::now()),
    };
    let ev = CloudEvent::outcome(event_id.clone(), worker, data, true);
    NewEvent {
        event_id,
        request_id: request_id.map(str::to_string),
        routing_key: ev.routing_key().to_string(),
        payload: ev.to_json(),
    }
}

impl IntakeCtx {
    /// Records one message in the ledger and says what to do with its delivery.
    /// An `Err` is a ledger failure: the delivery must stay unacked.
    pub async fn handle(
        &self,
        body: &[u8],
        message_id: Option<&str>,
    ) -> anyhow::Result<Disposition> {
        let now = now_ms();
        let req = match DeleteRequest::decode(body, message_id) {
            Ok(req) => req,
            Err(Rejection { request_id, reason }) => {
                tracing::warn!(request_id = ?request_id.as_ref().map(|r| r.as_str()), %reason,
                    "rejecting an invalid request to the dead-letter queue");
                if let Some(id) = &request_id {
                    let ev = invalid_event(&self.worker_name, Some(id.as_str()), &reason, body);
                    self.ledger.add_event(&ev, now).await?;
                    self.outbox_wake.notify_one();
                }
                return Ok(Disposition::DeadLetter);
            }
        };
        let endpoint = req
            .endpoint
            .clone()
            .unwrap_or_else(|| match req.target.system() {
                System::Em => self.em_endpoint.clone(),
                System::Dcs => self.dcs_endpoint.clone(),
            });
        match self.ledger.accept(&req, &endpoint, now).await? {
            Intake::New => {
                self.engine_wake.notify_one();
                Ok(Disposition::Ack)
            }
            Intake::Duplicate { republished } => {
                tracing::info!(request_id = %req.request_id, republished, "duplicate request");
                if republished {
                    self.outbox_wake.notify_one();
                }
                Ok(Disposition::Ack)
            }
            Intake::Conflict { existing_target } => {
                let reason = format!(
                    "conflicting duplicate: request_id {} was already received with target {existing_target}",
                    req.request_id
                );
                tracing::warn!(request_id = %req.request_id, "{reason}");
                let ev = invalid_event(
                    &self.worker_name,
                    Some(req.request_id.as_str()),
                    &reason,
                    body,
                );
                self.ledger.add_event(&ev, now).await?;
                self.outbox_wake.notify_one();
                Ok(Disposition::DeadLetter)
            }
        }
    }

    /// Consumes until cancelled. Returns an error when the channel fails (the caller
    /// reconnects); deliveries not yet acked then go back to the queue.
    ///
    /// Cancel safety: a delivery being recorded when cancel fires is finished first.
    pub async fn run(&self, ch: Channel, cancel: CancellationToken) -> anyhow::Result<()> {
        let result = self.consume(&ch, cancel).await;
        if result.is_ok() {
            let _ = ch.close(200, "intake stopped".into()).await;
        }
        result
    }

    async fn consume(&self, ch: &Channel, cancel: CancellationToken) -> anyhow::Result<()> {
        ch.basic_qos(self.prefetch, BasicQosOptions::default())
            .await?;
        let tag = format!("reaper-intake-{}", uuid::Uuid::new_v4());
        loop {
            self.wait_for_room(&cancel).await?;
            if cancel.is_cancelled() {
                return Ok(());
            }
            let mut consumer = ch
                .basic_consume(
                    self.queue.as_str().into(),
                    tag.as_str().into(),
                    BasicConsumeOptions::default(),
                    FieldTable::default(),
                )
                .await?;
            tracing::info!(queue = %self.queue, "consuming requests");
            let paused = loop {
                let next = tokio::select! {
                    _ = cancel.cancelled() => break false,
                    next = consumer.next() => next,
                };
                let delivery = match next {
                    None => anyhow::bail!("the broker closed the request consumer"),
                    Some(d) => d?,
                };
                self.settle(delivery, &cancel).await?;
                if self.backlog_limit > 0 && self.ledger.backlog().await? >= self.backlog_limit {
                    break true;
                }
            };
            // Stop the flow, then record what the broker had already sent (at most the
            // prefetch): nothing stays held unacked while paused, nothing is nacked.
            ch.basic_cancel(tag.as_str().into(), BasicCancelOptions::default())
                .await?;
            let drain = async {
                while let Some(d) = consumer.next().await {
                    self.settle(d?, &cancel).await?;
                }
                anyhow::Ok(())
            };
            match tokio::time::timeout(Duration::from_secs(10), drain).await {
                Ok(result) => result?,
                Err(_) => tracing::warn!(
                    "the consumer did not end after cancel; held deliveries return on reconnect"
                ),
            }
            if !paused {
                return Ok(());
            }
            tracing::warn!(
                limit = self.backlog_limit,
                "backlog bound reached: intake paused"
            );
        }
    }

    /// Waits while the backlog is at or above its bound.
    async fn wait_for_room(&self, cancel: &CancellationToken) -> anyhow::Result<()> {
        while self.backlog_limit > 0 && self.ledger.backlog().await? >= self.backlog_limit {
            tokio::select! {
                _ = cancel.cancelled() => return Ok(()),
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            }
        }
        Ok(())
    }

    /// Records a delivery (retrying the ledger with back-off; the delivery stays unacked
    /// meanwhile) and then acks or rejects it.
    async fn settle(&self, d: Delivery, cancel: &CancellationToken) -> anyhow::Result<()> {
        let message_id = d.properties.message_id().as_ref().map(|m| m.to_string());
        let mut failures = 0;
        let disposition = loop {
            match self.handle(&d.data, message_id.as_deref()).await {
                Ok(disp) => break disp,
                Err(e) => {
                    failures += 1;
                    tracing::error!(
                        error = format!("{e:#}"),
                        "ledger write failed; delivery kept unacked"
                    );
                    tokio::select! {
                        _ = cancel.cancelled() => anyhow::bail!("stopped while the ledger was failing: {e:#}"),
                        _ = tokio::time::sleep(Backoff::RECONNECT.delay(failures)) => {}
                    }
                }
            }
        };
        match disposition {
            Disposition::Ack => d.ack(BasicAckOptions::default()).await?,
            Disposition::DeadLetter => d.reject(BasicRejectOptions { requeue: false }).await?,
        };
        Ok(())
    }
}

//! Intake: consumes the request queue with manual acks and a bounded prefetch, records each
//! request in the ledger, and acks only after the ledger has committed it (design 2.1).
//! Undecodable or invalid messages are rejected without requeue (→ dead-letter queue) with an
//! `invalid` event when their request id can be read. Intake pauses above the backlog bound.

use crate::event::CloudEvent;
use crate::ledger::{Intake, Ledger, NewEvent, now_ms};
use crate::request::{DeleteRequest, Rejection, System};
use crate::retry::Backoff;
use futures_util::{FutureExt, StreamExt};
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicQosOptions, BasicRejectOptions,
};
use lapin::types::FieldTable;
use lapin::{Channel, Consumer};
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
#[derive(Clone)]
pub struct IntakeCtx {
    pub ledger: Ledger,
    pub queue: String,
    /// Routed by endpoint: the endpoint of the queue, where a request that names none goes.
    pub shard: Option<String>,
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

/// The outbox row of the `invalid` event of a message that could not be accepted.
pub fn invalid_event(
    worker: &str,
    request_id: Option<&str>,
    reason: &str,
    body: &[u8],
) -> NewEvent {
    NewEvent::of_request(&CloudEvent::invalid(worker, request_id, reason, body))
}

/// What a batch's recorded requests call for once its dispositions are known.
#[derive(Default)]
struct BatchEffects {
    /// `invalid` events to write (rejected messages, conflicting duplicates).
    events: Vec<NewEvent>,
    /// A new request was accepted: the engine has work.
    new: bool,
    /// A duplicate made the ledger publish an event again.
    republished: bool,
}

/// `first` and whatever else the broker has already sent, up to `most` deliveries in all
/// (they are recorded in one transaction).
fn take_ready(
    first: Delivery,
    consumer: &mut Consumer,
    most: u64,
) -> anyhow::Result<Vec<Delivery>> {
    let mut batch = vec![first];
    while (batch.len() as u64) < most {
        match consumer.next().now_or_never() {
            Some(Some(d)) => batch.push(d?),
            _ => break,
        }
    }
    Ok(batch)
}

/// What intake decided about one message before touching the ledger.
enum Decision {
    /// A valid request, for this endpoint.
    Record(DeleteRequest, String),
    /// Dead-letter it, with an `invalid` event when its request id could be read.
    Reject(Option<NewEvent>),
}

impl IntakeCtx {
    /// The intake of one request queue.
    pub fn for_queue(&self, queue: &crate::broker::RequestQueue) -> IntakeCtx {
        IntakeCtx {
            queue: queue.name.clone(),
            shard: queue.endpoint.clone(),
            ..self.clone()
        }
    }

    /// Decodes and validates one message (no I/O).
    fn decide(&self, body: &[u8], message_id: Option<&str>) -> Decision {
        // A panic while decoding would be a bug; should one be reached by some input, the
        // message is dead-lettered like any other undecodable one and intake goes on.
        let decoded = std::panic::catch_unwind(|| DeleteRequest::decode(body, message_id))
            .unwrap_or_else(|_| {
                Err(Rejection {
                    request_id: None,
                    reason: "the body could not be decoded (internal error while reading it)"
                        .into(),
                })
            });
        match decoded {
            Ok(req) => {
                let endpoint = req
                    .endpoint
                    .clone()
                    .or_else(|| self.shard.clone())
                    .unwrap_or_else(|| match req.target.system() {
                        System::Em => self.em_endpoint.clone(),
                        System::Dcs => self.dcs_endpoint.clone(),
                    });
                Decision::Record(req, endpoint)
            }
            Err(Rejection { request_id, reason }) => {
                tracing::warn!(request_id = ?request_id.as_ref().map(|r| r.as_str()), %reason,
                    "rejecting an invalid request to the dead-letter queue");
                let id = request_id.as_ref().map(|r| r.as_str());
                Decision::Reject(
                    id.map(|id| invalid_event(&self.worker_name, Some(id), &reason, body)),
                )
            }
        }
    }

    /// Records a batch of messages in the ledger (the requests in one transaction) and says
    /// what to do with each delivery. An `Err` is a ledger failure: the deliveries must stay
    /// unacked (recording them again is harmless: the request id is the key).
    pub async fn handle_batch(
        &self,
        messages: &[(&[u8], Option<&str>)],
    ) -> anyhow::Result<Vec<Disposition>> {
        let now = now_ms();
        let decisions: Vec<Decision> = messages.iter().map(|(b, m)| self.decide(b, *m)).collect();
        let to_record: Vec<(&DeleteRequest, &str)> = decisions
            .iter()
            .filter_map(|d| match d {
                Decision::Record(req, endpoint) => Some((req, endpoint.as_str())),
                Decision::Reject(_) => None,
            })
            .collect();
        let mut intakes = self.ledger.accept_batch(&to_record, now).await?.into_iter();
        let mut batch = BatchEffects::default();
        let mut dispositions = Vec::with_capacity(messages.len());
        for (decision, (body, _)) in decisions.into_iter().zip(messages) {
            dispositions.push(match decision {
                Decision::Reject(event) => {
                    batch.events.extend(event);
                    Disposition::DeadLetter
                }
                // `accept_batch` answers one intake per request, in order.
                Decision::Record(req, _) => {
                    let intake = intakes.next().ok_or_else(|| {
                        anyhow::anyhow!("the ledger answered fewer intakes than requests")
                    })?;
                    self.dispose(&req, intake, body, &mut batch)
                }
            });
        }
        self.finish_batch(batch, now).await?;
        Ok(dispositions)
    }

    /// What the ledger's answer for one recorded request means for its delivery.
    fn dispose(
        &self,
        req: &DeleteRequest,
        intake: Intake,
        body: &[u8],
        batch: &mut BatchEffects,
    ) -> Disposition {
        match intake {
            Intake::New => {
                batch.new = true;
                Disposition::Ack
            }
            Intake::Duplicate { republished } => {
                tracing::info!(request_id = %req.request_id, republished, "duplicate request");
                batch.republished |= republished;
                Disposition::Ack
            }
            Intake::Conflict { existing_target } => {
                let reason = format!(
                    "conflicting duplicate: request_id {} was already received with target {existing_target}",
                    req.request_id
                );
                tracing::warn!(request_id = %req.request_id, "{reason}");
                let id = Some(req.request_id.as_str());
                let event = invalid_event(&self.worker_name, id, &reason, body);
                batch.events.push(event);
                Disposition::DeadLetter
            }
        }
    }

    /// Writes a batch's events and wakes the engine and the publisher when they have work.
    async fn finish_batch(&self, batch: BatchEffects, now: i64) -> anyhow::Result<()> {
        if !batch.events.is_empty() {
            self.ledger.add_events(&batch.events, now).await?;
        }
        if batch.new {
            self.engine_wake.notify_one();
        }
        if batch.republished || !batch.events.is_empty() {
            self.outbox_wake.notify_one();
        }
        Ok(())
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
            let paused = self.flow(&mut consumer, &cancel).await?;
            self.stop_consuming(ch, &tag, consumer, &cancel).await?;
            if !paused {
                return Ok(());
            }
            tracing::warn!(
                limit = self.backlog_limit,
                "backlog bound reached: intake paused"
            );
        }
    }

    /// Records deliveries until cancelled (`false`) or until the backlog reaches its bound
    /// (`true`: intake pauses).
    async fn flow(
        &self,
        consumer: &mut Consumer,
        cancel: &CancellationToken,
    ) -> anyhow::Result<bool> {
        // Only intake adds to the backlog, so the last count plus the deliveries since is an
        // upper bound on it: the ledger is counted again only when that bound reaches the
        // limit, not for every delivery.
        let mut counted = self.ledger.backlog().await?;
        let mut since = 0u64;
        loop {
            let next = tokio::select! {
                _ = cancel.cancelled() => return Ok(false),
                next = consumer.next() => next,
            };
            let first = match next {
                None => anyhow::bail!("the broker closed the request consumer"),
                Some(d) => d?,
            };
            // A batch never takes more than the room left under the backlog bound.
            let room = match self.backlog_limit {
                0 => u64::from(self.prefetch),
                limit => limit.saturating_sub(counted + since).max(1),
            };
            let batch = take_ready(first, consumer, room.min(u64::from(self.prefetch)))?;
            since += batch.len() as u64;
            self.settle(batch, cancel).await?;
            if self.backlog_limit > 0 && counted + since >= self.backlog_limit {
                counted = self.ledger.backlog().await?;
                since = 0;
                if counted >= self.backlog_limit {
                    return Ok(true);
                }
            }
        }
    }

    /// Stops the flow, then records what the broker had already sent (at most the
    /// prefetch): nothing stays held unacked while paused, nothing is nacked.
    async fn stop_consuming(
        &self,
        ch: &Channel,
        tag: &str,
        mut consumer: Consumer,
        cancel: &CancellationToken,
    ) -> anyhow::Result<()> {
        ch.basic_cancel(tag.into(), BasicCancelOptions::default())
            .await?;
        let drain = async {
            while let Some(d) = consumer.next().await {
                self.settle(vec![d?], cancel).await?;
            }
            anyhow::Ok(())
        };
        match tokio::time::timeout(Duration::from_secs(10), drain).await {
            Ok(result) => result,
            Err(_) => {
                tracing::warn!(
                    "the consumer did not end after cancel; held deliveries return on reconnect"
                );
                Ok(())
            }
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

    /// Records deliveries (retrying the ledger with back-off; they stay unacked meanwhile)
    /// and then acks or rejects each.
    async fn settle(&self, batch: Vec<Delivery>, cancel: &CancellationToken) -> anyhow::Result<()> {
        let ids: Vec<Option<String>> = batch
            .iter()
            .map(|d| d.properties.message_id().as_ref().map(|m| m.to_string()))
            .collect();
        let messages: Vec<(&[u8], Option<&str>)> = batch
            .iter()
            .zip(&ids)
            .map(|(d, id)| (d.data.as_slice(), id.as_deref()))
            .collect();
        let mut failures = 0;
        let dispositions = loop {
            match self.handle_batch(&messages).await {
                Ok(dispositions) => break dispositions,
                Err(e) => {
                    failures += 1;
                    tracing::error!(
                        error = format!("{e:#}"),
                        "ledger write failed; deliveries kept unacked"
                    );
                    tokio::select! {
                        _ = cancel.cancelled() => anyhow::bail!("stopped while the ledger was failing: {e:#}"),
                        _ = tokio::time::sleep(Backoff::RECONNECT.delay(failures)) => {}
                    }
                }
            }
        };
        for settlement in settlements(&batch, &dispositions) {
            match settlement {
                Settlement::AckUpTo(d) => {
                    d.ack(BasicAckOptions { multiple: true }).await?;
                }
                Settlement::DeadLetter(d) => {
                    d.reject(BasicRejectOptions { requeue: false }).await?;
                    metrics::counter!("reaper_dead_lettered_total").increment(1);
                }
            }
        }
        Ok(())
    }
}

/// One frame that settles deliveries of a batch.
#[derive(Debug, PartialEq)]
enum Settlement<'a, D> {
    /// Ack this delivery and every earlier one of the channel not yet settled (`multiple`).
    AckUpTo(&'a D),
    /// Reject this one without requeue (it is dead-lettered).
    DeadLetter(&'a D),
}

/// The fewest frames that settle a batch (in delivery order, on the one channel that
/// received it, every earlier delivery already settled): one `multiple` ack for each run of
/// acked deliveries, ended by its last one, and a reject for each dead-lettered one. A
/// batch of accepted requests is settled by a single ack.
fn settlements<'a, D>(batch: &'a [D], dispositions: &[Disposition]) -> Vec<Settlement<'a, D>> {
    let mut out = Vec::new();
    let mut run_end = None;
    for (d, disposition) in batch.iter().zip(dispositions) {
        match disposition {
            Disposition::Ack => run_end = Some(d),
            Disposition::DeadLetter => {
                // Settled in delivery order: the acks before it, then the reject.
                out.extend(run_end.take().map(Settlement::AckUpTo));
                out.push(Settlement::DeadLetter(d));
            }
        }
    }
    out.extend(run_end.map(Settlement::AckUpTo));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use Disposition::{Ack, DeadLetter};

    #[test]
    fn a_batch_of_accepted_requests_is_settled_by_one_multiple_ack_of_its_last_delivery() {
        let batch = [1, 2, 3, 4];
        let got = settlements(&batch, &[Ack, Ack, Ack, Ack]);
        assert_eq!(got, [Settlement::AckUpTo(&4)]);
    }

    #[test]
    fn dead_lettered_deliveries_split_the_acks_into_runs_settled_in_order() {
        let batch = [1, 2, 3, 4, 5, 6];
        let got = settlements(&batch, &[Ack, Ack, DeadLetter, DeadLetter, Ack, Ack]);
        assert_eq!(
            got,
            [
                Settlement::AckUpTo(&2),
                Settlement::DeadLetter(&3),
                Settlement::DeadLetter(&4),
                Settlement::AckUpTo(&6),
            ]
        );
        let got = settlements(&batch[..2], &[DeadLetter, Ack]);
        assert_eq!(got, [Settlement::DeadLetter(&1), Settlement::AckUpTo(&2)]);
    }
}

//! [`CallPermit`]: one call's hold on its endpoint's budget. It counts the call in metrics
//! when dropped and reports what the call met — an answer's status, a timeout — to the
//! endpoint's controller as it comes. Knows nothing of HTTP beyond status codes.

use super::Shared;
use super::aimd::Signal;
use super::gate::Slot;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// Held for the duration of one call; releases the concurrency slot when dropped. A call
/// marked [`sending`](CallPermit::sending) is counted when the permit is dropped, with the
/// status of its answer, or `error` when none came (transport failure, timeout, abandoned);
/// a `logon` call is counted in `reaper_logons_total` too (`ok` for 2xx, `refused` for
/// 401/403, else `error`).
pub struct CallPermit {
    _slot: Slot,
    shared: Arc<Shared>,
    call: Option<Call>,
}

struct Call {
    operation: &'static str,
    sent: Instant,
    answer: Option<(u16, Duration)>,
}

impl CallPermit {
    pub(super) fn new(slot: Slot, shared: Arc<Shared>) -> Self {
        CallPermit {
            _slot: slot,
            shared,
            call: None,
        }
    }

    /// The call (`operation`: `delete`, `poll`, `logon`, …) is leaving now.
    pub fn sending(&mut self, operation: &'static str) {
        let sent = Instant::now();
        self.call = Some(Call {
            operation,
            sent,
            answer: None,
        });
    }

    /// The call's answer came with `status`: 429 and 503 tell the controller the endpoint is
    /// overloaded, other answers below 500 that it copes.
    pub fn answered(&mut self, status: u16) {
        if let Some(call) = &mut self.call {
            call.answer = Some((status, call.sent.elapsed()));
            let cause = if status == 429 { "429" } else { "503" };
            self.shared
                .signal(call.sent, Signal::of_status(status), cause);
        }
    }

    /// No answer came within the timeout: the controller takes it as overload.
    pub fn timed_out(&mut self) {
        if let Some(call) = &self.call {
            self.shared.signal(call.sent, Signal::Overload, "timeout");
        }
    }
}

impl Drop for CallPermit {
    fn drop(&mut self) {
        let Some(call) = self.call.take() else {
            return;
        };
        let (status, took) = match call.answer {
            Some((status, took)) => (status.to_string(), took),
            None => ("error".to_string(), call.sent.elapsed()),
        };
        let (endpoint, operation) = (self.shared.endpoint.to_string(), call.operation);
        metrics::histogram!("reaper_remote_call_duration_seconds",
            "endpoint" => endpoint.clone(), "operation" => operation)
        .record(took.as_secs_f64());
        if operation == "logon" {
            let result = match call.answer {
                Some((200..=299, _)) => "ok",
                Some((401 | 403, _)) => "refused",
                _ => "error",
            };
            metrics::counter!("reaper_logons_total",
                "endpoint" => endpoint.clone(), "result" => result)
            .increment(1);
        }
        metrics::counter!("reaper_remote_calls_total",
            "endpoint" => endpoint, "operation" => operation, "status" => status)
        .increment(1);
    }
}

//! A fence around one engine step: a panic inside it (a bug, should one ever be reached by
//! some input) becomes a value the engine handles, instead of unwinding through the worker.
//! Knows nothing of the ledger: the engine decides what a panicked step means.

use futures_util::FutureExt;
use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;

/// How one step ended.
#[derive(Debug)]
pub(super) enum StepEnd {
    Done,
    /// The step returned an error (most likely the ledger failed).
    Failed(anyhow::Error),
    /// The step panicked, with the panic's message.
    Panicked(String),
}

/// Runs `step`, catching a panic inside it.
///
/// Unwind safety: what a step shares with others (the ledger pool, the endpoint clients and
/// their limiters) holds no invariant that a step can leave half-way: their locks are held
/// only for a clone or a swap, and the ledger is changed in transactions that roll back when
/// dropped. So asserting unwind safety here is sound.
pub(super) async fn guarded<F>(step: F) -> StepEnd
where
    F: Future<Output = anyhow::Result<()>>,
{
    match AssertUnwindSafe(step).catch_unwind().await {
        Ok(Ok(())) => StepEnd::Done,
        Ok(Err(e)) => StepEnd::Failed(e),
        Err(payload) => StepEnd::Panicked(panic_message(payload.as_ref())),
    }
}

/// The text of a panic payload (`panic!` gives a `&str` or a `String`).
fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A step that panics with `payload` after an await (mid-step, as a real one would).
    async fn panicking(payload: impl Any + Send + 'static) -> anyhow::Result<()> {
        tokio::task::yield_now().await;
        std::panic::panic_any(payload)
    }

    #[tokio::test]
    async fn a_panicking_step_is_caught_with_its_message_and_others_pass_through() {
        let ok = guarded(async { Ok(()) }).await;
        assert!(matches!(ok, StepEnd::Done), "{ok:?}");

        let failed = guarded(async { Err(anyhow::anyhow!("ledger busy")) }).await;
        assert!(
            matches!(&failed, StepEnd::Failed(e) if e.to_string() == "ledger busy"),
            "{failed:?}"
        );

        // `panic!("{x}")` carries a String, `panic!("literal")` a &str: both are read.
        let formatted = guarded(panicking(String::from(
            "byte index 4 is not a char boundary",
        )))
        .await;
        assert!(
            matches!(&formatted, StepEnd::Panicked(m) if m == "byte index 4 is not a char boundary"),
            "{formatted:?}"
        );
        let literal = guarded(panicking("plain")).await;
        assert!(
            matches!(&literal, StepEnd::Panicked(m) if m == "plain"),
            "{literal:?}"
        );
        let other = guarded(panicking(42_u8)).await;
        assert!(
            matches!(&other, StepEnd::Panicked(m) if m == "a panic without a message"),
            "{other:?}"
        );
    }
}

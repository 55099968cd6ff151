//! The prober of one endpoint: while the endpoint is down it sends one probe at a time (the
//! probe itself is the client's: a logon, an IAM token request, a cheap call), waiting
//! [`super::PROBE`]'s backoff between them — or less, when one of the endpoint's secret files
//! changed: a rotated secret is tried at once. The endpoint is marked up when a probe is
//! answered. Knows nothing of what a probe sends.

use super::EndpointHealth;
use crate::config::{FILE_RECHECK, SecretSource};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Probes `health`'s endpoint with `probe` whenever it is down, until `cancel`. `probe`
/// answers `Ok(how it was answered)` or `Err(why it still cannot be used)`; `secrets` are the
/// endpoint's credentials, watched for a change while waiting.
///
/// Cancel safety: a probe in flight when `cancel` fires is dropped (it changes nothing).
pub async fn run<F, Fut>(
    health: Arc<EndpointHealth>,
    secrets: Vec<SecretSource>,
    probe: F,
    cancel: CancellationToken,
) where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<String, String>>,
{
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = health.wait_down() => {}
        }
        if wait(health.probe_delay(), &secrets, &cancel).await {
            return;
        }
        let result = tokio::select! {
            _ = cancel.cancelled() => return,
            r = probe() => r,
        };
        match result {
            Ok(how) => health.probe_succeeded(&how),
            Err(reason) => health.probe_failed(&reason),
        }
    }
}

/// Waits `delay`, looking at the secret files every [`FILE_RECHECK`]: returns early when one
/// changed. Returns `true` when cancelled.
async fn wait(delay: Duration, secrets: &[SecretSource], cancel: &CancellationToken) -> bool {
    let deadline = Instant::now() + delay;
    loop {
        let watching = secrets.iter().any(|s| s.path().is_some());
        let tick = if watching {
            deadline.min(Instant::now() + FILE_RECHECK)
        } else {
            deadline
        };
        tokio::select! {
            _ = cancel.cancelled() => return true,
            _ = tokio::time::sleep_until(tick) => {}
        }
        if Instant::now() >= deadline {
            return false;
        }
        if let Some(changed) = secrets.iter().find(|s| s.reload()) {
            let path = changed.path().map(|p| p.display().to_string());
            tracing::info!(
                path = path.unwrap_or_default(),
                "a secret file changed: probing at once"
            );
            return false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test(start_paused = true)]
    async fn one_probe_at_a_time_with_backoff_until_one_is_answered() {
        let health = Arc::new(EndpointHealth::detached("em"));
        let probes = Arc::new(AtomicU32::new(0));
        let cancel = CancellationToken::new();
        let task = tokio::spawn(run(
            Arc::clone(&health),
            Vec::new(),
            {
                let probes = Arc::clone(&probes);
                move || {
                    let probes = Arc::clone(&probes);
                    async move {
                        match probes.fetch_add(1, Ordering::SeqCst) {
                            0..=3 => Err("connection refused".to_string()),
                            _ => Ok("logged on".to_string()),
                        }
                    }
                }
            },
            cancel.clone(),
        ));
        tokio::time::sleep(Duration::from_secs(100)).await;
        assert_eq!(probes.load(Ordering::SeqCst), 0, "no probe while up");
        health.trouble("connection refused");
        let t = Instant::now();
        while health.is_down() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // Probes after 1, 2, 4, 8 and 16 s: the fifth is answered.
        assert_eq!(probes.load(Ordering::SeqCst), 5);
        let took = t.elapsed();
        assert!(
            took >= Duration::from_secs(31) && took < Duration::from_secs(32),
            "{took:?}"
        );
        cancel.cancel();
        task.await.unwrap();
    }

    #[tokio::test]
    async fn a_changed_secret_file_is_probed_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pw");
        std::fs::write(&path, "wrong").unwrap();
        let secret = SecretSource::file(&path).unwrap();
        let health = Arc::new(EndpointHealth::detached("em"));
        health.trouble("logon refused");
        // Four failed probes: the next one would wait 16 s.
        for _ in 0..4 {
            health.probe_failed("logon refused");
        }
        let cancel = CancellationToken::new();
        let task = tokio::spawn(run(
            Arc::clone(&health),
            vec![secret.clone()],
            {
                let secret = secret.clone();
                move || {
                    let ok = secret.current().expose() == "right";
                    async move {
                        if ok {
                            Ok("logged on".into())
                        } else {
                            Err("refused".into())
                        }
                    }
                }
            },
            cancel.clone(),
        ));
        std::fs::write(&path, "right\n").unwrap();
        let t = Instant::now();
        while health.is_down() {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "noticed within a few seconds"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        cancel.cancel();
        task.await.unwrap();
    }
}

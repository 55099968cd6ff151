//! Re-reading the protect file while reaper runs (design 1.6: a change is noticed within 5 s;
//! while a changed file is unreadable or malformed, no DELETE is sent).
//!
//! The file is read every [`POLL`]. A content that differs from the one in force is applied
//! only once two reads in a row agree on it: an editor or `cat > file` truncates a file
//! before writing it, and a read in between must not briefly protect nothing. Until the two
//! reads agree, the verdict is "unavailable", so no DELETE slips through meanwhile. Each
//! change is logged once: an error when the new file cannot be used, info when it can.

use super::protect::ProtectList;
use super::{IdState, Layer, Protection};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often the file is read: a change is in force within two reads (about 2 s).
pub(super) const POLL: Duration = Duration::from_secs(1);

/// Largest protect file read (a path pointing at something else by mistake is refused).
const MAX_BYTES: u64 = 16 * 1024 * 1024;

/// One read of the file: its content, or why it could not be read.
pub(super) type Seen = Result<Vec<u8>, String>;

/// Reads the protect file at `path`, refusing one larger than [`MAX_BYTES`].
pub(super) fn read(path: &Path) -> Seen {
    let len = std::fs::metadata(path).map_err(|e| e.to_string())?.len();
    if len > MAX_BYTES {
        return Err(format!("it is larger than {} MiB", MAX_BYTES >> 20));
    }
    std::fs::read(path).map_err(|e| e.to_string())
}

/// What the ids' state becomes for a read of the file at `path`, named `key`.
pub(super) fn state_of(key: &str, path: &Path, seen: &Seen) -> IdState {
    match seen {
        Err(e) => IdState::Unavailable(format!("{key}: cannot read `{}`: {e}", path.display())),
        Ok(bytes) => match ProtectList::parse_as(key, path, bytes) {
            Ok(list) => IdState::Loaded(Arc::new(list)),
            Err(e) => IdState::Unavailable(format!("{}: {}", e.key, e.reason)),
        },
    }
}

/// What one read means, given the content in force and a change waiting to be confirmed.
#[derive(Debug, PartialEq)]
pub(super) enum Step {
    /// Nothing changed.
    Same,
    /// The file differs from the content in force; not yet confirmed by a second read.
    Settling,
    /// The file is back to the content in force before the change was confirmed.
    Back,
    /// Two reads in a row agree on a new content (or error): put it in force.
    Apply(Seen),
}

/// The content in force and the change waiting for confirmation. Pure: fed reads, it says
/// what to do, so that "apply once per change" is tested without files or clocks.
pub(super) struct Tracker {
    applied: Seen,
    candidate: Option<Seen>,
}

impl Tracker {
    /// A tracker whose content in force is `loaded` (what start-up read).
    pub(super) fn new(loaded: Vec<u8>) -> Self {
        Tracker {
            applied: Ok(loaded),
            candidate: None,
        }
    }

    /// What the read `seen` means.
    pub(super) fn observe(&mut self, seen: Seen) -> Step {
        if seen == self.applied {
            return match self.candidate.take() {
                Some(_) => Step::Back,
                None => Step::Same,
            };
        }
        if self.candidate.as_ref() == Some(&seen) {
            self.candidate = None;
            self.applied = seen.clone();
            return Step::Apply(seen);
        }
        self.candidate = Some(seen);
        Step::Settling
    }
}

/// Watches each protect file of `protection` every `every` until `shutdown`.
///
/// Cancel safety: cancelled only between reads; a read under way finishes first.
pub(super) async fn run(protection: Protection, every: Duration, shutdown: CancellationToken) {
    let watchers = protection
        .layers
        .into_iter()
        .map(|layer| watch_layer(layer, every, shutdown.clone()));
    futures_util::future::join_all(watchers).await;
}

/// Watches the protect file of one `layer` (if it has one) every `every` until `shutdown`.
async fn watch_layer(layer: Arc<Layer>, every: Duration, shutdown: CancellationToken) {
    let Some((path, loaded)) = layer.file.clone() else {
        return;
    };
    let key = layer.file_key.as_str();
    let mut tracker = Tracker::new(loaded);
    let mut in_force = layer.ids();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        let p = path.clone();
        let seen = tokio::task::spawn_blocking(move || read(&p))
            .await
            .unwrap_or_else(|e| Err(format!("the read did not finish: {e}")));
        match tracker.observe(seen) {
            Step::Same => {}
            Step::Settling => {
                tracing::debug!("{key} `{}` changed: reading it again", path.display());
                layer.set_ids(IdState::Unavailable(format!(
                    "{key} `{}` is changing: it is read again before it counts",
                    path.display()
                )));
            }
            Step::Back => layer.set_ids(in_force.clone()),
            Step::Apply(seen) => {
                let next = state_of(key, &path, &seen);
                log_change(key, &path, &in_force, &next);
                layer.set_ids(next.clone());
                in_force = next;
            }
        }
    }
}

/// Logs a change put in force, once: an error when the file cannot be used (no DELETE until
/// it can), info when it can (and whether it recovered).
fn log_change(key: &str, path: &Path, before: &IdState, after: &IdState) {
    match (before, after) {
        (_, IdState::Unavailable(why)) => {
            tracing::error!("{why}: no DELETE is sent until {key} is readable and valid again")
        }
        (IdState::Unavailable(_), IdState::Loaded(list)) => tracing::info!(
            "{key} `{}` is valid again ({} protected ids): DELETEs resume",
            path.display(),
            list.len()
        ),
        (IdState::Loaded(_), IdState::Loaded(list)) => tracing::info!(
            "{key} `{}` changed: {} protected ids",
            path.display(),
            list.len()
        ),
    }
}

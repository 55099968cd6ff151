//! The worker's claim on its ledger file: one worker per ledger (design 1.8). Two workers on
//! one file would release each other's leases and send DELETEs twice, so `reaper run` takes an
//! exclusive lock on `<ledger>.lock` before it opens the ledger, and a second one is refused
//! at start. The operating system releases the lock when the process ends, however it ends
//! (`kill -9` included). Commands that only read or mark the ledger (`status`, `pause`, …)
//! do not take it.

use std::fs::{File, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

/// Held for as long as the worker runs; dropping it releases the ledger.
#[derive(Debug)]
pub struct WorkerLock {
    _file: File,
    path: PathBuf,
}

impl WorkerLock {
    /// The lock file of the ledger at `ledger`.
    pub fn path_of(ledger: &Path) -> PathBuf {
        let mut name = ledger.as_os_str().to_owned();
        name.push(".lock");
        PathBuf::from(name)
    }

    /// Takes the lock of the ledger at `ledger` for `worker`, or says who holds it.
    pub fn take(ledger: &Path, worker: &str) -> anyhow::Result<Self> {
        let path = Self::path_of(ledger);
        let mut opts = std::fs::OpenOptions::new();
        opts.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let mut file = opts
            .open(&path)
            .map_err(|e| anyhow::anyhow!("cannot open the ledger lock {}: {e}", path.display()))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                anyhow::bail!(
                    "the ledger {} is in use by another reaper worker ({}; lock file {}): two \
                     workers on one ledger would send DELETEs twice. Give each worker its own \
                     REAPER_LEDGER, or stop the other one first",
                    ledger.display(),
                    holder.trim().chars().take(200).collect::<String>(),
                    path.display()
                );
            }
            Err(TryLockError::Error(e)) => {
                anyhow::bail!("cannot lock the ledger lock {}: {e}", path.display())
            }
        }
        // Who holds it, for the message of the one refused (best effort).
        let _ = file.set_len(0).and_then(|()| file.rewind());
        let _ = write!(file, "worker `{worker}`, pid {}", std::process::id());
        let _ = file.flush();
        Ok(WorkerLock { _file: file, path })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_worker_on_one_ledger_is_refused_until_the_first_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = dir.path().join("ledger.db");
        let first = WorkerLock::take(&ledger, "first").expect("the first worker takes it");
        let refused = WorkerLock::take(&ledger, "second").unwrap_err().to_string();
        assert!(
            refused.contains("in use by another reaper worker"),
            "{refused}"
        );
        assert!(refused.contains("worker `first`"), "{refused}");
        assert!(refused.contains(&ledger.display().to_string()), "{refused}");
        drop(first);
        WorkerLock::take(&ledger, "second").expect("free again once the first let go");
    }
}

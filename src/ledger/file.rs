//! The ledger file's safety: it is created private to its owner, and the commits that let
//! RabbitMQ forget a message (intake) reach the disk before they return. Everything else
//! about opening the ledger is in `mod.rs`.

use super::Ledger;
use sqlx::{Connection, Sqlite, Transaction};
use std::path::Path;

/// Creates the ledger file readable and writable by its owner only (0600) when it does not
/// exist yet, before SQLite opens it: it holds the whole history of what was deleted. SQLite
/// creates the `-wal` and `-shm` files with the database file's permissions, so they are
/// 0600 too. An existing file keeps the mode its owner gave it.
pub(super) fn create_private(path: &Path) -> anyhow::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    match opts.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(anyhow::anyhow!(
            "cannot create the ledger {}: {e}",
            path.display()
        )),
    }
}

impl Ledger {
    /// Runs `work` in one transaction whose commit survives a power loss.
    ///
    /// The ledger runs WAL with synchronous=NORMAL: a commit is safe from a crash of the
    /// process but may be lost with the last moments before a power loss. That is fine for
    /// steps the engine can redo, not for an intake that lets RabbitMQ forget the message.
    /// So this holds the pool's one connection, switches it to FULL (the WAL is synced at
    /// each commit), commits, and switches it back, also when `work` fails. Were the future
    /// dropped half-way, the connection would go back to the pool in FULL: safe, only slower,
    /// until the next durable commit puts it back to NORMAL.
    pub(super) async fn durably<T>(
        &self,
        work: impl AsyncFnOnce(&mut Transaction<'_, Sqlite>) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        let mut conn = self.pool.acquire().await?;
        // SQLite refuses to change the safety level inside a transaction: set it around one.
        sqlx::query("PRAGMA synchronous = FULL")
            .execute(&mut *conn)
            .await?;
        let result = async {
            let mut tx = conn.begin().await?;
            let value = work(&mut tx).await?;
            tx.commit().await?;
            anyhow::Ok(value)
        }
        .await;
        let reset = sqlx::query("PRAGMA synchronous = NORMAL")
            .execute(&mut *conn)
            .await;
        let value = result?;
        reset?;
        Ok(value)
    }
}

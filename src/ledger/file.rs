//! The ledger file: opening it (WAL, one connection, migrations), its safety (created
//! private to its owner; the commits that let RabbitMQ forget a message reach the disk
//! before they return) and its write transactions.

use super::Ledger;
use anyhow::Context;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{ConnectOptions, Connection, Sqlite, Transaction};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Transactions committed by every ledger of this process (explicit and autocommit ones),
/// counted by SQLite's commit hook: what `reaper bench` divides by the requests.
static COMMITS: AtomicU64 = AtomicU64::new(0);

/// How many ledger transactions this process has committed so far.
pub fn commits_so_far() -> u64 {
    COMMITS.load(Ordering::Relaxed)
}

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
    /// Opens (creating if needed) the ledger file and runs the embedded migrations.
    pub async fn open(path: &Path) -> anyhow::Result<Self> {
        // Two processes opening a new file at once (a worker and `reaper status`, or the
        // metrics endpoint) race to switch it to WAL and to migrate it; SQLite answers the
        // loser "database is locked" at once rather than waiting. The loser tries again and
        // then finds the migrations applied.
        let mut tries = 0;
        loop {
            match Self::try_open(path).await {
                Ok(ledger) => return Ok(ledger),
                Err(_) if tries < 5 => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(100 * tries)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn try_open(path: &Path) -> anyhow::Result<Self> {
        create_private(path)?;
        let opts = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            // Another process (`reaper pause`, `cancel`, …, or the worker beside them) may hold
            // the write lock through a slow disk flush: wait for it rather than fail.
            .busy_timeout(Duration::from_secs(30))
            .foreign_keys(true)
            // Every statement at `debug` would flood a debug log (the scheduler asks the
            // ledger several times a second even when idle): statements are `trace`, slow
            // ones still a warning.
            .log_statements(log::LevelFilter::Trace)
            .log_slow_statements(log::LevelFilter::Warn, Duration::from_secs(1));
        // One connection: SQLite has one writer at a time, and queueing for the connection
        // in-process is much cheaper than several connections contending for the file lock
        // (whose busy handler sleeps). Other processes (`reaper status`) still read beside it.
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .after_connect(|conn, _| {
                Box::pin(async move {
                    conn.lock_handle().await?.set_commit_hook(|| {
                        COMMITS.fetch_add(1, Ordering::Relaxed);
                        true // let it commit
                    });
                    Ok(())
                })
            })
            .connect_with(opts)
            .await
            .with_context(|| format!("opening the ledger {}", path.display()))?;
        sqlx::migrate!("./migrations")
            .run(&pool)
            .await
            .with_context(|| format!("migrating the ledger {}", path.display()))?;
        Ok(Ledger {
            pool,
            group: Default::default(),
            deletes_pruned_at: Default::default(),
        })
    }

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

//! Group commit: the worker's write transactions share commits.
//!
//! Each write (a step's result, a claim, a published event, …) still runs as one unit, in a
//! savepoint of its own, and returns only once the transaction holding it has committed: the
//! same guarantee as a transaction of its own. But writes that arrive while a commit is under
//! way join one transaction, committed once for all of them. Under load that turns several
//! commits per request into a fraction of one; alone, a write costs what it did.
//!
//! How: the first write opens the shared transaction (`BEGIN IMMEDIATE`) and spawns its
//! committer, which queues for the same fair lock as the writes: the writes queued before it
//! run first, then it commits and tells each of them the outcome. A write that ends without
//! `commit` (an error, a cancelled future) leaves its savepoint to be rolled back by whoever
//! takes the lock next, so it undoes only its own work.

use super::Ledger;
use sqlx::{Sqlite, Transaction};
use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use tokio::sync::{Mutex, OwnedMutexGuard, watch};

/// A commit's outcome, once known.
type Outcome = Option<Result<(), Arc<str>>>;

/// The transaction writes join, shared by the clones of one [`Ledger`].
pub(super) type Group = Arc<Mutex<Open>>;

/// The transaction open now, if any.
#[derive(Default)]
pub(super) struct Open {
    tx: Option<Transaction<'static, Sqlite>>,
    /// Tells the writes that joined it the outcome of its commit.
    done: Option<watch::Sender<Outcome>>,
    /// A write ended without `commit`: its savepoint is still to be rolled back.
    abandoned: bool,
    /// Rolling back an abandoned savepoint failed (SQLite may have rolled back the whole
    /// transaction, after a full disk or an I/O error): no write joins it any more, lest it
    /// run outside any transaction, and its commit is refused.
    broken: Option<Arc<str>>,
}

impl Open {
    fn tx(&mut self) -> &mut Transaction<'static, Sqlite> {
        self.tx.as_mut().expect("a write holds an open transaction")
    }

    /// Rolls back the savepoint a write abandoned.
    async fn undo_abandoned(&mut self) -> sqlx::Result<()> {
        if let Some(e) = &self.broken {
            return Err(sqlx::Error::Protocol(e.to_string()));
        }
        if self.abandoned && self.tx.is_some() {
            self.abandoned = false;
            if let Err(e) = sqlx::raw_sql("ROLLBACK TO write_step; RELEASE write_step")
                .execute(&mut **self.tx())
                .await
            {
                self.broken = Some(Arc::from(format!(
                    "the ledger's shared transaction broke: undoing a failed write: {e}"
                )));
                return Err(e);
            }
        }
        Ok(())
    }
}

/// One write in the shared transaction: use it as the transaction itself (`&mut **tx` is
/// the connection), then [`GroupTx::commit`].
pub(super) struct GroupTx {
    open: OwnedMutexGuard<Open>,
    done: watch::Receiver<Outcome>,
    released: bool,
}

impl Deref for GroupTx {
    type Target = Transaction<'static, Sqlite>;
    fn deref(&self) -> &Self::Target {
        self.open
            .tx
            .as_ref()
            .expect("a write holds an open transaction")
    }
}

impl DerefMut for GroupTx {
    fn deref_mut(&mut self) -> &mut Self::Target {
        self.open.tx()
    }
}

impl Drop for GroupTx {
    fn drop(&mut self) {
        if !self.released {
            self.open.abandoned = true;
        }
    }
}

impl GroupTx {
    /// Ends this write and waits until the transaction holding it has committed.
    pub(super) async fn commit(mut self) -> anyhow::Result<()> {
        sqlx::query("RELEASE write_step")
            .execute(&mut **self.open.tx())
            .await?;
        self.released = true;
        let mut done = self.done.clone();
        drop(self); // lets the next write, or the committer, in
        let outcome = done
            .wait_for(Option::is_some)
            .await
            .map_err(|_| anyhow::anyhow!("the ledger's shared transaction ended uncommitted"))?;
        match outcome.as_ref() {
            Some(Err(e)) => anyhow::bail!("committing the ledger failed: {e}"),
            _ => Ok(()),
        }
    }
}

impl Ledger {
    /// A write transaction: joins the one open now, or opens it (`BEGIN IMMEDIATE`, which
    /// takes the file's write lock at once: a deferred one that reads first and then writes
    /// fails at once with "database is locked" when another process (`reaper pause`,
    /// `cancel`, …) wrote in between, whatever the busy timeout; an immediate one waits).
    pub(super) async fn write(&self) -> anyhow::Result<GroupTx> {
        let mut open = Arc::clone(&self.group).lock_owned().await;
        open.undo_abandoned().await?;
        if open.tx.is_none() {
            open.tx = Some(self.pool.begin_with("BEGIN IMMEDIATE").await?);
            open.done = Some(watch::channel(None).0);
            tokio::spawn(commit_when_free(Arc::clone(&self.group)));
        }
        let done = match &open.done {
            Some(sender) => sender.subscribe(),
            None => anyhow::bail!("the ledger's shared transaction has no committer"),
        };
        sqlx::query("SAVEPOINT write_step")
            .execute(&mut **open.tx())
            .await?;
        Ok(GroupTx {
            open,
            done,
            released: false,
        })
    }
}

/// Commits the shared transaction once the writes queued before it have run.
async fn commit_when_free(group: Group) {
    tokio::task::yield_now().await;
    let mut open = group.lock().await;
    // An abandoned savepoint that cannot be rolled back leaves the transaction broken:
    // its commit then fails too, and every write in it is told so.
    let undone = open.undo_abandoned().await;
    open.broken = None;
    let (Some(tx), done) = (open.tx.take(), open.done.take()) else {
        return;
    };
    let result = match undone {
        Ok(()) => tx.commit().await,
        Err(e) => {
            let _ = tx.rollback().await;
            Err(e)
        }
    };
    if let Some(done) = done {
        done.send_replace(Some(result.map_err(|e| Arc::from(e.to_string()))));
    }
}

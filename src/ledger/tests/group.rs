//! Group commit: writes that run at once share commits, and each stays a unit of its own —
//! committed when its caller is told so, undone alone when it ends without committing.

use super::*;

/// A ledger with a scratch table the writes below fill.
async fn scratch() -> (tempfile::TempDir, Ledger) {
    let (d, l) = ledger().await;
    sqlx::query("CREATE TABLE scratch (k INTEGER PRIMARY KEY)")
        .execute(&l.pool)
        .await
        .unwrap();
    (d, l)
}

async fn insert(l: &Ledger, k: i64) -> anyhow::Result<()> {
    let mut tx = l.write().await?;
    sqlx::query("INSERT INTO scratch (k) VALUES (?)")
        .bind(k)
        .execute(&mut **tx)
        .await?;
    tx.commit().await
}

async fn keys(l: &Ledger) -> Vec<i64> {
    sqlx::query_scalar("SELECT k FROM scratch ORDER BY k")
        .fetch_all(&l.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn concurrent_writes_share_commits_and_each_is_committed_when_it_returns() {
    let (d, l) = scratch().await;
    // Another connection to the file: it sees committed rows only.
    let other = Ledger::open(&d.path().join("l.db")).await.unwrap();
    let before = commits_so_far();
    let writes: Vec<_> = (0..200)
        .map(|k| {
            let (l, other) = (l.clone(), other.clone());
            tokio::spawn(async move {
                insert(&l, k).await.unwrap();
                let seen: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM scratch WHERE k = ?")
                    .bind(k)
                    .fetch_one(&other.pool)
                    .await
                    .unwrap();
                seen
            })
        })
        .collect();
    for w in writes {
        assert_eq!(w.await.unwrap(), 1, "a returned write is visible elsewhere");
    }
    assert_eq!(keys(&l).await, (0..200).collect::<Vec<_>>());
    let commits = commits_so_far() - before;
    assert!(
        commits < 100,
        "200 concurrent writes took {commits} commits: they should share them"
    );
}

#[tokio::test]
async fn a_write_that_fails_or_is_dropped_is_undone_alone() {
    let (_d, l) = scratch().await;
    insert(&l, 1).await.unwrap();
    // In one group: a good write, a failing one (the key exists after its first insert),
    // one dropped without commit, another good one.
    let failing = async {
        let mut tx = l.write().await?;
        sqlx::query("INSERT INTO scratch (k) VALUES (10)")
            .execute(&mut **tx)
            .await?;
        sqlx::query("INSERT INTO scratch (k) VALUES (1)")
            .execute(&mut **tx)
            .await?;
        tx.commit().await
    };
    let dropped = async {
        let mut tx = l.write().await.unwrap();
        sqlx::query("INSERT INTO scratch (k) VALUES (20)")
            .execute(&mut **tx)
            .await
            .unwrap();
        drop(tx);
    };
    let (a, b, (), d) = tokio::join!(insert(&l, 2), failing, dropped, insert(&l, 3));
    a.unwrap();
    assert!(b.is_err(), "the duplicate key fails its write");
    d.unwrap();
    assert_eq!(keys(&l).await, [1, 2, 3]);
    // The ledger goes on writing.
    insert(&l, 4).await.unwrap();
    assert_eq!(keys(&l).await, [1, 2, 3, 4]);
}

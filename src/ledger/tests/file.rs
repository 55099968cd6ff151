//! The ledger file: durable intake commits, private file modes.

use super::*;

async fn synchronous(l: &Ledger) -> i64 {
    sqlx::query_scalar("PRAGMA synchronous")
        .fetch_one(&l.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn intake_commits_with_synchronous_full_and_leaves_the_connection_normal() {
    let (_d, l) = ledger().await;
    const NORMAL: i64 = 1;
    const FULL: i64 = 2;
    assert_eq!(synchronous(&l).await, NORMAL);
    let inside: i64 = l
        .durably(async |tx| {
            Ok(sqlx::query_scalar("PRAGMA synchronous")
                .fetch_one(&mut **tx)
                .await?)
        })
        .await
        .unwrap();
    assert_eq!(inside, FULL, "the durable transaction runs FULL");
    assert_eq!(synchronous(&l).await, NORMAL, "and NORMAL again after");

    let failed = l
        .durably(async |tx| {
            sqlx::query("INSERT INTO no_such_table VALUES (1)")
                .execute(&mut **tx)
                .await?;
            Ok(())
        })
        .await;
    assert!(failed.is_err());
    assert_eq!(synchronous(&l).await, NORMAL, "also after a failed one");

    let (a, b) = (request("a", JOB_A), request("b", JOB_B));
    let got = l.accept_batch(&[(&a, "em"), (&b, "em")], 5).await.unwrap();
    assert_eq!(got, [Intake::New, Intake::New]);
    l.add_event(&event("bad"), 5).await.unwrap();
    assert_eq!(synchronous(&l).await, NORMAL);
    assert_eq!(l.get("a").await.unwrap().unwrap().state(), State::Accepted);
    assert_eq!(l.get("b").await.unwrap().unwrap().received_at, 5);
    assert_eq!(l.unpublished_count().await.unwrap(), 1);
}

#[cfg(unix)]
#[tokio::test]
async fn a_new_ledger_and_its_wal_and_shm_files_are_private_to_their_owner() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("private.db");
    let l = Ledger::open(&path).await.unwrap();
    l.accept(&request("r1", JOB_A), "em", 1).await.unwrap();
    for suffix in ["", "-wal", "-shm"] {
        let file = dir.path().join(format!("private.db{suffix}"));
        assert!(file.exists(), "{} exists while open", file.display());
        assert_eq!(mode(&file), 0o600, "{}", file.display());
    }
    l.close().await;

    // A file its owner made already keeps the mode it was given.
    let shared = dir.path().join("shared.db");
    std::fs::write(&shared, b"").unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o640)).unwrap();
    Ledger::open(&shared).await.unwrap().close().await;
    assert_eq!(mode(&shared), 0o640);
}

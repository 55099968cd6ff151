//! `reaper prune`: forgets requests that finished before a cutoff, with their history and
//! their published events, so that a long-running ledger stays small. Never touches an
//! unfinished request, nor an event not yet confirmed by the broker (a finished request
//! whose event is still pending is kept until the event is out).
//!
//! Works in chunks of one transaction each, so that a worker running on the same file waits
//! for a chunk at most, never for the whole prune.

use super::Ledger;

/// Requests forgotten per transaction.
const CHUNK: i64 = 2000;

/// What a prune removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Pruned {
    pub requests: u64,
    /// History rows (`reaper status ID`).
    pub transitions: u64,
    /// Published events.
    pub events: u64,
}

impl Ledger {
    /// Deletes the requests that finished before `before` (Unix ms), their history and their
    /// published events, and the published events of no request in the ledger (`invalid`
    /// events of undecodable messages, endpoint events) published before `before`.
    ///
    /// A pruned request id is forgotten: the same request arriving again is a new request.
    pub async fn prune_finished(&self, before: i64) -> anyhow::Result<Pruned> {
        let mut total = Pruned::default();
        loop {
            let chunk = self.prune_chunk(before).await?;
            total.requests += chunk.requests;
            total.transitions += chunk.transitions;
            total.events += chunk.events;
            if chunk.requests == 0 {
                break;
            }
        }
        total.events += sqlx::query(
            "DELETE FROM outbox WHERE published_at IS NOT NULL AND published_at < ?
               AND (request_id IS NULL
                    OR request_id NOT IN (SELECT request_id FROM requests))",
        )
        .bind(before)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(total)
    }

    /// Prunes up to [`CHUNK`] requests in one transaction.
    async fn prune_chunk(&self, before: i64) -> anyhow::Result<Pruned> {
        let mut tx = self.write().await?;
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT request_id FROM requests
             WHERE state IN ('succeeded', 'failed') AND finished_at < ?
               AND request_id NOT IN (SELECT request_id FROM outbox
                                      WHERE published_at IS NULL AND request_id IS NOT NULL)
             LIMIT ?",
        )
        .bind(before)
        .bind(CHUNK)
        .fetch_all(&mut **tx)
        .await?;
        if ids.is_empty() {
            return Ok(Pruned::default());
        }
        // The ids go in as one JSON array: no limit on bound parameters to worry about.
        let ids = serde_json::to_string(&ids)?;
        let mut run = async |sql: &'static str| -> anyhow::Result<u64> {
            Ok(sqlx::query(sql)
                .bind(&ids)
                .execute(&mut **tx)
                .await?
                .rows_affected())
        };
        let pruned = Pruned {
            transitions: run("DELETE FROM transitions
                 WHERE request_id IN (SELECT value FROM json_each(?))")
            .await?,
            events: run("DELETE FROM outbox WHERE published_at IS NOT NULL
                   AND request_id IN (SELECT value FROM json_each(?))")
            .await?,
            requests: run("DELETE FROM requests
                 WHERE request_id IN (SELECT value FROM json_each(?))")
            .await?,
        };
        tx.commit().await?;
        Ok(pruned)
    }
}

#[cfg(test)]
mod tests {
    use crate::ledger::*;
    use crate::request::DeleteRequest;

    const DAY: i64 = 86_400_000;
    const NOW: i64 = 100 * DAY;

    fn request(id: &str) -> DeleteRequest {
        let body = serde_json::json!({"request_id": id,
            "target": {"type": "em.job", "job_id": "5b89dae5-6f08-45ec-b068-08f0bd08394a"}});
        DeleteRequest::decode(body.to_string().as_bytes(), None).unwrap()
    }

    fn event(id: &str, request_id: Option<&str>) -> NewEvent {
        NewEvent {
            event_id: format!("ev-{id}"),
            request_id: request_id.map(str::to_string),
            routing_key: "delete.failed".into(),
            payload: "{}".into(),
        }
    }

    /// A request received at `at`, polled, and finished a day later, its event still pending.
    async fn finished(l: &Ledger, id: &str, at: i64) {
        l.accept(&request(id), "em", at).await.unwrap();
        let polling = Change::to(State::Polling, "task recorded").due(at);
        l.advance(
            id,
            &polling,
            at,
            Some(&|_: &RequestRow| event(&format!("{id}-submitted"), Some(id))),
        )
        .await
        .unwrap();
        let finish = Finish {
            outcome: "deleted".into(),
            finished_at: at + DAY,
        };
        l.finish(id, &Change::to(State::Succeeded, "ok"), &finish, |_| {
            event(id, Some(id))
        })
        .await
        .unwrap();
    }

    /// Marks every pending event published, except those of `keep`.
    async fn publish_all_but(l: &Ledger, keep: &[&str]) {
        let seqs: Vec<i64> = l
            .pending_events(NOW, 100_000)
            .await
            .unwrap()
            .into_iter()
            .filter(|r| r.request_id.as_deref().is_none_or(|id| !keep.contains(&id)))
            .map(|r| r.seq)
            .collect();
        l.mark_published(&seqs, 10 * DAY).await.unwrap();
    }

    #[tokio::test]
    async fn only_requests_finished_before_the_cutoff_go_with_their_history_and_events() {
        let dir = tempfile::tempdir().unwrap();
        let l = Ledger::open(&dir.path().join("l.db")).await.unwrap();
        finished(&l, "old-1", DAY).await;
        finished(&l, "old-2", 2 * DAY).await;
        finished(&l, "old-unpublished", DAY).await;
        finished(&l, "recent", 95 * DAY).await;
        l.accept(&request("open-old"), "em", DAY).await.unwrap();
        l.add_event(&event("invalid-old", Some("never-accepted")), DAY)
            .await
            .unwrap();
        l.add_event(&event("endpoint-down", None), DAY)
            .await
            .unwrap();
        publish_all_but(&l, &["old-unpublished"]).await;
        l.add_event(&event("invalid-pending", None), DAY)
            .await
            .unwrap();

        let pruned = l.prune_finished(NOW - 30 * DAY).await.unwrap();
        assert_eq!(
            pruned,
            Pruned {
                requests: 2,
                transitions: 6,
                events: 4 + 2,
            },
            "two requests of three history rows and two events each, and the two old \
             events of no request"
        );
        for gone in ["old-1", "old-2"] {
            assert!(l.get(gone).await.unwrap().is_none(), "{gone}");
            assert!(l.history(gone).await.unwrap().is_empty(), "{gone}");
        }
        for kept in ["old-unpublished", "recent", "open-old"] {
            assert!(l.get(kept).await.unwrap().is_some(), "{kept}");
            assert!(!l.history(kept).await.unwrap().is_empty(), "{kept}");
        }
        let pending: Vec<String> = l
            .pending_events(NOW, 100)
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.event_id)
            .collect();
        assert_eq!(
            pending,
            [
                "ev-old-unpublished-submitted",
                "ev-old-unpublished",
                "ev-invalid-pending"
            ],
            "no unpublished event is touched"
        );
        assert_eq!(l.backlog().await.unwrap(), 1, "the open request stays due");
        assert_eq!(
            l.prune_finished(NOW - 30 * DAY).await.unwrap(),
            Pruned::default(),
            "a second prune finds nothing more"
        );
    }

    #[tokio::test]
    async fn a_prune_of_more_requests_than_a_chunk_takes_them_all() {
        let dir = tempfile::tempdir().unwrap();
        let l = Ledger::open(&dir.path().join("l.db")).await.unwrap();
        let n = super::CHUNK as usize + 5;
        let reqs: Vec<DeleteRequest> = (0..n).map(|i| request(&format!("r{i}"))).collect();
        let items: Vec<(&DeleteRequest, &str)> = reqs.iter().map(|r| (r, "em")).collect();
        l.accept_batch(&items, DAY).await.unwrap();
        for r in &reqs {
            l.finish(
                r.request_id.as_str(),
                &Change::to(State::Failed, "refused"),
                &Finish {
                    outcome: "refused".into(),
                    finished_at: DAY,
                },
                |row| event(&row.request_id, Some(&row.request_id)),
            )
            .await
            .unwrap();
        }
        publish_all_but(&l, &[]).await;
        let pruned = l.prune_finished(2 * DAY).await.unwrap();
        assert_eq!(pruned.requests, n as u64);
        assert_eq!(pruned.events, n as u64);
        assert_eq!(l.counts().await.unwrap(), []);
    }
}

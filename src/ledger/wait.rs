//! Requests waiting for their endpoint (design 1.7): a DELETE that could not reach a down
//! endpoint gives its attempt back, so endpoint trouble never brings a request closer to
//! `retries_exhausted`. The scheduler holds such requests while the endpoint is down.

use super::{Ledger, State, log_transition};

impl Ledger {
    /// A DELETE that met endpoint trouble: the attempt `begin_attempt` counted is given back,
    /// the request returns to `state` (where it was before the attempt) and is due at
    /// `due_at`. One transaction, with a history line saying why.
    pub async fn wait_for_endpoint(
        &self,
        request_id: &str,
        state: State,
        due_at: i64,
        note: &str,
        now: i64,
    ) -> anyhow::Result<()> {
        debug_assert!(!state.is_final());
        let mut tx = self.write().await?;
        let updated = sqlx::query(
            "UPDATE requests SET state = ?, attempts = MAX(attempts - 1, 0), due_at = ?,
                 lease_until = NULL,
                 updated_at = ? WHERE request_id = ? AND due_at IS NOT NULL",
        )
        .bind(state.as_str())
        .bind(due_at)
        .bind(now)
        .bind(request_id)
        .execute(&mut **tx)
        .await?
        .rows_affected();
        anyhow::ensure!(
            updated == 1,
            "request {request_id} is not waiting in the ledger"
        );
        log_transition(&mut tx, request_id, now, state, note).await?;
        tx.commit().await?;
        Ok(())
    }
}

-- Each outbox row backs off on its own: an event the broker returned (no queue bound for its
-- routing key) or nacked waits until its next_attempt_at, while the rows behind it are
-- published. 0 = due at once. The publisher takes due rows through outbox_due.
ALTER TABLE outbox ADD COLUMN next_attempt_at INTEGER NOT NULL DEFAULT 0;
DROP INDEX outbox_pending;
CREATE INDEX outbox_due ON outbox (next_attempt_at, seq) WHERE published_at IS NULL;

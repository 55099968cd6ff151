-- The ledger: one row per request, its history, and the outbox of events.
-- Times are Unix milliseconds (UTC). Forward-only: never edit a migration that has shipped.

CREATE TABLE requests (
    request_id      TEXT PRIMARY KEY NOT NULL,
    target_type     TEXT NOT NULL,
    target          TEXT NOT NULL,            -- the target's wire JSON
    endpoint        TEXT NOT NULL,            -- the configured endpoint it goes to
    correlation_id  TEXT,
    batch_id        TEXT,
    not_after       INTEGER,
    state           TEXT NOT NULL CHECK (state IN
                      ('accepted','submitting','retry_wait','polling','verifying','succeeded','failed')),
    due_at          INTEGER,                  -- when the engine next acts on it (NULL once final)
    attempts        INTEGER NOT NULL DEFAULT 0,   -- DELETE attempts sent
    poll_count      INTEGER NOT NULL DEFAULT 0,   -- polls / verifications since the task was recorded
    task_id         TEXT,                     -- remote task id
    task_session    TEXT,                     -- EM logon session GUID the task belongs to
    task_state      TEXT,
    task_operation  TEXT,
    task_success    INTEGER,
    task_message    TEXT,
    http_status     INTEGER,                  -- status of the DELETE answer
    last_error      TEXT,                     -- JSON {kind, http_status, code, message}
    outcome         TEXT,
    event_id        TEXT,                     -- the stable id of this request's outcome event
    received_at     INTEGER NOT NULL,
    submitted_at    INTEGER,
    finished_at     INTEGER,
    updated_at      INTEGER NOT NULL
);

CREATE INDEX requests_due ON requests (due_at) WHERE due_at IS NOT NULL;
CREATE INDEX requests_batch ON requests (batch_id);
CREATE INDEX requests_state ON requests (state);

CREATE TABLE transitions (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id  TEXT NOT NULL,
    at          INTEGER NOT NULL,
    state       TEXT NOT NULL,
    note        TEXT
);

CREATE INDEX transitions_request ON transitions (request_id, id);

CREATE TABLE outbox (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id     TEXT NOT NULL,
    request_id   TEXT,
    routing_key  TEXT NOT NULL,
    payload      TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    published_at INTEGER
);

CREATE INDEX outbox_pending ON outbox (seq) WHERE published_at IS NULL;

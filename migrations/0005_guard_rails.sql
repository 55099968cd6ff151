-- Guard rails and operator controls (design 1.6): replays, cancels, pauses, the rolling
-- delete cap and the failure breaker's window.

-- A replayed request runs again under the same id: each run is a generation, and its
-- outcome event's id differs from the earlier runs'.
ALTER TABLE requests ADD COLUMN generation INTEGER NOT NULL DEFAULT 0;
-- `reaper cancel`: when an operator asked for it (NULL: never), and whether a running remote
-- task is to be stopped too (`--stop-running`).
ALTER TABLE requests ADD COLUMN cancel_requested_at INTEGER;
ALTER TABLE requests ADD COLUMN stop_running INTEGER NOT NULL DEFAULT 0;

-- The failure breaker reads an endpoint's most recently finished requests.
CREATE INDEX requests_endpoint_finished ON requests (endpoint, finished_at)
    WHERE finished_at IS NOT NULL;

-- Endpoints and batches that send no DELETE for now (`reaper pause`, or the breaker). Polls
-- and verifications of their running tasks go on. `failures` / `finished` are the breaker's
-- figures when it paused the endpoint (NULL for an operator's pause).
CREATE TABLE pauses (
    scope     TEXT NOT NULL CHECK (scope IN ('endpoint', 'batch')),
    name      TEXT NOT NULL,
    reason    TEXT NOT NULL,
    since     INTEGER NOT NULL,
    failures  INTEGER,
    finished  INTEGER,
    PRIMARY KEY (scope, name)
);

-- Where each endpoint's breaker window starts (`reaper resume --endpoint` clears the window):
-- only requests that finished at or after `since` count.
CREATE TABLE breaker_resets (
    endpoint  TEXT PRIMARY KEY NOT NULL,
    since     INTEGER NOT NULL
);

-- Every DELETE sent, for the rolling per-endpoint cap (REAPER_MAX_DELETES_PER_HOUR); rows
-- older than an hour are pruned as new ones are written. Kept apart from `requests` so that
-- a restart does not reset the count and a pruned request still counts.
CREATE TABLE deletes (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    endpoint  TEXT NOT NULL,
    at        INTEGER NOT NULL
);

CREATE INDEX deletes_endpoint_at ON deletes (endpoint, at);

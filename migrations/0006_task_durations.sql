-- Polls that learn: how long each kind of EM task (an endpoint and a task `Operation`,
-- e.g. DeleteJob) took, as far as polls could tell, so that the polls of the next tasks of
-- that kind go near their expected end, also after a restart. Times are milliseconds from
-- the moment the DELETE was answered with the running task: it was still running at
-- `running_ms` (0 when no poll saw it running) and had ended by `ended_ms`. Only the most
-- recent samples of each kind are kept (older ones are pruned as new ones are written).
CREATE TABLE task_durations (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    endpoint    TEXT NOT NULL,
    operation   TEXT NOT NULL,
    running_ms  INTEGER NOT NULL CHECK (running_ms >= 0),
    ended_ms    INTEGER NOT NULL CHECK (ended_ms > running_ms),
    at          INTEGER NOT NULL
);

CREATE INDEX task_durations_kind ON task_durations (endpoint, operation, id);

-- When a poll last saw the request's task still running (the lower bound of its duration).
ALTER TABLE requests ADD COLUMN task_running_at INTEGER;

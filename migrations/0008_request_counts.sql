-- Requests per state and outcome, kept by triggers, so that `reaper status` and `/metrics`
-- answer at once however many finished requests the ledger holds (a GROUP BY over a million
-- rows takes seconds and holds the worker's one connection meanwhile). `outcome` is '' for
-- requests without one (NULL cannot be part of a primary key that upserts match).

CREATE TABLE request_counts (
    state    TEXT NOT NULL,
    outcome  TEXT NOT NULL DEFAULT '',
    n        INTEGER NOT NULL,
    PRIMARY KEY (state, outcome)
) WITHOUT ROWID;

INSERT INTO request_counts (state, outcome, n)
    SELECT state, COALESCE(outcome, ''), COUNT(*) FROM requests GROUP BY 1, 2;

CREATE TRIGGER request_counts_insert AFTER INSERT ON requests
BEGIN
    INSERT INTO request_counts (state, outcome, n) VALUES (NEW.state, COALESCE(NEW.outcome, ''), 1)
        ON CONFLICT (state, outcome) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER request_counts_delete AFTER DELETE ON requests
BEGIN
    UPDATE request_counts SET n = n - 1
        WHERE state = OLD.state AND outcome = COALESCE(OLD.outcome, '');
END;

CREATE TRIGGER request_counts_update AFTER UPDATE OF state, outcome ON requests
    WHEN OLD.state IS NOT NEW.state OR OLD.outcome IS NOT NEW.outcome
BEGIN
    UPDATE request_counts SET n = n - 1
        WHERE state = OLD.state AND outcome = COALESCE(OLD.outcome, '');
    INSERT INTO request_counts (state, outcome, n) VALUES (NEW.state, COALESCE(NEW.outcome, ''), 1)
        ON CONFLICT (state, outcome) DO UPDATE SET n = n + 1;
END;

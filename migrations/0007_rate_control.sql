-- The adaptive budget (issue 12): per endpoint, the limits its controller lowered below the
-- operator's ceilings after the endpoint signalled overload, so that a restart keeps them.
-- No row: the controller is dormant (the ceilings are in force).
CREATE TABLE rate_control (
    endpoint         TEXT PRIMARY KEY NOT NULL,
    -- Calls in flight at once (fractional: it grows by a fraction per clean answer).
    in_flight_limit  REAL NOT NULL,
    -- Calls per second; NULL when the endpoint has no rate ceiling.
    rate_per_sec     REAL,
    -- When the endpoint last signalled overload (429, 503, a timeout), Unix ms.
    last_signal_at   INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
);

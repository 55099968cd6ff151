-- Lets the scheduler take due follow-ups (polls, verifications) and due new work apart,
-- so that neither can starve the other.
CREATE INDEX requests_state_due ON requests (state, due_at) WHERE due_at IS NOT NULL;

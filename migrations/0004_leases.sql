-- A claimed row is leased apart from its due time, so that a restart releases only the
-- leases of steps that were in flight and every other request keeps its due time.
ALTER TABLE requests ADD COLUMN lease_until INTEGER;

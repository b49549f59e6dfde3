-- Safe changes (issue 6): a run whose plan crosses a safety threshold is not
-- applied. Its plan is stored in held_plans and the run's status is `held`
-- until `student-sync approve` applies exactly that plan (status becomes
-- `succeeded`) or `student-sync discard` drops it (status `discarded`); both
-- record who decided and when. Spot syncs of one student or one guardian are
-- runs with trigger `spot`.

ALTER TABLE sync_runs DROP CONSTRAINT sync_runs_status_check;
ALTER TABLE sync_runs ADD CONSTRAINT sync_runs_status_check
    CHECK (status IN ('running', 'succeeded', 'failed', 'interrupted', 'held', 'discarded'));
ALTER TABLE sync_runs DROP CONSTRAINT sync_runs_trigger_check;
ALTER TABLE sync_runs ADD CONSTRAINT sync_runs_trigger_check
    CHECK (trigger IN ('schedule', 'manual', 'resume', 'spot'));

ALTER TABLE sync_runs
    -- Which safety thresholds the plan crossed, and by how much (one line each).
    ADD COLUMN hold_reason  TEXT,
    -- The OS user who approved or discarded a held run, and when.
    ADD COLUMN decided_by   TEXT,
    ADD COLUMN decided_at   TIMESTAMPTZ,
    -- What a spot sync covered, e.g. `student 5001` or `guardian a@b.org`.
    ADD COLUMN scope        TEXT;

-- The stored plan of a held run, applied as-is on approval.
CREATE TABLE held_plans (
    run_id             BIGINT PRIMARY KEY REFERENCES sync_runs (id),
    -- The plan as JSON (bytes: a plan of a large district exceeds what JSONB
    -- handles comfortably, and nothing queries inside it).
    plan               BYTEA NOT NULL,
    -- md5 of every row of the tables the plan was computed from, read in the
    -- same snapshot: approval recomputes it and refuses when it differs.
    state_fingerprint  TEXT NOT NULL,
    created_at         TIMESTAMPTZ NOT NULL DEFAULT now()
);

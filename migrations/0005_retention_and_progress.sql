-- Ready for ops (issue 14): run history is pruned, and a run in progress
-- shows its counts so far.
--
-- Pruning removes old runs and their problems. Rows that merely name a run
-- (the live rows' last_changed_run / created_by_run, the access audit's
-- run_id) keep the number as it was: they are not foreign keys any more, so
-- removing a run never rewrites a live row (a held plan's fingerprint stays
-- valid) nor the append-only audit.
ALTER TABLE students DROP CONSTRAINT IF EXISTS students_last_changed_run_fkey;
ALTER TABLE student_contacts DROP CONSTRAINT IF EXISTS student_contacts_last_changed_run_fkey;
ALTER TABLE guardian_accounts DROP CONSTRAINT IF EXISTS guardian_accounts_last_changed_run_fkey;
ALTER TABLE users DROP CONSTRAINT IF EXISTS users_created_by_run_fkey;
ALTER TABLE connections DROP CONSTRAINT IF EXISTS connections_last_changed_run_fkey;
ALTER TABLE access_audit DROP CONSTRAINT IF EXISTS access_audit_run_id_fkey;

-- Finding runs by age, and audit rows by age when the audit is pruned.
CREATE INDEX sync_runs_started_at ON sync_runs (started_at);
CREATE INDEX access_audit_recorded_at ON access_audit (recorded_at);

-- The audit stays append-only, except for a prune that says so in its own
-- transaction (retention.audit_keep_days, off by default).
CREATE OR REPLACE FUNCTION access_audit_append_only() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE'
       AND current_setting('student_sync.pruning_audit', true) = 'on' THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'access_audit is append-only: % is not allowed', TG_OP;
END;
$$ LANGUAGE plpgsql;

-- A run's counts so far, written while it runs (outside its transaction):
-- {"phase": ..., "expected": N, "fetched": N, "written": N}.
ALTER TABLE sync_runs ADD COLUMN progress JSONB NOT NULL DEFAULT '{}'::jsonb;

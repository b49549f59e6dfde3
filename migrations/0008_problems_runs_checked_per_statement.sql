-- A run's problems must belong to a run (issue 13). The foreign key that said
-- so checked every row on its own as it was copied in: a run writes tens of
-- thousands of problems in one COPY, and the checks took more than half of
-- it (0.45 s of 0.76 s for 47,642 problems, measured in psql). The same rule
-- is now checked once per statement, by one join over the rows written, and
-- kept on the other side by refusing to delete a run that has problems or to
-- change a run's id. As the foreign key did, the check locks the runs it
-- finds (FOR KEY SHARE), so a run cannot be deleted while its problems are
-- being written. Two differences from the key, neither met by student-sync:
-- a transaction that deletes runs must be READ COMMITTED (in REPEATABLE
-- READ its check would not see problems committed after its snapshot;
-- `student-sync prune` deletes the problems first, in READ COMMITTED), and
-- TRUNCATE skips the triggers (truncate run_problems with sync_runs, as
-- the key required).
ALTER TABLE run_problems DROP CONSTRAINT run_problems_run_id_fkey;

CREATE FUNCTION run_problems_runs_exist() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    missing BIGINT;
BEGIN
    PERFORM 1 FROM sync_runs
        WHERE id IN (SELECT DISTINCT run_id FROM written_problems)
        FOR KEY SHARE;
    SELECT w.run_id INTO missing
        FROM written_problems w
        WHERE NOT EXISTS (SELECT 1 FROM sync_runs r WHERE r.id = w.run_id)
        LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'a problem was written for run %, which is not in sync_runs: problems are written by their own run, so this is a bug in what wrote them; nothing of that statement was kept', missing
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER run_problems_runs_exist_on_insert
    AFTER INSERT ON run_problems
    REFERENCING NEW TABLE AS written_problems
    FOR EACH STATEMENT EXECUTE FUNCTION run_problems_runs_exist();

CREATE TRIGGER run_problems_runs_exist_on_update
    AFTER UPDATE ON run_problems
    REFERENCING NEW TABLE AS written_problems
    FOR EACH STATEMENT EXECUTE FUNCTION run_problems_runs_exist();

CREATE FUNCTION sync_runs_keep_problems() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    kept BIGINT;
BEGIN
    SELECT p.run_id INTO kept
        FROM run_problems p
        WHERE p.run_id IN (SELECT id FROM deleted_runs)
        LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'run % still has problems in run_problems: delete its problems first (student-sync prune removes old runs with their problems)', kept
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER sync_runs_keep_problems
    AFTER DELETE ON sync_runs
    REFERENCING OLD TABLE AS deleted_runs
    FOR EACH STATEMENT EXECUTE FUNCTION sync_runs_keep_problems();

CREATE FUNCTION sync_runs_id_fixed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'a run''s id never changes (run %): its problems and held plan name it', OLD.id
        USING ERRCODE = 'restrict_violation';
END
$$;

CREATE TRIGGER sync_runs_id_fixed
    BEFORE UPDATE ON sync_runs
    FOR EACH ROW WHEN (OLD.id IS DISTINCT FROM NEW.id)
    EXECUTE FUNCTION sync_runs_id_fixed();

-- One writer, provably (issue 12): the database records which district it
-- belongs to. The first command that writes records the `district` setting
-- here; every command afterwards refuses to work with a different one, so
-- two districts' settings pointing at one database cannot both write to it.
CREATE TABLE database_district (
    -- Exactly one row: the key can only be true.
    only_row     BOOLEAN PRIMARY KEY DEFAULT true CHECK (only_row),
    district     TEXT NOT NULL CHECK (district <> ''),
    recorded_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

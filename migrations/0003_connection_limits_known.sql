-- A connection's limits are the rules' codes, like its tier, case and origin:
-- the database refuses any other value, so reading the stored state never
-- meets a code the rules do not know.
ALTER TABLE connections
    ADD CONSTRAINT connections_limits_known CHECK (limits <@ ARRAY['R4', 'R5']::text[]);

-- The access audit stores codes and ids (issue 13): `reason_codes` holds a
-- short JSON array (the row's guardian account and email once, then one
-- code per verdict; docs/access-rules.md, "What the audit stores"), and the
-- sentences are rendered from it when the audit is read. Rows written
-- before keep their prose in `reasons` and are shown as they are; a row the
-- codes cannot say exactly is still written with its prose.
ALTER TABLE access_audit ALTER COLUMN reasons DROP NOT NULL;
ALTER TABLE access_audit ADD COLUMN reason_codes JSON;
ALTER TABLE access_audit ADD CONSTRAINT access_audit_has_reasons
    CHECK (reasons IS NOT NULL OR reason_codes IS NOT NULL);
-- The append-only trigger (access_audit_no_change, 0001/0005) is untouched.

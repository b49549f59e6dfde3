-- Compact run problems (issue 13): the rules' findings, most of a large
-- run's problems, are stored as their kind and facts, and their words are
-- rendered when read (src/store/write/problems.rs). A finding keeps its ids
-- in numeric columns, the email it is about in `value` and a user's login
-- in `login`, with `message` and `record_id` NULL. Every other problem, and
-- every row written before this migration, keeps its words in `message`.
ALTER TABLE run_problems
    ALTER COLUMN message DROP NOT NULL,
    ADD COLUMN guardian_id  BIGINT,
    ADD COLUMN student_dcid BIGINT,
    ADD COLUMN user_id      BIGINT,
    ADD COLUMN login        TEXT;

-- Only a kind the renderer knows may be stored without words. NOT VALID:
-- the rows already there all have their words, so the check need not scan
-- them (it still holds for every row written from now on).
ALTER TABLE run_problems
    ADD CONSTRAINT run_problems_words_or_facts CHECK (
        message IS NOT NULL
        OR kind IN ('row_for_student_outside_sync_set', 'link_without_matching_contact',
                    'unverified_email_match', 'email_differs', 'account_without_email',
                    'orphaned_from_powerschool', 'form_creator_only')
    ) NOT VALID;

-- student-sync schema: the PowerSchool mirror (students, contacts, guardian
-- links), SchoolEngage's own data (users, connections, forms), and the run
-- history with its problems and the append-only access audit.

CREATE TABLE sync_runs (
    id           BIGSERIAL PRIMARY KEY,
    trigger      TEXT NOT NULL CHECK (trigger IN ('schedule', 'manual', 'resume')),
    -- The district night the run belongs to (local date of its fire time).
    night        DATE NOT NULL,
    started_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    finished_at  TIMESTAMPTZ,
    phase        TEXT NOT NULL DEFAULT 'fetching'
                 CHECK (phase IN ('fetching', 'planning', 'applying', 'done')),
    status       TEXT NOT NULL DEFAULT 'running'
                 CHECK (status IN ('running', 'succeeded', 'failed', 'interrupted')),
    counts       JSONB NOT NULL DEFAULT '{}'::jsonb,
    report       JSONB NOT NULL DEFAULT '{}'::jsonb,
    error        TEXT,
    host         TEXT,
    pid          INTEGER
);
CREATE INDEX sync_runs_status ON sync_runs (status, id);

-- Students as PowerSchool holds them; every column but the timestamps is synced.
CREATE TABLE students (
    dcid               BIGINT PRIMARY KEY,
    powerschool_id     BIGINT,
    student_number     TEXT,
    first_name         TEXT,
    last_name          TEXT,
    grade_level        BIGINT,
    school_number      BIGINT NOT NULL,
    enroll_status      BIGINT NOT NULL,
    entry_date         DATE,
    org_email          TEXT,
    personal_email     TEXT,
    independent        BOOLEAN NOT NULL DEFAULT false,
    -- The student's own login (the configured login field), when it holds an email.
    login_email        TEXT,
    -- False once the student has left the sync set (withdrawn, graduated, …).
    in_sync_set        BOOLEAN NOT NULL DEFAULT true,
    created_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_changed_run   BIGINT REFERENCES sync_runs (id)
);

-- Contacts of students (StudentContactAssoc / StudentContactDetail).
CREATE TABLE student_contacts (
    student_dcid        BIGINT NOT NULL,
    person_id           BIGINT NOT NULL,
    first_name          TEXT,
    last_name           TEXT,
    email               TEXT,
    is_decision_making  BOOLEAN NOT NULL,
    created_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_changed_run    BIGINT REFERENCES sync_runs (id),
    PRIMARY KEY (student_dcid, person_id)
);

-- Rows of the guardian PowerQuery: a Parent Portal account linked to a student.
CREATE TABLE guardian_accounts (
    guardian_id         BIGINT NOT NULL,
    student_dcid        BIGINT NOT NULL,
    email               TEXT,
    first_name          TEXT,
    last_name           TEXT,
    web_access_account  BOOLEAN NOT NULL,
    created_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_changed_run    BIGINT REFERENCES sync_runs (id),
    PRIMARY KEY (guardian_id, student_dcid)
);
CREATE INDEX guardian_accounts_student ON guardian_accounts (student_dcid);

-- SchoolEngage logins. The email and its verified flag belong to SchoolEngage.
CREATE TABLE users (
    id                       BIGSERIAL PRIMARY KEY,
    email                    TEXT NOT NULL UNIQUE,
    first_name               TEXT,
    last_name                TEXT,
    email_verified           BOOLEAN NOT NULL DEFAULT false,
    incomplete               BOOLEAN NOT NULL DEFAULT false,
    powerschool_guardian_id  BIGINT,
    created_by_run           BIGINT REFERENCES sync_runs (id),
    created_at               TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at               TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX users_guardian ON users (powerschool_guardian_id);

-- Student–guardian relationships in SchoolEngage, with the access decision.
CREATE TABLE connections (
    id                       BIGSERIAL PRIMARY KEY,
    student_dcid             BIGINT NOT NULL,
    user_id                  BIGINT NOT NULL REFERENCES users (id),
    tier                     TEXT NOT NULL
                             CHECK (tier IN ('full', 'restricted', 'read_only', 'incomplete')),
    case_code                TEXT CHECK (case_code IN ('synced', 'matched_form_creator', 'created',
                                                       'schoolengage_only', 'unlinked_returning_parent')),
    limits                   TEXT[] NOT NULL DEFAULT '{}',
    origin                   TEXT NOT NULL CHECK (origin IN ('admin', 'form', 'powerschool')),
    present_in_powerschool   BOOLEAN NOT NULL DEFAULT false,
    powerschool_guardian_id  BIGINT,
    last_changed_run         BIGINT REFERENCES sync_runs (id),
    created_at               TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at               TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (student_dcid, user_id)
);
CREATE INDEX connections_user ON connections (user_id);

-- Forms a user created on behalf of a student (SchoolEngage-owned).
CREATE TABLE forms (
    id                  BIGSERIAL PRIMARY KEY,
    student_dcid        BIGINT NOT NULL,
    created_by_user_id  BIGINT NOT NULL REFERENCES users (id),
    title               TEXT NOT NULL DEFAULT 'Registration',
    created_at          TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX forms_student ON forms (student_dcid);

-- Records a run could not use, and what it reported about them.
CREATE TABLE run_problems (
    id          BIGSERIAL PRIMARY KEY,
    run_id      BIGINT NOT NULL REFERENCES sync_runs (id),
    kind        TEXT NOT NULL,
    query       TEXT,
    record_id   TEXT,
    field       TEXT,
    value       TEXT,
    message     TEXT NOT NULL
);
CREATE INDEX run_problems_run ON run_problems (run_id);

-- Every change of a connection's access, never updated or deleted.
CREATE TABLE access_audit (
    id             BIGSERIAL PRIMARY KEY,
    connection_id  BIGINT,
    student_dcid   BIGINT NOT NULL,
    user_id        BIGINT NOT NULL,
    tier_before    TEXT,
    tier_after     TEXT,
    case_before    TEXT,
    case_after     TEXT,
    reasons        JSONB NOT NULL,
    run_id         BIGINT REFERENCES sync_runs (id),
    recorded_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX access_audit_pair ON access_audit (student_dcid, user_id, id);

CREATE FUNCTION access_audit_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'access_audit is append-only: % is not allowed', TG_OP;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER access_audit_no_change
    BEFORE UPDATE OR DELETE ON access_audit
    FOR EACH ROW EXECUTE FUNCTION access_audit_append_only();

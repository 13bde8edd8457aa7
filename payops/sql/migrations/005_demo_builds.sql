-- demo_builds: what `payops demo` made, so `payops demo --replace` can tell a demo database
-- from one holding synced data, decisions or audit rows (which it refuses to delete).
CREATE TABLE IF NOT EXISTS demo_builds (
    seed            BIGINT NOT NULL,
    as_of           DATE NOT NULL,
    demo_now        TIMESTAMPTZ NOT NULL,
    audit_rows      BIGINT NOT NULL,
    refund_requests BIGINT NOT NULL,
    events          BIGINT NOT NULL
);

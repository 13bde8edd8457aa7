-- The data contract analysts rely on (documented in docs/schema.md).
-- Money: BIGINT in the currency's minor unit. Time: TIMESTAMPTZ (UTC).
-- Every Stripe table keeps the whole object in raw (JSON), when payops stored it
-- (synced_at) and the version it came from (version, epoch microseconds: an event's
-- created time or the moment the object was fetched); newer-wins compares version.

CREATE TABLE IF NOT EXISTS customers (
    id           VARCHAR PRIMARY KEY,
    email        VARCHAR,
    name         VARCHAR,
    phone        VARCHAR,
    created      TIMESTAMPTZ,
    deleted      BOOLEAN NOT NULL DEFAULT false,
    livemode     BOOLEAN,
    metadata     JSON,
    raw          JSON NOT NULL,
    version      BIGINT NOT NULL,
    synced_at    TIMESTAMPTZ NOT NULL
);

CREATE TABLE IF NOT EXISTS payment_intents (
    id                     VARCHAR PRIMARY KEY,
    customer               VARCHAR,
    amount                 BIGINT,
    amount_received        BIGINT,
    currency               VARCHAR,
    status                 VARCHAR,
    created                TIMESTAMPTZ,
    latest_charge          VARCHAR,
    application_fee_amount BIGINT,
    booking_id             VARCHAR,
    tutor_id               VARCHAR,
    livemode               BOOLEAN,
    metadata               JSON,
    raw                    JSON NOT NULL,
    version                BIGINT NOT NULL,
    synced_at              TIMESTAMPTZ NOT NULL
);

CREATE TABLE IF NOT EXISTS charges (
    id                     VARCHAR PRIMARY KEY,
    payment_intent         VARCHAR,
    customer               VARCHAR,
    amount                 BIGINT,
    amount_captured        BIGINT,
    amount_refunded        BIGINT,
    currency               VARCHAR,
    status                 VARCHAR,
    paid                   BOOLEAN,
    refunded               BOOLEAN,
    disputed               BOOLEAN,
    captured               BOOLEAN,
    failure_code           VARCHAR,
    failure_message        VARCHAR,
    balance_transaction    VARCHAR,
    payment_method_type    VARCHAR,
    card_brand             VARCHAR,
    application_fee_amount BIGINT,
    livemode               BOOLEAN,
    metadata               JSON,
    created                TIMESTAMPTZ,
    raw                    JSON NOT NULL,
    version                BIGINT NOT NULL,
    synced_at              TIMESTAMPTZ NOT NULL
);

CREATE TABLE IF NOT EXISTS refunds (
    id                  VARCHAR PRIMARY KEY,
    charge              VARCHAR,
    payment_intent      VARCHAR,
    amount              BIGINT,
    currency            VARCHAR,
    status              VARCHAR,
    reason              VARCHAR,
    failure_reason      VARCHAR,
    balance_transaction VARCHAR,
    payops_request_id   BIGINT,
    created             TIMESTAMPTZ,
    metadata            JSON,
    raw                 JSON NOT NULL,
    version             BIGINT NOT NULL,
    synced_at           TIMESTAMPTZ NOT NULL
);

CREATE TABLE IF NOT EXISTS balance_transactions (
    id                 VARCHAR PRIMARY KEY,
    source             VARCHAR,
    type               VARCHAR,
    reporting_category VARCHAR,
    amount             BIGINT,
    fee                BIGINT,
    net                BIGINT,
    currency           VARCHAR,
    status             VARCHAR,
    created            TIMESTAMPTZ,
    available_on       TIMESTAMPTZ,
    exchange_rate      DOUBLE,
    fee_details        JSON,
    raw                JSON NOT NULL,
    version            BIGINT NOT NULL,
    synced_at          TIMESTAMPTZ NOT NULL
);

CREATE TABLE IF NOT EXISTS disputes (
    id                  VARCHAR PRIMARY KEY,
    charge              VARCHAR,
    payment_intent      VARCHAR,
    amount              BIGINT,
    currency            VARCHAR,
    status              VARCHAR,
    reason              VARCHAR,
    created             TIMESTAMPTZ,
    raw                 JSON NOT NULL,
    version             BIGINT NOT NULL,
    synced_at           TIMESTAMPTZ NOT NULL
);

CREATE TABLE IF NOT EXISTS payouts (
    id           VARCHAR PRIMARY KEY,
    amount       BIGINT,
    currency     VARCHAR,
    status       VARCHAR,
    arrival_date TIMESTAMPTZ,
    created      TIMESTAMPTZ,
    raw          JSON NOT NULL,
    version      BIGINT NOT NULL,
    synced_at    TIMESTAMPTZ NOT NULL
);

CREATE TABLE IF NOT EXISTS events (
    id          VARCHAR PRIMARY KEY,
    type        VARCHAR NOT NULL,
    created     TIMESTAMPTZ NOT NULL,
    api_version VARCHAR,
    object_id   VARCHAR,
    object_type VARCHAR,
    applied_at  TIMESTAMPTZ NOT NULL,
    raw         JSON NOT NULL
);

CREATE TABLE IF NOT EXISTS bookings (
    booking_id     VARCHAR PRIMARY KEY,
    payment_intent VARCHAR,
    customer       VARCHAR,
    tutor_id       VARCHAR,
    session_start  TIMESTAMPTZ,
    status         VARCHAR NOT NULL CHECK (status IN ('scheduled', 'completed', 'cancelled', 'no_show')),
    updated_at     TIMESTAMPTZ NOT NULL
);

CREATE SEQUENCE IF NOT EXISTS refund_request_ids START 1;

CREATE TABLE IF NOT EXISTS refund_requests (
    id                BIGINT PRIMARY KEY DEFAULT nextval('refund_request_ids'),
    payment_intent    VARCHAR,
    charge            VARCHAR,
    customer          VARCHAR,
    amount            BIGINT NOT NULL CHECK (amount > 0),
    currency          VARCHAR NOT NULL,
    reason            VARCHAR NOT NULL,
    note              VARCHAR,
    status            VARCHAR NOT NULL CHECK (status IN ('PENDING', 'APPROVED', 'REJECTED', 'PROCESSING', 'PROCESSED', 'FAILED')),
    requested_by      VARCHAR NOT NULL,
    requested_at      TIMESTAMPTZ NOT NULL,
    first_approver    VARCHAR,
    first_approved_at TIMESTAMPTZ,
    decided_by        VARCHAR,
    decided_at        TIMESTAMPTZ,
    decision_note     VARCHAR,
    second_approver   VARCHAR,
    stripe_refund_id  VARCHAR,
    processed_at      TIMESTAMPTZ,
    failure_message   VARCHAR,
    attempts          INTEGER NOT NULL DEFAULT 0,
    updated_at        TIMESTAMPTZ NOT NULL
);

CREATE SEQUENCE IF NOT EXISTS audit_log_ids START 1;

CREATE TABLE IF NOT EXISTS audit_log (
    id        BIGINT PRIMARY KEY DEFAULT nextval('audit_log_ids'),
    "at"      TIMESTAMPTZ NOT NULL,
    actor     VARCHAR NOT NULL,
    action    VARCHAR NOT NULL,
    entity    VARCHAR NOT NULL,
    entity_id VARCHAR,
    "before"  JSON,
    after     JSON,
    note      VARCHAR,
    prev_hash VARCHAR,
    hash      VARCHAR
);

CREATE TABLE IF NOT EXISTS daily_metrics (
    day                       DATE NOT NULL,
    currency                  VARCHAR NOT NULL,
    attempts                  BIGINT NOT NULL DEFAULT 0,
    succeeded                 BIGINT NOT NULL DEFAULT 0,
    failed                    BIGINT NOT NULL DEFAULT 0,
    success_rate              DOUBLE,
    gross_volume              BIGINT NOT NULL DEFAULT 0,
    refunded_amount           BIGINT NOT NULL DEFAULT 0,
    disputed_amount           BIGINT NOT NULL DEFAULT 0,
    stripe_fees               BIGINT NOT NULL DEFAULT 0,
    platform_fees             BIGINT NOT NULL DEFAULT 0,
    net                       BIGINT NOT NULL DEFAULT 0,
    intents_created           BIGINT NOT NULL DEFAULT 0,
    intents_succeeded         BIGINT NOT NULL DEFAULT 0,
    conversion_rate           DOUBLE,
    requests_opened           BIGINT NOT NULL DEFAULT 0,
    requests_decided          BIGINT NOT NULL DEFAULT 0,
    requests_processed        BIGINT NOT NULL DEFAULT 0,
    processing_hours_median   DOUBLE,
    processing_hours_p90      DOUBLE,
    pending_requests          BIGINT NOT NULL DEFAULT 0,
    timezone                  VARCHAR NOT NULL,
    computed_at               TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (day, currency)
);

CREATE TABLE IF NOT EXISTS sync_state (
    stream       VARCHAR NOT NULL,
    "key"        VARCHAR NOT NULL,
    window_start BIGINT,
    window_end   BIGINT,
    cursor       VARCHAR,
    done         BOOLEAN NOT NULL DEFAULT false,
    objects      BIGINT NOT NULL DEFAULT 0,
    extra        JSON,
    updated_at   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (stream, "key")
);

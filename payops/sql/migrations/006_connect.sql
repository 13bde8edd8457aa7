-- Stripe Connect (issue 12): the tutors' transfers (with their reversals), the platform's
-- application fees (with their refunds), and which balance transactions each payout settled.
-- Reversals and fee refunds arrive inside their parent object (Stripe's embedded lists), so
-- they are views over the parent's raw JSON: one stored copy, always as new as the parent.

CREATE TABLE IF NOT EXISTS transfers (
    id                  VARCHAR PRIMARY KEY,
    amount              BIGINT,
    amount_reversed     BIGINT,
    currency            VARCHAR,
    destination         VARCHAR,
    source_transaction  VARCHAR,
    balance_transaction VARCHAR,
    reversed            BOOLEAN,
    transfer_group      VARCHAR,
    created             TIMESTAMPTZ,
    livemode            BOOLEAN,
    metadata            JSON,
    raw                 JSON NOT NULL,
    version             BIGINT NOT NULL,
    synced_at           TIMESTAMPTZ NOT NULL,
    fingerprint         UBIGINT
);

CREATE TABLE IF NOT EXISTS application_fees (
    id                  VARCHAR PRIMARY KEY,
    account             VARCHAR,
    charge              VARCHAR,
    amount              BIGINT,
    amount_refunded     BIGINT,
    currency            VARCHAR,
    refunded            BOOLEAN,
    balance_transaction VARCHAR,
    created             TIMESTAMPTZ,
    livemode            BOOLEAN,
    raw                 JSON NOT NULL,
    version             BIGINT NOT NULL,
    synced_at           TIMESTAMPTZ NOT NULL,
    fingerprint         UBIGINT
);

-- payout <-> the balance transactions it settled (GET /v1/balance_transactions?payout=po_...),
-- the payout's own balance transaction included
CREATE TABLE IF NOT EXISTS payout_transactions (
    payout              VARCHAR NOT NULL,
    balance_transaction VARCHAR NOT NULL,
    synced_at           TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (payout, balance_transaction)
);

CREATE OR REPLACE VIEW transfer_reversals AS
SELECT r->>'$.id' AS id, t.id AS transfer, CAST(r->>'$.amount' AS BIGINT) AS amount, t.currency,
       r->>'$.balance_transaction' AS balance_transaction, r->>'$.source_refund' AS source_refund,
       to_timestamp(CAST(r->>'$.created' AS BIGINT)) AS created
FROM transfers t, unnest(CAST(t.raw->'$.reversals.data' AS JSON[])) AS u(r);

CREATE OR REPLACE VIEW application_fee_refunds AS
SELECT r->>'$.id' AS id, f.id AS fee, CAST(r->>'$.amount' AS BIGINT) AS amount, f.currency,
       r->>'$.balance_transaction' AS balance_transaction,
       to_timestamp(CAST(r->>'$.created' AS BIGINT)) AS created
FROM application_fees f, unnest(CAST(f.raw->'$.refunds.data' AS JSON[])) AS u(r);

-- fingerprint = hash(raw): lets ingest tell "changed" from "same content again" by reading
-- one fixed-width column instead of every stored raw JSON text.
ALTER TABLE customers            ADD COLUMN IF NOT EXISTS fingerprint UBIGINT;
ALTER TABLE payment_intents      ADD COLUMN IF NOT EXISTS fingerprint UBIGINT;
ALTER TABLE charges              ADD COLUMN IF NOT EXISTS fingerprint UBIGINT;
ALTER TABLE refunds              ADD COLUMN IF NOT EXISTS fingerprint UBIGINT;
ALTER TABLE balance_transactions ADD COLUMN IF NOT EXISTS fingerprint UBIGINT;
ALTER TABLE disputes             ADD COLUMN IF NOT EXISTS fingerprint UBIGINT;
ALTER TABLE payouts              ADD COLUMN IF NOT EXISTS fingerprint UBIGINT;
UPDATE customers            SET fingerprint = hash(raw) WHERE fingerprint IS NULL;
UPDATE payment_intents      SET fingerprint = hash(raw) WHERE fingerprint IS NULL;
UPDATE charges              SET fingerprint = hash(raw) WHERE fingerprint IS NULL;
UPDATE refunds              SET fingerprint = hash(raw) WHERE fingerprint IS NULL;
UPDATE balance_transactions SET fingerprint = hash(raw) WHERE fingerprint IS NULL;
UPDATE disputes             SET fingerprint = hash(raw) WHERE fingerprint IS NULL;
UPDATE payouts              SET fingerprint = hash(raw) WHERE fingerprint IS NULL;

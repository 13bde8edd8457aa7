-- Refund workflow (issue 4): how many times a FAILED request was sent back for a retry.
-- Each retry generation uses its own Stripe idempotency key (payops-refund-<id>, then
-- payops-refund-<id>-retry<n>), because Stripe replays a stored error for a reused key.
ALTER TABLE refund_requests ADD COLUMN IF NOT EXISTS retries INTEGER DEFAULT 0;

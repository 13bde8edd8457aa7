-- daily_metrics gains the money waterfall of payops.ledger (issue 12), every term from balance
-- transactions created that day: ledger_gross_volume = ledger_refunds + ledger_dispute_losses +
-- ledger_stripe_fees + ledger_tutors_share + ledger_platform_net_revenue, exactly.
-- Filled by the next `payops analytics` (compute_daily); 0 until then.
ALTER TABLE daily_metrics ADD COLUMN IF NOT EXISTS ledger_gross_volume BIGINT DEFAULT 0;
ALTER TABLE daily_metrics ADD COLUMN IF NOT EXISTS ledger_refunds BIGINT DEFAULT 0;
ALTER TABLE daily_metrics ADD COLUMN IF NOT EXISTS ledger_dispute_losses BIGINT DEFAULT 0;
ALTER TABLE daily_metrics ADD COLUMN IF NOT EXISTS ledger_stripe_fees BIGINT DEFAULT 0;
ALTER TABLE daily_metrics ADD COLUMN IF NOT EXISTS ledger_tutors_share BIGINT DEFAULT 0;
ALTER TABLE daily_metrics ADD COLUMN IF NOT EXISTS ledger_platform_net_revenue BIGINT DEFAULT 0;
ALTER TABLE daily_metrics ADD COLUMN IF NOT EXISTS ledger_other_net BIGINT DEFAULT 0;

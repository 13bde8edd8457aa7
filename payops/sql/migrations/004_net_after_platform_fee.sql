-- daily_metrics.net_after_platform_fee = net - platform_fees (payops.money.FIGURES): the
-- part of gross volume left after refunds, disputes, Stripe fees and the platform's fee, so
-- that refunds + disputes + Stripe fees + platform fees + net_after_platform_fee = gross.
ALTER TABLE daily_metrics ADD COLUMN IF NOT EXISTS net_after_platform_fee BIGINT DEFAULT 0;
UPDATE daily_metrics SET net_after_platform_fee = net - platform_fees;

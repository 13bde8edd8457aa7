-- daily_metrics for the reporting days [$start_day, $end_day] in time zone $tz, per currency.
-- Parameters: $lo / $hi (TIMESTAMPTZ, UTC bounds of those local days), $tz, $start_day /
-- $end_day (DATE), $bucket_s / $bucket_us (the UTC bucket size in seconds / microseconds,
-- see below). The fields in braces are filled in by payops.metrics.daily_metrics_query:
-- the money rules' SQL from payops.money (platform fee, net, net after platform fee), the
-- refund-request rules' SQL from payops.refunds (decided at, pending at a moment), and the
-- UTC end of each local day of the range. This file holds no copy of any of those rules.
--
-- Set-based: one GROUP BY per source table, joined on (day, currency). The big tables are
-- first grouped by UTC time bucket ($bucket_s seconds: a day when the zone is UTC, an hour
-- when all its offsets in the range are whole hours, else a quarter-hour) using cheap
-- integer maths on the stored microseconds; only those buckets are converted to local days.
-- Every time zone in use since the 1970s has offsets that are whole quarter-hours, so a
-- bucket never straddles two local days, and the time-zone conversion runs on thousands of
-- buckets, not on every row.
WITH
ch_q AS (
    SELECT currency, q,
           count(*) AS attempts,
           count(*) FILTER (WHERE ok) AS succeeded,
           count(*) FILTER (WHERE status = 'failed') AS failed,
           sum(captured) FILTER (WHERE ok) AS gross_volume,
           -- payops.money.platform_fee_sql: application_fee_amount, else the rate, half-even
           sum({platform_fee}) FILTER (WHERE ok) AS platform_fees
    FROM (SELECT currency, status, application_fee_amount, {gross_charge} AS ok,
                 epoch_us(created) // $bucket_us AS q,
                 coalesce(amount_captured, 0) AS captured
          FROM charges WHERE created >= $lo AND created < $hi)
    GROUP BY currency, q
),
pi_q AS (
    SELECT currency, epoch_us(created) // $bucket_us AS q,
           count(*) AS intents_created,
           count(*) FILTER (WHERE status = 'succeeded') AS intents_succeeded
    FROM payment_intents WHERE created >= $lo AND created < $hi
    GROUP BY ALL
),
re_q AS (
    SELECT currency, epoch_us(created) // $bucket_us AS q, sum(amount) AS refunded_amount
    FROM refunds WHERE created >= $lo AND created < $hi AND {refunded}
    GROUP BY ALL
),
dp_q AS (
    -- payops.money: chargebacks on the day they opened (inquiries move no money), less a won
    -- dispute's reinstated amount on the day of its balance transaction
    SELECT currency, q, sum(amount) AS disputed_amount
    FROM (SELECT currency, epoch_us(created) // $bucket_us AS q, amount
          FROM disputes WHERE created >= $lo AND created < $hi AND {chargeback}
          UNION ALL
          SELECT currency, epoch_us(created) // $bucket_us AS q, -amount
          FROM balance_transactions WHERE created >= $lo AND created < $hi AND {reinstated})
    GROUP BY ALL
),
-- the money waterfall: every term from balance transactions, its SQL rendered in from payops.ledger
bt_q AS (
    SELECT currency, epoch_us(created) // $bucket_us AS q, sum(fee) AS stripe_fees,
           {ledger_sums}
    FROM balance_transactions WHERE created >= $lo AND created < $hi
    GROUP BY ALL
),
-- bucket -> local day, computed once per distinct bucket
qs AS (
    SELECT q, (to_timestamp(q * $bucket_s) AT TIME ZONE $tz)::DATE AS day
    FROM (SELECT q FROM ch_q UNION SELECT q FROM pi_q UNION SELECT q FROM re_q
          UNION SELECT q FROM dp_q UNION SELECT q FROM bt_q)
),
ch AS (SELECT day, currency, sum(attempts) AS attempts, sum(succeeded) AS succeeded,
              sum(failed) AS failed, sum(gross_volume) AS gross_volume,
              sum(platform_fees) AS platform_fees
       FROM ch_q JOIN qs USING (q) GROUP BY ALL),
pi AS (SELECT day, currency, sum(intents_created) AS intents_created,
              sum(intents_succeeded) AS intents_succeeded
       FROM pi_q JOIN qs USING (q) GROUP BY ALL),
re AS (SELECT day, currency, sum(refunded_amount) AS refunded_amount FROM re_q JOIN qs USING (q) GROUP BY ALL),
dp AS (SELECT day, currency, sum(disputed_amount) AS disputed_amount FROM dp_q JOIN qs USING (q) GROUP BY ALL),
bt AS (SELECT day, currency, sum(stripe_fees) AS stripe_fees, {ledger_totals} FROM bt_q JOIN qs USING (q) GROUP BY ALL),
-- refund requests are few (one per refund asked for): plain per-row conversion is fine
rr AS (
    SELECT r.currency, r.requested_at, r.processed_at, r.status, {decided_at} AS decided
    FROM refund_requests r
),
rq_open AS (
    SELECT (requested_at AT TIME ZONE $tz)::DATE AS day, currency, count(*) AS requests_opened
    FROM rr WHERE requested_at >= $lo AND requested_at < $hi GROUP BY ALL
),
rq_dec AS (
    SELECT (decided AT TIME ZONE $tz)::DATE AS day, currency, count(*) AS requests_decided
    FROM rr WHERE decided >= $lo AND decided < $hi GROUP BY ALL
),
rq_proc AS (
    SELECT (processed_at AT TIME ZONE $tz)::DATE AS day, currency,
           count(*) AS requests_processed,
           median(hours) AS processing_hours_median,
           quantile_cont(hours, 0.9) AS processing_hours_p90
    FROM ({processed_hours})
    GROUP BY ALL
),
keys AS (
    SELECT day, currency FROM ch UNION SELECT day, currency FROM pi
    UNION SELECT day, currency FROM re UNION SELECT day, currency FROM dp
    UNION SELECT day, currency FROM bt UNION SELECT day, currency FROM rq_open
    UNION SELECT day, currency FROM rq_dec UNION SELECT day, currency FROM rq_proc
),
-- pending at the end of each local day: payops.refunds' pending-at rule at that day's end
day_ends AS ({day_ends}),
pend AS (
    SELECT d.day, r.currency, count(*) AS pending_requests
    FROM day_ends d JOIN refund_requests r ON {pending_at_day_end}
    GROUP BY ALL
)
SELECT k.day,
       k.currency,
       coalesce(ch.attempts, 0)::BIGINT AS attempts,
       coalesce(ch.succeeded, 0)::BIGINT AS succeeded,
       coalesce(ch.failed, 0)::BIGINT AS failed,
       ch.succeeded / nullif(ch.succeeded + ch.failed, 0) AS success_rate,
       coalesce(ch.gross_volume, 0)::BIGINT AS gross_volume,
       coalesce(re.refunded_amount, 0)::BIGINT AS refunded_amount,
       coalesce(dp.disputed_amount, 0)::BIGINT AS disputed_amount,
       coalesce(bt.stripe_fees, 0)::BIGINT AS stripe_fees,
       {ledger_columns},
       coalesce(ch.platform_fees, 0)::BIGINT AS platform_fees,
       {net}::BIGINT AS net,
       {net_after_platform_fee}::BIGINT AS net_after_platform_fee,
       coalesce(pi.intents_created, 0)::BIGINT AS intents_created,
       coalesce(pi.intents_succeeded, 0)::BIGINT AS intents_succeeded,
       pi.intents_succeeded / nullif(pi.intents_created, 0) AS conversion_rate,
       coalesce(rq_open.requests_opened, 0)::BIGINT AS requests_opened,
       coalesce(rq_dec.requests_decided, 0)::BIGINT AS requests_decided,
       coalesce(rq_proc.requests_processed, 0)::BIGINT AS requests_processed,
       rq_proc.processing_hours_median::DOUBLE AS processing_hours_median,
       rq_proc.processing_hours_p90::DOUBLE AS processing_hours_p90,
       coalesce(pend.pending_requests, 0)::BIGINT AS pending_requests,
       $tz AS timezone
FROM keys k
LEFT JOIN ch USING (day, currency)
LEFT JOIN pi USING (day, currency)
LEFT JOIN re USING (day, currency)
LEFT JOIN dp USING (day, currency)
LEFT JOIN bt USING (day, currency)
LEFT JOIN rq_open USING (day, currency)
LEFT JOIN rq_dec USING (day, currency)
LEFT JOIN rq_proc USING (day, currency)
LEFT JOIN pend USING (day, currency)
WHERE k.day BETWEEN $start_day AND $end_day
ORDER BY k.day, k.currency

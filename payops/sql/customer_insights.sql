-- Per customer and currency: payments, spend, refunds, preferred payment method, first and
-- last activity. $customer (NULL = all), $lo / $hi (NULL = no bound) filter the charges.
-- Ordered by currency, then spend: amounts of different currencies are never ranked together.
-- The fields in braces are payops.money's rules (which charges are spend, which
-- refunds are refunded money), rendered in by payops.insights.
WITH ch AS (
    SELECT customer, currency,
           count(*) AS payments,
           count(*) FILTER (WHERE {gross_charge}) AS succeeded,
           coalesce(sum(amount_captured) FILTER (WHERE {gross_charge}), 0) AS spend,
           mode(CASE WHEN card_brand IS NOT NULL THEN payment_method_type || ' (' || card_brand || ')'
                     ELSE payment_method_type END) AS preferred_payment_method,
           min(created) AS first_activity,
           max(created) AS last_activity
    FROM charges
    WHERE customer IS NOT NULL
      AND ($customer IS NULL OR customer = $customer)
      AND ($lo IS NULL OR created >= $lo) AND ($hi IS NULL OR created < $hi)
    GROUP BY ALL
),
rf AS (  -- the refunds first (few), then only their charges
    SELECT charge, currency, amount, created FROM refunds
    WHERE {refunded} AND ($lo IS NULL OR created >= $lo) AND ($hi IS NULL OR created < $hi)
),
re AS (
    SELECT c.customer, rf.currency, count(*) AS refunds, sum(rf.amount) AS refunded_amount,
           max(rf.created) AS last_refund
    FROM rf JOIN charges c ON c.id = rf.charge
    WHERE c.customer IS NOT NULL AND ($customer IS NULL OR c.customer = $customer)
    GROUP BY ALL
)
SELECT coalesce(ch.customer, re.customer) AS customer,
       cu.email, cu.name,
       coalesce(ch.payments, 0)::BIGINT AS payments,
       coalesce(ch.succeeded, 0)::BIGINT AS succeeded,
       coalesce(ch.currency, re.currency) AS currency,
       coalesce(ch.spend, 0)::BIGINT AS spend,
       coalesce(re.refunds, 0)::BIGINT AS refunds,
       coalesce(re.refunded_amount, 0)::BIGINT AS refunded_amount,
       ch.preferred_payment_method,
       ch.first_activity,
       greatest(ch.last_activity, re.last_refund) AS last_activity,
       -- the link itself is built in Python (payops.outputs: only well-formed ids become URLs)
       coalesce(cu.livemode, false) AS livemode
FROM ch FULL OUTER JOIN re ON re.customer = ch.customer AND re.currency = ch.currency
LEFT JOIN customers cu ON cu.id = coalesce(ch.customer, re.customer)
ORDER BY currency, spend DESC, customer

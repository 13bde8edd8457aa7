"""Customer insights and the period breakdowns a report shows beside its metrics.

Per currency, never across: customers' payments, spend and refunds (the SQL in
``payops/sql/customer_insights.sql``), failed payments by failure code, refund requests by
status and priority, the biggest refunds.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from functools import cache

import pandas as pd

from payops import money, outputs
from payops.config import get_settings
from payops.db import SQL_DIR
from payops.errors import NotFound
from payops.periods import bounds, check_range, parse_date, reader, timezone
from payops.refunds import rules as refund_rules

__all__ = ["customer_insights", "top_customers", "failure_codes", "refund_requests_breakdown", "biggest_refunds"]


@cache
def _sql(name: str) -> str:
    return (SQL_DIR / f"{name}.sql").read_text().format(
        gross_charge=money.gross_charge_sql("status"), refunded=money.refunded_sql("status"))


def customer_insights(customer: str | None = None, *, limit: int | None = None, db=None,
                      start: date | None = None, end: date | None = None, tz: str | None = None) -> pd.DataFrame:
    """Per customer and currency: payments, spend, refunds, preferred payment method,
    first and last activity, and the Stripe dashboard link; per currency, biggest spenders first
    (yen are never ranked against euros: each currency is its own ranking).

    Args:
        customer: one customer id (default: all customers).
        limit: at most this many rows per currency.
        db: database path.
        start: only activity from this local day.
        end: only activity up to this local day (inclusive).
        tz: reporting timezone for ``start``/``end``.
    """
    tz = timezone(tz)
    first, last = parse_date(start), parse_date(end)
    lo = bounds(first, first, tz)[0] if first else None
    hi = bounds(last, last, tz)[1] if last else None
    with reader(db) as con:
        df = con.execute(_sql("customer_insights"), {"customer": customer, "lo": lo, "hi": hi}).df()
        known = df.empty and customer is not None and con.execute(
            "SELECT count(*) FROM customers WHERE id = ?", [customer]).fetchall()[0][0]
    if customer is not None and df.empty and not known:
        raise NotFound(f"no customer {customer} in the database")
    df["dashboard_url"] = [outputs.dashboard_url(c, lm) if outputs.stripe_id(c) else None
                           for c, lm in zip(df["customer"], df["livemode"], strict=True)]
    return df.groupby("currency", group_keys=False, sort=False).head(limit) if limit is not None else df


def top_customers(start: date, end: date, *, limit: int = 10, db=None, tz: str | None = None) -> pd.DataFrame:
    """The ``limit`` biggest spenders of the period in each currency."""
    df = customer_insights(db=db, start=start, end=end, tz=tz)
    df = df[df["spend"] > 0]
    return df.groupby("currency", group_keys=False).head(limit).reset_index(drop=True)


def failure_codes(start: date, end: date, *, db=None, tz: str | None = None) -> pd.DataFrame:
    """Failed charges of the period per currency and failure code, most frequent first."""
    start, end = check_range(start, end)
    lo, hi = bounds(start, end, timezone(tz))
    with reader(db) as con:
        return con.execute(
            """
            SELECT currency, coalesce(failure_code, 'unknown') AS failure_code, count(*) AS failed
            FROM charges WHERE status = 'failed' AND created >= ? AND created < ?
            GROUP BY ALL ORDER BY currency, failed DESC, failure_code
            """,
            [lo, hi],
        ).df()


def refund_requests_breakdown(start: date, end: date, *, db=None, tz: str | None = None,
                              now: datetime | None = None) -> pd.DataFrame:
    """Refund requests opened in the period, by currency, current status and priority.

    The one priority label of :func:`payops.refunds.priority` at ``now`` (URGENT, else HIGH,
    else LARGE, else NORMAL), with the queue's rules and thresholds. Columns: currency,
    status, priority, requests, amount.
    """
    start, end = check_range(start, end)
    lo, hi = bounds(start, end, timezone(tz))
    settings = get_settings()
    urgent_before, high_before = refund_rules.priority_cutoffs(settings.refund_policy, now or datetime.now(UTC))
    with reader(db) as con:
        currencies = [r[0] for r in con.execute("SELECT DISTINCT currency FROM refund_requests").fetchall()]
        label = refund_rules.priority_sql(urgent_before="$urgent_before", high_before="$high_before",
                                          large="t.large", req="r")
        return con.execute(
            f"""
            WITH t AS ({refund_rules.large_thresholds_sql(currencies, settings)})
            SELECT r.currency, r.status, {label} AS priority,
                   count(*) AS requests, sum(r.amount)::BIGINT AS amount
            FROM refund_requests r LEFT JOIN t USING (currency)
            WHERE r.requested_at >= $lo AND r.requested_at < $hi
            GROUP BY ALL ORDER BY r.currency, r.status, priority
            """,
            {"urgent_before": urgent_before, "high_before": high_before, "lo": lo, "hi": hi},
        ).df()


def biggest_refunds(start: date, end: date, *, limit: int = 10, db=None, tz: str | None = None) -> pd.DataFrame:
    """The ``limit`` biggest refunds (Stripe refunds created in the period) per currency."""
    start, end = check_range(start, end)
    lo, hi = bounds(start, end, timezone(tz))
    with reader(db) as con:
        return con.execute(
            """
            SELECT * EXCLUDE (rank) FROM (
                SELECT r.created, r.id AS refund, r.charge, c.customer, cu.email AS customer_email,
                       r.amount, r.currency, r.status, r.reason, r.payops_request_id,
                       coalesce(c.livemode, false) AS livemode,
                       row_number() OVER (PARTITION BY r.currency ORDER BY r.amount DESC, r.id) AS rank
                FROM refunds r
                LEFT JOIN charges c ON c.id = r.charge
                LEFT JOIN customers cu ON cu.id = c.customer
                WHERE r.created >= ? AND r.created < ?)
            WHERE rank <= ? ORDER BY currency, amount DESC, refund
            """,
            [lo, hi, limit],
        ).df()

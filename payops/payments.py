"""The payments read model: what notebooks, the review app and exports read about payments.

One query shape for a payment's money, :func:`charges`: per charge, the figures of
:data:`payops.money.FIGURES` (gross volume, refunded, disputed, Stripe fees, platform fees,
net, net after platform fee), each the charge's part of the daily metric of the same name and
computed with the same rules (rendered from :mod:`payops.money`). :func:`breakdown` adds up a
payment's charges; the payments export lists them. Over all payments, each figure sums to
the daily metrics' figure over all days (Stripe fees not tied to a charge, a refund or a
dispute, such as a Radar fee, are in the daily figure only).

Also here: a payment's timeline and refunds, the newest payments and refunds, a customer's
payments, the days with data and the currencies of refund requests. The UI formats these;
it holds no SQL.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from payops import ledger, money
from payops.config import get_settings
from payops.errors import NotFound
from payops.periods import bounds, parse_date, reader, timezone

__all__ = [
    "BREAKDOWN_FIGURES", "charges", "breakdown", "timeline", "refunds_of", "recent", "recent_refunds",
    "of_customer", "data_range", "request_currencies", "payouts",
]

#: what a payment's breakdown shows, in the order money flows: (label, key of :func:`breakdown`)
BREAKDOWN_FIGURES: tuple[tuple[str, str], ...] = (("Amount", "amount"),) + tuple(
    (label, name) for name, (label, _) in money.FIGURES.items())

_Db = str | Path | None
_Con = duckdb.DuckDBPyConnection | None


def _charge_money_sql(where: str, bps: int) -> str:
    """Per charge: its facts and its money figures. ``where`` filters ``charges c``."""
    ok = money.gross_charge_sql("c.status")
    gross = money.gross_amount_sql("c.status", "c.amount_captured")
    platform = f"CASE WHEN {ok} THEN {money.platform_fee_sql('c.amount_captured', 'c.application_fee_amount', bps)} " \
               "ELSE 0 END"
    net = money.net_sql("gross_volume", "refunded_amount", "disputed_amount", "stripe_fees")
    return f"""
        WITH ch AS (SELECT * FROM charges c WHERE {where}),
        re AS (SELECT id, charge, amount, status FROM refunds WHERE charge IN (SELECT id FROM ch)),
        dp AS (SELECT id, charge, amount, status FROM disputes WHERE charge IN (SELECT id FROM ch)),
        re_sum AS (SELECT charge, sum(amount) AS refunded_amount FROM re
                   WHERE {money.refunded_sql("status")} GROUP BY ALL),
        -- payops.money: chargebacks (not inquiries), less what won disputes got back
        dp_sum AS (SELECT charge, sum(amount) AS disputed_amount
                   FROM (SELECT charge, amount FROM dp WHERE {money.chargeback_sql("status")}
                         UNION ALL
                         SELECT dp.charge, -bt.amount FROM dp JOIN balance_transactions bt ON bt.source = dp.id
                         WHERE {money.reinstated_sql("bt.reporting_category")})
                   GROUP BY ALL),
        -- a charge's balance transactions: its own, its refunds', its disputes'
        src AS (SELECT id AS charge, id AS source FROM ch
                UNION ALL SELECT charge, id FROM re UNION ALL SELECT charge, id FROM dp),
        fees AS (SELECT src.charge, sum(bt.fee) AS stripe_fees
                 FROM src JOIN balance_transactions bt ON bt.source = src.source GROUP BY ALL),
        figures AS (
            SELECT c.id AS charge,
                   ({gross})::BIGINT AS gross_volume,
                   coalesce(r.refunded_amount, 0)::BIGINT AS refunded_amount,
                   coalesce(d.disputed_amount, 0)::BIGINT AS disputed_amount,
                   coalesce(f.stripe_fees, 0)::BIGINT AS stripe_fees,
                   ({platform})::BIGINT AS platform_fees
            FROM ch c LEFT JOIN fees f ON f.charge = c.id
            LEFT JOIN re_sum r ON r.charge = c.id LEFT JOIN dp_sum d ON d.charge = c.id)
        SELECT c.id AS charge, c.payment_intent, c.customer, cu.email AS customer_email, c.created,
               c.currency, c.status, c.amount, c.amount_captured, c.amount_refunded,
               m.gross_volume, m.refunded_amount, m.disputed_amount, m.stripe_fees, m.platform_fees,
               ({net})::BIGINT AS net,
               ({money.net_after_platform_fee_sql(net, 'm.platform_fees')})::BIGINT AS net_after_platform_fee,
               c.failure_code, c.failure_message, c.payment_method_type, c.card_brand,
               c.refunded, c.disputed, pi.booking_id, coalesce(c.livemode, pi.livemode, false) AS livemode
        FROM ch c JOIN figures m ON m.charge = c.id
        LEFT JOIN customers cu ON cu.id = c.customer
        LEFT JOIN payment_intents pi ON pi.id = c.payment_intent
        ORDER BY c.created, c.id"""


def charges(start: str | date | None = None, end: str | date | None = None, *, db: _Db = None,
            tz: str | None = None) -> pd.DataFrame:
    """Charges created on local days ``start``..``end`` with their money figures, oldest first.

    Columns: charge, payment_intent, customer, customer_email, created, currency, status,
    amount, amount_captured, amount_refunded (Stripe's fields), the figures of
    :data:`payops.money.FIGURES`, failure_code, failure_message, payment_method_type,
    card_brand, refunded, disputed, booking_id, livemode.

    Args:
        start: first local day (default: from the beginning).
        end: last local day, inclusive (default: to the end).
        db: database path.
        tz: reporting timezone (default ``PAYOPS_TIMEZONE``).
    """
    tz = timezone(tz)
    first, last = parse_date(start), parse_date(end)
    lo = bounds(first, first, tz)[0] if first else None
    hi = bounds(last, last, tz)[1] if last else None
    sql = _charge_money_sql("($lo IS NULL OR c.created >= $lo) AND ($hi IS NULL OR c.created < $hi)",
                            get_settings().platform_fee_bps)
    with reader(db) as con:
        return con.execute(sql, {"lo": lo, "hi": hi}).df()


def _plain(value: Any) -> Any:
    try:
        return None if pd.isna(value) else value
    except (TypeError, ValueError):  # lists, dicts
        return value


def breakdown(payment_id: str, *, db: _Db = None, con: _Con = None) -> dict[str, Any] | None:
    """Where the money of one payment went, with the names and rules of the daily metrics.

    Money keys (integers in minor units of ``currency``): ``amount`` (the charge's amount) and
    every figure of :data:`payops.money.FIGURES` (``gross_volume``, ``refunded_amount``,
    ``disputed_amount``, ``stripe_fees``, ``platform_fees``, ``net``,
    ``net_after_platform_fee``), summed over the payment's charges (a payment intent can have
    a failed charge before the one that succeeded). Context keys from its main charge (the
    succeeded one, else the newest): ``charge``, ``payment_intent``, ``customer``,
    ``currency``, ``status``, ``disputed``, ``livemode``, and the booking (``booking_id``,
    ``booking_status``, ``session_start``, ``tutor_id``).

    Args:
        payment_id: a payment intent (``pi_...``) or a charge (``ch_...``).
        con: an open connection to read on (a composed read); default a short one of its own.

    Returns:
        The breakdown, or None if the payment is unknown.
    """
    where = "c.payment_intent = $id" if str(payment_id).startswith("pi_") else "c.id = $id"
    with reader(db, con) as c:
        df = c.execute(_charge_money_sql(where, get_settings().platform_fee_bps), {"id": payment_id}).df()
        if df.empty:
            return None
        main = df.assign(ok=df["status"].eq("succeeded")).sort_values(["ok", "created"], ascending=False).iloc[0]
        booking = c.execute(
            "SELECT booking_id, status, session_start, tutor_id FROM bookings WHERE payment_intent = ? LIMIT 1",
            [main["payment_intent"]]).fetchone()
        ledger_figures = ledger_breakdown(payment_id, con=c)
    out: dict[str, Any] = {k: _plain(main[k]) for k in ("charge", "payment_intent", "customer", "currency", "status")}
    out["amount"] = int(main["amount"]) if _plain(main["amount"]) is not None else None
    for name in money.FIGURES:
        out[name] = int(df[name].sum())
    out["disputed"] = bool(df["disputed"].fillna(False).any())
    out["livemode"] = bool(_plain(main["livemode"]))
    out["booking_id"] = _plain(main["booking_id"]) or (booking[0] if booking else None)
    out["booking_status"], out["session_start"], out["tutor_id"] = booking[1:] if booking else (None, None, None)
    out["ledger"] = ledger_figures
    return out


_LEDGER_SQL = """
    WITH ch AS (SELECT id FROM charges WHERE id = $id OR payment_intent = $id),
    src AS (
        SELECT id FROM ch
        UNION ALL SELECT id FROM refunds WHERE charge IN (SELECT id FROM ch)
        UNION ALL SELECT id FROM disputes WHERE charge IN (SELECT id FROM ch)
        UNION ALL SELECT id FROM transfers WHERE source_transaction IN (SELECT id FROM ch)
        UNION ALL SELECT r.id FROM transfer_reversals r JOIN transfers t ON t.id = r.transfer
                  WHERE t.source_transaction IN (SELECT id FROM ch)
    )
    SELECT id, type, reporting_category, amount, fee, net, currency, created
    FROM balance_transactions WHERE source IN (SELECT id FROM src) ORDER BY created, id"""


def ledger_breakdown(payment_id: str, *, db: _Db = None, con: _Con = None) -> dict[str, Any]:
    """One payment's money waterfall from its balance transactions (:mod:`payops.ledger`).

    Keys: every term of :data:`payops.ledger.TERMS` and ``other_net`` (minor units), and
    ``transactions``: the balance transactions (charge, refunds, dispute, transfer and its
    reversals) as records, oldest first.
    """
    with reader(db, con) as c:
        df = c.execute(_LEDGER_SQL, {"id": payment_id}).df()
    records = df.to_dict("records")
    return {**ledger.waterfall_of(records), "transactions": records}


def timeline(payment_id: str, *, db: _Db = None) -> pd.DataFrame:
    """What happened to one payment (``pi_...`` or ``ch_...``), oldest first.

    Rows: ``at``, ``event`` (created, charged, failed, fees, refunded, disputed,
    refund requested / approved / rejected / processed), ``id``, ``amount``, ``currency``,
    ``status``, ``detail``.

    Raises:
        NotFound: no such payment in the database.
    """
    with reader(db) as con:
        df = con.execute(
            """
            WITH pis AS (
                SELECT id FROM payment_intents WHERE id = $id
                UNION SELECT payment_intent FROM charges WHERE id = $id AND payment_intent IS NOT NULL
            ),
            chs AS (
                SELECT id FROM charges WHERE id = $id OR payment_intent IN (SELECT id FROM pis)
            ),
            res AS (SELECT id FROM refunds WHERE charge IN (SELECT id FROM chs)),
            dps AS (SELECT id FROM disputes WHERE charge IN (SELECT id FROM chs)),
            rrs AS (SELECT * FROM refund_requests
                    WHERE charge IN (SELECT id FROM chs) OR payment_intent IN (SELECT id FROM pis))
            SELECT created AS "at", 'created' AS event, id, amount, currency, status, NULL AS detail
              FROM payment_intents WHERE id IN (SELECT id FROM pis)
            UNION ALL
            SELECT created, CASE WHEN status = 'failed' THEN 'failed' ELSE 'charged' END, id,
                   CASE WHEN status = 'succeeded' THEN amount_captured ELSE amount END, currency, status,
                   coalesce(failure_code, payment_method_type || coalesce(' ' || card_brand, ''))
              FROM charges WHERE id IN (SELECT id FROM chs)
            UNION ALL
            SELECT created, 'fees', id, fee, currency, status, type || ' (Stripe fee)'
              FROM balance_transactions
              WHERE source IN (SELECT id FROM chs UNION ALL SELECT id FROM res UNION ALL SELECT id FROM dps)
                AND fee <> 0
            UNION ALL
            SELECT created, 'refunded', id, amount, currency, status, reason
              FROM refunds WHERE id IN (SELECT id FROM res)
            UNION ALL
            SELECT created, 'disputed', id, amount, currency, status, reason
              FROM disputes WHERE id IN (SELECT id FROM dps)
            UNION ALL
            SELECT requested_at, 'refund requested', id::VARCHAR, amount, currency, status,
                   reason || ' by ' || requested_by FROM rrs
            UNION ALL
            SELECT decided_at, CASE WHEN status = 'REJECTED' THEN 'refund rejected' ELSE 'refund approved' END,
                   id::VARCHAR, amount, currency, status, 'by ' || decided_by
              FROM rrs WHERE decided_at IS NOT NULL
            UNION ALL
            SELECT processed_at, 'refund processed', id::VARCHAR, amount, currency, status, stripe_refund_id
              FROM rrs WHERE processed_at IS NOT NULL
            ORDER BY 1, list_position(['created', 'charged', 'failed', 'fees', 'refund requested',
                                       'refund approved', 'refund rejected', 'refund processed',
                                       'refunded', 'disputed'], event)
            """,
            {"id": payment_id},
        ).df()
    if df.empty:
        raise NotFound(f"no payment {payment_id} in the database")
    return df


def refunds_of(payment_intent: str, *, db: _Db = None, con: _Con = None) -> pd.DataFrame:
    """The Stripe refunds of one payment intent, oldest first.

    Columns: created, id, amount, currency, status, reason, payops_request_id. ``con``: as
    :func:`breakdown`.
    """
    with reader(db, con) as c:
        return c.execute(
            "SELECT created, id, amount, currency, status, reason, payops_request_id FROM refunds "
            "WHERE payment_intent = ? ORDER BY created, id", [payment_intent]).df()


_PAYMENT_ROWS = """
    SELECT c.created, c.status, c.refunded, c.disputed, c.amount_refunded, c.amount,
           c.currency, c.customer, cu.email AS customer_email, c.payment_intent,
           c.id AS charge, c.payment_method_type, c.card_brand, c.failure_message,
           coalesce(c.livemode, false) AS livemode
    FROM charges c LEFT JOIN customers cu ON cu.id = c.customer
    WHERE $customer IS NULL OR c.customer = $customer
    ORDER BY c.created DESC, c.id
    LIMIT $limit"""


def recent(limit: int = 20, *, db: _Db = None) -> pd.DataFrame:
    """The newest payments (charges), newest first.

    Columns: created, status, refunded, disputed, amount_refunded, amount, currency,
    customer, customer_email, payment_intent, charge, payment_method_type, card_brand,
    failure_message, livemode.
    """
    with reader(db) as con:
        return con.execute(_PAYMENT_ROWS, {"customer": None, "limit": int(limit)}).df()


def of_customer(customer: str, limit: int = 50, *, db: _Db = None) -> pd.DataFrame:
    """One customer's payments (charges), newest first (columns as :func:`recent`)."""
    with reader(db) as con:
        return con.execute(_PAYMENT_ROWS, {"customer": customer, "limit": int(limit)}).df()


def recent_refunds(limit: int = 20, *, db: _Db = None) -> pd.DataFrame:
    """The newest Stripe refunds, newest first, with the payops request that caused each (if any).

    Columns: created, id, amount, currency, status, reason, payment_intent, charge,
    payops_request_id, livemode.
    """
    with reader(db) as con:
        return con.execute(
            """
            SELECT r.created, r.id, r.amount, r.currency, r.status, r.reason, r.payment_intent,
                   r.charge, r.payops_request_id, coalesce(c.livemode, false) AS livemode
            FROM refunds r LEFT JOIN charges c ON c.id = r.charge
            ORDER BY r.created DESC, r.id
            LIMIT ?
            """, [int(limit)]).df()


def data_range(*, db: _Db = None) -> tuple[date, date] | tuple[None, None]:
    """The first and last day (UTC dates) that have payments; ``(None, None)`` for an empty database."""
    with reader(db) as con:
        first, last = con.execute("SELECT min(created)::DATE, max(created)::DATE FROM charges").fetchone() \
            or (None, None)
    if first is None or last is None:
        return None, None
    return first, last


def request_currencies(*, db: _Db = None) -> list[str]:
    """The currencies refund requests exist in (for the review app's currency filter)."""
    with reader(db) as con:
        return [str(r[0]) for r in con.execute(
            "SELECT DISTINCT currency FROM refund_requests WHERE currency IS NOT NULL ORDER BY 1").fetchall()]


def payouts(start: str | date | None = None, end: str | date | None = None, *, db: _Db = None) -> pd.DataFrame:
    """Payouts created in [start, end] (UTC dates, inclusive), newest first, each with what it is worth.

    Columns: id, created, arrival_date, amount, currency, status, ``cash`` (a paid payout: money in
    the bank), ``returned`` (failed or canceled: the money came back to the Stripe balance; never
    counted as cash), failure_code, failure_message. The statuses are payops.money's
    CASH_PAYOUT_STATUSES and RETURNED_PAYOUT_STATUSES.
    """
    where, params = [], []
    if start is not None:
        where.append("created >= CAST(? AS DATE)")
        params.append(str(start))
    if end is not None:
        where.append("created < CAST(? AS DATE) + INTERVAL 1 DAY")
        params.append(str(end))
    cash = ", ".join(repr(s) for s in money.CASH_PAYOUT_STATUSES)
    returned = ", ".join(repr(s) for s in money.RETURNED_PAYOUT_STATUSES)
    with reader(db) as con:
        return con.execute(f"""
            SELECT id, created, arrival_date, amount, currency, status,
                   status IN ({cash}) AS cash, status IN ({returned}) AS returned,
                   json_extract_string(raw, '$.failure_code') AS failure_code,
                   json_extract_string(raw, '$.failure_message') AS failure_message
            FROM payouts {"WHERE " + " AND ".join(where) if where else ""}
            ORDER BY created DESC, id""", params).df()

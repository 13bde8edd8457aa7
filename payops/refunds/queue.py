"""The review queue: requests in priority order, filtered and paged in SQL.

Order: URGENT, then HIGH, then the others; LARGE first within each; then oldest first.
Priorities are computed in SQL from :mod:`payops.refunds.rules`, so the first page of
100,000 requests is a top-N query.

:func:`queue_page` is one screen of the review app (the page, how many match, the pending
counts per priority, the currencies) read on one connection: opening a DuckDB file costs
more than these queries, so a screen opens it once. Every read here also takes ``con``, a
connection the caller already has open, for the same reason.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import duckdb
import pandas as pd

from payops.config import Settings, get_settings
from payops.db import reuse
from payops.errors import InvalidInput
from payops.money import format_amount
from payops.refunds.model import PRIORITIES, STATUSES, utcnow
from payops.refunds.rules import cumulative_sql, large_thresholds_sql, priority_cutoffs, priority_flags_sql

__all__ = ["QUEUE_COLUMNS", "SORTS", "QueuePage", "queue", "queue_page", "queue_count", "pending_by_priority",
           "pending_parts", "customer_history"]

QUEUE_COLUMNS = (
    "id", "status", "priorities", "priority_rank", "amount", "currency", "amount_display", "age_hours",
    "customer", "customer_email", "customer_name", "payment_intent", "charge", "reason", "note",
    "requested_by", "requested_at", "first_approver", "decided_by", "decided_at", "decision_note",
    "second_approver", "stripe_refund_id", "stripe_refund_status", "failure_message", "livemode",
)
# A filter may also ask for the requests with no priority.
_NO_PRIORITY = ("NORMAL", "OTHER")
_FLAG_COLUMNS = {"URGENT": "is_urgent", "HIGH": "is_high", "LARGE": "is_large"}


def _currencies(con: duckdb.DuckDBPyConnection) -> list[str]:
    return [r[0] for r in con.execute("SELECT DISTINCT currency FROM refund_requests").fetchall()]


def _head(con: duckdb.DuckDBPyConnection, settings: Settings, now: datetime,
          currencies: list[str] | None = None) -> tuple[str, list]:
    """CTEs ``th`` (LARGE threshold per currency) and ``cut`` (URGENT / HIGH cutoffs, now).

    ``currencies``: those of ``refund_requests`` when the caller has read them already.
    """
    if currencies is None:
        currencies = _currencies(con)
    urgent, high = priority_cutoffs(settings.refund_policy, now)
    cut = "cut AS (SELECT ?::TIMESTAMPTZ AS urgent_before, ?::TIMESTAMPTZ AS high_before, ?::TIMESTAMPTZ AS now_)"
    return f"WITH th AS ({large_thresholds_sql(currencies, settings)}), {cut}", [urgent, high, now]


def _as_list(value: str | Iterable[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def _status_filter(status: str | Iterable[str] | None) -> tuple[list[str], list]:
    if status is None:
        return [], []
    statuses = [s.upper() for s in _as_list(status)]
    bad = [s for s in statuses if s not in STATUSES]
    if bad:
        raise InvalidInput(f"unknown status {bad[0]!r}; use one of {', '.join(STATUSES)}")
    if not statuses:
        return [], []
    return [f"r.status IN ({', '.join('?' for _ in statuses)})"], statuses


def _priority_filter(priority: str | Iterable[str] | None) -> list[str]:
    if not priority:
        return []
    ors = []
    for p in (x.upper() for x in _as_list(priority)):
        if p in _FLAG_COLUMNS:
            ors.append(_FLAG_COLUMNS[p])
        elif p in _NO_PRIORITY:
            ors.append("NOT (is_urgent OR is_high OR is_large)")
        else:
            raise InvalidInput(f"unknown priority {p!r}; use one of {', '.join(PRIORITIES)} or NORMAL")
    return ["(" + " OR ".join(ors) + ")"]


def _reviewer_filters(customer, waiting_for) -> tuple[list[str], list, list[str]]:
    """The review app's filters (one customer; "waiting for me"): (where, params, where on flags)."""
    where: list[str] = []
    params: list = []
    flag_where = []
    if customer:
        where.append("r.customer = ?")
        params.append(customer)
    if waiting_for:
        # LARGE, first approval given, and the second may come from this senior (four-eyes).
        where.append("r.status = 'PENDING' AND r.first_approver IS NOT NULL AND r.first_approver <> ?"
                     " AND coalesce(r.requested_by, '') <> ?")
        params += [waiting_for, waiting_for]
        flag_where.append("is_large")
    return where, params, flag_where


def _filters(status, currency, min_amount, search) -> tuple[list[str], list]:
    """(conditions on requests, their params in order)."""
    where, params = _status_filter(status)
    if currency:
        where.append("r.currency = ?")
        params.append(currency.lower())
    if min_amount is not None:
        where.append("r.amount >= ?")
        params.append(int(min_amount))
    if search:
        where.append("(r.customer ILIKE ? OR c.email ILIKE ? OR c.name ILIKE ? OR r.payment_intent ILIKE ?"
                     " OR r.charge ILIKE ?)")
        params += [f"%{search.strip()}%"] * 5
    return where, params


def _base_sql(con, settings, now, status, priority, currency, min_amount, search, customer=None,
              waiting_for=None, currencies=None) -> tuple[str, list]:
    head, params = _head(con, settings, now, currencies)
    where, fparams = _filters(status, currency, min_amount, search)
    rwhere, rparams, flag_where = _reviewer_filters(customer, waiting_for)
    where, fparams = where + rwhere, fparams + rparams
    flag_where += _priority_filter(priority)
    flags = priority_flags_sql(urgent_before="cut.urgent_before", high_before="cut.high_before", large="th.large",
                               amount="cum.cumulative")
    flag_cols = ",\n               ".join(f"{cond} AS {_FLAG_COLUMNS[name]}" for name, cond in flags.items())
    sql = f"""{head},
    base AS (
        SELECT r.*, c.email AS customer_email, c.name AS customer_name,
               date_diff('second', r.requested_at, cut.now_) / 3600.0 AS age_hours,
               {flag_cols}
        FROM refund_requests r
        CROSS JOIN cut
        LEFT JOIN th ON th.currency = r.currency
        LEFT JOIN ({cumulative_sql()}) cum ON cum.id = r.id
        LEFT JOIN customers c ON c.id = r.customer
        {"WHERE " + " AND ".join(where) if where else ""}
    ),
    ranked AS (
        SELECT *, (CASE WHEN is_urgent THEN 0 WHEN is_high THEN 2 ELSE 4 END)
                  + (CASE WHEN is_large THEN 0 ELSE 1 END) AS priority_rank
        FROM base {"WHERE " + " AND ".join(flag_where) if flag_where else ""}
    )"""
    return sql, params + fparams


# The queue's orders; amounts are compared within a currency only (minor units of two
# currencies are not comparable), so "amount" groups by currency first.
_ORDERS = {
    "priority": "priority_rank, requested_at, id",
    "age": "requested_at, id",
    "amount": "currency, amount DESC, requested_at, id",
}
SORTS = tuple(_ORDERS)


def _order(sort: str) -> str:
    if sort not in _ORDERS:
        raise InvalidInput(f"unknown sort {sort!r}; use one of {', '.join(SORTS)}")
    return _ORDERS[sort]


def _rows(con: duckdb.DuckDBPyConnection, base: tuple[str, list], order: str, limit: int | None,
          offset: int) -> pd.DataFrame:
    """One page of ``ranked`` (the CTEs of :func:`_base_sql`) with the queue's columns."""
    sql, params = base
    page = "" if limit is None else f" LIMIT {int(limit)} OFFSET {int(offset or 0)}"
    df = con.execute(
        f"""{sql},
        page AS (SELECT * FROM ranked ORDER BY {order} {page})
        SELECT page.*, coalesce(ch.livemode, pi.livemode) AS livemode,
               rf.status AS stripe_refund_status  -- requires_action: the customer must act (docs/statuses.md)
        FROM page LEFT JOIN charges ch ON ch.id = page.charge
                  LEFT JOIN payment_intents pi ON pi.id = page.payment_intent
                  LEFT JOIN refunds rf ON rf.id = page.stripe_refund_id
        ORDER BY {order}""",
        params,
    ).df()
    if df.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in QUEUE_COLUMNS})
    df["priorities"] = [
        [p for p, flag in (("URGENT", u), ("HIGH", h), ("LARGE", lg)) if flag]
        for u, h, lg in zip(df["is_urgent"], df["is_high"], df["is_large"], strict=True)
    ]
    df["amount_display"] = [format_amount(int(a), c) for a, c in zip(df["amount"], df["currency"], strict=True)]
    return df[list(QUEUE_COLUMNS)].reset_index(drop=True)


def _count(con: duckdb.DuckDBPyConnection, base: tuple[str, list]) -> int:
    sql, params = base
    return int(con.execute(f"{sql} SELECT count(*) FROM ranked", params).fetchall()[0][0])


def _by_priority(con: duckdb.DuckDBPyConnection, base: tuple[str, list]) -> dict[str, int]:
    """Counts per priority of ``ranked`` (built for PENDING requests), and ``ALL`` of them."""
    sql, params = base
    u, h, lg, n, a = con.execute(
        f"""{sql} SELECT count(*) FILTER (WHERE is_urgent), count(*) FILTER (WHERE is_high),
                   count(*) FILTER (WHERE is_large),
                   count(*) FILTER (WHERE NOT (is_urgent OR is_high OR is_large)), count(*) FROM ranked""",
        params).fetchall()[0]
    return {"URGENT": int(u), "HIGH": int(h), "LARGE": int(lg), "NORMAL": int(n), "ALL": int(a)}


def pending_parts(counts: dict[str, int]) -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
    """How to say :func:`pending_by_priority`'s counts: ``(by age, by amount)``.

    By age the parts add up to every pending request (URGENT, HIGH, and ``newer`` for the
    rest); LARGE is by amount and overlaps them (a request can be URGENT and LARGE), so it is
    said apart, never as a fourth part of the total. The status screen and the review app both
    word it from here.
    """
    newer = counts["ALL"] - counts["URGENT"] - counts["HIGH"]
    return [("URGENT", counts["URGENT"]), ("HIGH", counts["HIGH"]), ("newer", newer)], [("LARGE", counts["LARGE"])]


def queue(*, status=("PENDING",), priority=None, currency=None, min_amount=None, search=None, customer=None,
          waiting_for=None, sort="priority", limit=50, offset=0, db=None, now=None, con=None) -> pd.DataFrame:
    """One page of the review queue, in priority order (or by age or amount).

    Order: URGENT, then HIGH, then the others; LARGE first within each; then oldest first.

    Args:
        status: statuses to show (default PENDING); None for all.
        priority: ``URGENT``, ``HIGH``, ``LARGE`` or ``NORMAL`` (or a list of them).
        currency: only this currency.
        min_amount: only requests of at least this many minor units.
        search: case-insensitive substring of customer id, email, name, payment intent or charge.
        customer: only this customer's requests (an exact customer id).
        waiting_for: only LARGE PENDING requests whose second approval this user (a senior) may
            give: first approval given by someone else, not requested by this user.
        sort: one of :data:`SORTS`: ``priority`` (the queue order), ``age`` (oldest first) or
            ``amount`` (largest first within each currency, currencies in alphabetical order).
        limit, offset: the page.
        now: the moment ages are measured from (default now).
        con: an open connection to read on (a composed read); default a short one of its own.

    Returns:
        A DataFrame with the columns of :data:`QUEUE_COLUMNS`.
    """
    settings = get_settings()
    now = now or utcnow()
    order = _order(sort)
    with reuse(con, db, create=False) as c:
        base = _base_sql(c, settings, now, status, priority, currency, min_amount, search, customer, waiting_for)
        return _rows(c, base, order, limit, offset)


def queue_count(*, status=("PENDING",), priority=None, currency=None, min_amount=None, search=None, customer=None,
                waiting_for=None, db=None, now=None, con=None, **_: Any) -> int:
    """How many requests :func:`queue` would list with the same filters (all pages)."""
    settings = get_settings()
    now = now or utcnow()
    with reuse(con, db, create=False) as c:
        return _count(c, _base_sql(c, settings, now, status, priority, currency, min_amount, search, customer,
                                   waiting_for))


def pending_by_priority(*, db=None, now=None, con=None) -> dict[str, int]:
    """PENDING requests per priority: ``{"URGENT", "HIGH", "LARGE", "NORMAL", "ALL"}``.

    URGENT and HIGH are by age and exclusive; LARGE overlaps both; NORMAL is none of them;
    ALL is every PENDING request (:func:`pending_parts` words them).
    """
    settings = get_settings()
    now = now or utcnow()
    with reuse(con, db, create=False) as c:
        return _by_priority(c, _base_sql(c, settings, now, ("PENDING",), None, None, None, None))


@dataclass(frozen=True)
class QueuePage:
    """One screen of the review queue, as :func:`queue_page` read it on one connection.

    Attributes:
        rows: the page's requests (the columns of :data:`QUEUE_COLUMNS`), in the queue's order.
        total: how many requests match the filters (all pages).
        page: the page shown, 0-based (the one asked for, moved back to the last page if the
            queue has become shorter).
        page_size: rows per page.
        by_priority: PENDING requests per priority, as :func:`pending_by_priority`.
        waiting: how many requests wait for the second approval of ``count_waiting_for``
            (as ``queue_count(waiting_for=...)``), or None when no one was named.
        currencies: the currencies refund requests exist in, sorted (for a currency filter).
    """

    rows: pd.DataFrame
    total: int
    page: int
    page_size: int
    by_priority: dict[str, int]
    waiting: int | None = None
    currencies: list[str] = field(default_factory=list)

    @property
    def pages(self) -> int:
        """How many pages the filtered queue has (at least 1)."""
        return max(1, -(-self.total // self.page_size))

    @property
    def offset(self) -> int:
        """The position of the page's first row in the filtered queue (0-based)."""
        return self.page * self.page_size


def queue_page(*, status=("PENDING",), priority=None, currency=None, min_amount=None, search=None, customer=None,
               waiting_for=None, sort="priority", page=0, page_size=25, count_waiting_for=None, db=None, now=None,
               con=None) -> QueuePage:
    """One screen of the review queue, all read on ONE connection: the page and its counts.

    The filters and ``sort`` are those of :func:`queue`; ``page`` (0-based) is moved back to
    the last page when there are fewer pages than that (a decision can shorten the queue).

    Args:
        page: the page wanted, 0-based.
        page_size: rows per page.
        count_waiting_for: also count the requests waiting for this user's second approval
            (a senior's "waiting for me"); None to skip that count.
        con: an open connection to read on; default a short one of its own, closed before
            returning (the app holds none between actions).

    Returns:
        A :class:`QueuePage`.
    """
    settings = get_settings()
    now = now or utcnow()
    order = _order(sort)
    size = max(1, int(page_size))
    with reuse(con, db, create=False) as c:
        # The currencies and thresholds are read once for the four queries below.
        currencies = _currencies(c)
        base = _base_sql(c, settings, now, status, priority, currency, min_amount, search, customer, waiting_for,
                         currencies)
        total = _count(c, base)
        last = max(0, -(-total // size) - 1)
        number = min(max(0, int(page or 0)), last)
        rows = _rows(c, base, order, size, number * size)
        by_priority = _by_priority(c, _base_sql(c, settings, now, ("PENDING",), None, None, None, None,
                                                currencies=currencies))
        waiting = None if count_waiting_for is None else _count(
            c, _base_sql(c, settings, now, ("PENDING",), None, None, None, None, waiting_for=count_waiting_for,
                         currencies=currencies))
    return QueuePage(rows=rows, total=total, page=number, page_size=size, by_priority=by_priority, waiting=waiting,
                     currencies=sorted(str(x) for x in currencies if x))


def customer_history(customer: str, *, exclude: int | None = None, limit: int = 100,
                     db=None, con=None) -> dict[str, pd.DataFrame]:
    """What a reviewer wants to know about a customer before deciding one of their requests.

    Args:
        customer: the customer id (``cus_...``).
        exclude: a request id to leave out (the one being reviewed).
        limit: at most this many rows of each kind (newest first).
        con: an open connection to read on (a composed read); default a short one of its own.

    Returns:
        ``{"requests": ..., "disputes": ...}``: the customer's other refund requests (id,
        status, amount, currency, reason, requested_at, decided_by, decided_at, payment_intent,
        charge), newest first, open ones (:data:`OPEN_STATUSES`) included; and the disputes
        on their payments (id, charge, payment_intent, amount, currency, status, reason,
        created), newest first.
    """
    with reuse(con, db) as c:
        requests = c.execute(
            "SELECT id, status, amount, currency, reason, requested_at, decided_by, decided_at, payment_intent, "
            "charge FROM refund_requests WHERE customer = ? AND id <> ? ORDER BY requested_at DESC, id DESC LIMIT ?",
            [customer, -1 if exclude is None else int(exclude), int(limit)]).df()
        disputes = c.execute(
            """SELECT d.id, d.charge, d.payment_intent, d.amount, d.currency, d.status, d.reason, d.created
               FROM disputes d LEFT JOIN charges c ON c.id = d.charge
                               LEFT JOIN payment_intents pi ON pi.id = d.payment_intent
               WHERE coalesce(c.customer, pi.customer) = ?
               ORDER BY d.created DESC, d.id DESC LIMIT ?""", [customer, int(limit)]).df()
    return {"requests": requests, "disputes": disputes}

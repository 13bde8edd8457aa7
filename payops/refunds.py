"""Refund requests: eligibility, priorities, the review state machine, four-eyes, processing.

payops is the source of truth for refund *decisions*; Stripe is the source of truth for
money. Every state change here is one conditional ``UPDATE ... WHERE id = ? AND status = ?``
plus its audit row, in one transaction, so two reviewers (or two processes) can never both
decide one request, and nothing is written twice.

States::

    PENDING -> APPROVED | REJECTED
    APPROVED -> PROCESSING -> PROCESSED | FAILED
    FAILED -> APPROVED            (a retry)

Processing follows a crash-safe protocol: the request is marked PROCESSING (committed)
*before* Stripe is called, the refund is created with the idempotency key
``payops-refund-<id>`` and metadata ``payops_request_id``, and only then is it marked
PROCESSED. A crash in between leaves a PROCESSING request that :func:`reconcile` (or a
later :func:`process` run) finishes by finding the refund in Stripe by its metadata, or by
retrying with the same key, never creating a second refund. No database connection is held
while Stripe is called.

Per-request problems (a missing role, a request someone else already decided, an
ineligible payment, a rejection without a note) come back as ``ActionResult(ok=False)``
and change nothing; they never raise.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb
import pandas as pd

from payops import audit
from payops.config import get_settings
from payops.db import connect, transaction
from payops.errors import InvalidInput, NotEligible, NotFound, PayopsError, StripeError, TransientError
from payops.money import format_amount

__all__ = [
    "STATUSES", "REASONS", "PRIORITIES", "OPEN_STATUSES", "Verdict", "ActionResult",
    "check", "request", "get", "queue", "queue_count", "pending_by_priority", "approve",
    "reject", "apply_policy", "process", "reconcile", "history", "sync_refund_failures",
    "large_threshold", "idempotency_key", "SORTS", "customer_history",
]

STATUSES = ("PENDING", "APPROVED", "REJECTED", "PROCESSING", "PROCESSED", "FAILED")
REASONS = ("requested_by_customer", "duplicate", "fraudulent")
PRIORITIES = ("URGENT", "HIGH", "LARGE")
OPEN_STATUSES = ("PENDING", "APPROVED", "PROCESSING")
ENTITY = "refund_request"

_REQUEST_COLUMNS = (
    "id", "payment_intent", "charge", "customer", "amount", "currency", "reason", "note", "status",
    "requested_by", "requested_at", "first_approver", "first_approved_at", "decided_by",
    "decided_at", "decision_note", "second_approver", "stripe_refund_id", "processed_at",
    "failure_message", "attempts", "retries", "updated_at",
)


@dataclass
class Verdict:
    """Whether a payment can be refunded (by ``amount``), with every reason it cannot.

    ``reasons`` is empty when ``eligible``; ``payment`` holds the figures the verdict is
    based on: payment_intent, charge, customer, currency, captured, refunded,
    open_requests, refundable, disputed, status, booking_id, booking_status, livemode
    (amounts in minor units) and created.
    """

    eligible: bool
    reasons: list[str]
    payment: dict

    def __bool__(self) -> bool:
        return self.eligible


@dataclass
class ActionResult:
    """What happened to one request in a bulk action."""

    request_id: int
    ok: bool
    status: str
    message: str

    def as_dict(self) -> dict:
        return asdict(self)


# --------------------------------------------------------------------------- helpers


def _now() -> datetime:
    return datetime.now(UTC)


def _user(user: str | None) -> str:
    return user or get_settings().user


def idempotency_key(request_id: int, retries: int = 0) -> str:
    """The Stripe idempotency key of a request's refund.

    ``payops-refund-<id>``; after a FAILED request was sent back for a retry ``n`` times,
    ``payops-refund-<id>-retry<n>`` (Stripe replays a stored error for a reused key, so a
    retry after a Stripe refusal needs a key of its own; a retry after a network error or
    a crash reuses the key).
    """
    return f"payops-refund-{request_id}" + (f"-retry{retries}" if retries else "")


def large_threshold(currency: str, settings=None) -> int:
    """The LARGE threshold for ``currency`` in minor units (``[refunds] large_above``).

    A default with more decimals than the currency has (``"50.50"`` for JPY) is rounded
    down to a whole minor unit instead of refusing the whole queue.
    """
    return (settings or get_settings()).refund_policy.large_threshold(currency)


def _dicts(cur: duckdb.DuckDBPyConnection) -> list[dict]:
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=False)) for row in cur.fetchall()]


def _row(con: duckdb.DuckDBPyConnection, request_id: int) -> dict | None:
    rows = _dicts(con.execute(
        f"SELECT {', '.join(_REQUEST_COLUMNS)} FROM refund_requests WHERE id = ?", [int(request_id)]))
    return rows[0] if rows else None


def _ts(value: Any) -> str:
    if value is None:
        return "?"
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return str(value)


def _snapshot(row: dict, *keys: str) -> dict:
    out = {}
    for k in ("status",) + keys:
        v = row.get(k)
        out[k] = v.isoformat() if isinstance(v, datetime) else v
    return out


def _already(row: dict) -> str:
    """Why a request can no longer be decided, naming who decided it."""
    rid, status = row["id"], row["status"]
    if status == "APPROVED" or (status in ("PROCESSING", "PROCESSED") and row.get("decided_by")):
        if status == "APPROVED":
            return f"request {rid} was already approved by {row['decided_by']} at {_ts(row['decided_at'])}"
        return (f"request {rid} was already approved by {row['decided_by']} at {_ts(row['decided_at'])} "
                f"and is {status}")
    if status == "REJECTED":
        return f"request {rid} was already rejected by {row['decided_by']} at {_ts(row['decided_at'])}"
    return f"request {rid} is {status}, not PENDING"


def _ids(ids: int | Iterable[int]) -> list[int]:
    if isinstance(ids, (int, str)):
        ids = [ids]
    out = []
    for i in ids:
        try:
            out.append(int(i))
        except (TypeError, ValueError):
            raise InvalidInput(f"not a request id: {i!r}") from None
    return out


# --------------------------------------------------------------------------- eligibility


def _find_payment(con: duckdb.DuckDBPyConnection, payment_id: str) -> dict:
    """The charge (and its payment intent) a payment id names, as a dict of facts."""
    payment_id = (payment_id or "").strip()
    pi_row = ch_row = None
    if payment_id.startswith("ch_") or payment_id.startswith("py_"):
        rows = _dicts(con.execute("SELECT * EXCLUDE (raw) FROM charges WHERE id = ?", [payment_id]))
        ch_row = rows[0] if rows else None
        if ch_row and ch_row.get("payment_intent"):
            rows = _dicts(con.execute("SELECT * EXCLUDE (raw) FROM payment_intents WHERE id = ?",
                                      [ch_row["payment_intent"]]))
            pi_row = rows[0] if rows else None
    elif payment_id.startswith("pi_"):
        rows = _dicts(con.execute("SELECT * EXCLUDE (raw) FROM payment_intents WHERE id = ?", [payment_id]))
        pi_row = rows[0] if rows else None
        rows = _dicts(con.execute(
            "SELECT * EXCLUDE (raw) FROM charges WHERE id = ? OR payment_intent = ? "
            "ORDER BY (id = ?) DESC, (status = 'succeeded') DESC, created DESC LIMIT 1",
            [pi_row.get("latest_charge") if pi_row else None, payment_id,
             pi_row.get("latest_charge") if pi_row else None]))
        ch_row = rows[0] if rows else None
    else:
        raise InvalidInput(f"{payment_id!r} is not a payment id (expected pi_... or ch_...)")
    if pi_row is None and ch_row is None:
        raise NotFound(f"no payment {payment_id} in the database (run `payops sync` first?)")
    return {"pi": pi_row, "ch": ch_row}


def _verdict(con: duckdb.DuckDBPyConnection, payment_id: str, amount: int | None = None, *,
             exclude: int | None = None, currency: str | None = None,
             now: datetime | None = None, settings=None) -> Verdict:
    settings = settings or get_settings()
    now = now or _now()
    found = _find_payment(con, payment_id)
    pi, ch = found["pi"], found["ch"]
    src = ch or pi
    cur = (src.get("currency") or "").lower()
    if ch is not None:
        status = ch.get("status")
        if ch.get("amount_captured") is not None:
            captured = int(ch["amount_captured"])
        elif status == "succeeded" and ch.get("captured") is not False:
            captured = int(ch.get("amount") or 0)
        else:
            captured = 0
        refunded = int(ch.get("amount_refunded") or 0)
        disputed = bool(ch.get("disputed"))
        created = ch.get("created")
    else:
        status = pi.get("status")
        captured = int(pi.get("amount_received") or 0) if status == "succeeded" else 0
        refunded = 0
        disputed = False
        created = pi.get("created")
    pi_id = pi["id"] if pi else (ch.get("payment_intent") if ch else None)
    ch_id = ch["id"] if ch else None
    # A dispute may be stored before the charge's `disputed` flag is refreshed.
    if not disputed and ch_id:
        disputed = bool(con.execute(
            "SELECT count(*) FROM disputes WHERE charge = ? AND status NOT IN ('won', 'warning_closed')",
            [ch_id]).fetchone()[0])
    open_sql = ("SELECT coalesce(sum(amount), 0) FROM refund_requests WHERE status IN "
                "('PENDING', 'APPROVED', 'PROCESSING') AND (charge = ? OR payment_intent = ?)")
    params: list[Any] = [ch_id, pi_id]
    if exclude is not None:
        open_sql += " AND id <> ?"
        params.append(int(exclude))
    open_requests = int(con.execute(open_sql, params).fetchone()[0])
    refundable = max(0, captured - refunded - open_requests)

    booking_id = pi.get("booking_id") if pi else None
    brow = None
    if booking_id:
        brow = con.execute("SELECT booking_id, status, session_start FROM bookings WHERE booking_id = ?",
                           [booking_id]).fetchone()
    if brow is None and pi_id:
        brow = con.execute("SELECT booking_id, status, session_start FROM bookings WHERE payment_intent = ? "
                           "ORDER BY updated_at DESC LIMIT 1", [pi_id]).fetchone()
    payment = {
        "payment_intent": pi_id, "charge": ch_id,
        "customer": (ch or {}).get("customer") or (pi or {}).get("customer"),
        "currency": cur, "amount": int(src.get("amount") or 0), "captured": captured,
        "refunded": refunded, "open_requests": open_requests, "refundable": refundable,
        "disputed": disputed, "status": status, "created": created,
        "booking_id": brow[0] if brow else booking_id, "booking_status": brow[1] if brow else None,
        "session_start": brow[2] if brow else None,
        "livemode": (ch or {}).get("livemode", (pi or {}).get("livemode")),
    }

    def fmt(v: int) -> str:
        return format_amount(v, cur) if cur else str(v)

    name = ch_id or pi_id
    reasons: list[str] = []
    if status != "succeeded":
        reasons.append(f"payment {name} has status {status}; only succeeded payments can be refunded")
    if disputed:
        reasons.append(f"payment {name} is disputed; a refund would be paid twice (answer the dispute instead)")
    if status == "succeeded" and captured > 0 and refunded >= captured:
        reasons.append(f"payment {name} is already fully refunded ({fmt(refunded)})")
    elif status == "succeeded" and captured > 0 and refundable <= 0:
        reasons.append(f"nothing left to refund on {name}: captured {fmt(captured)} - refunded {fmt(refunded)}"
                       f" - open requests {fmt(open_requests)}")
    if currency is not None and cur and currency.lower() != cur:
        reasons.append(f"the request is in {currency.upper()} but payment {name} is in {cur.upper()}")
    if amount is not None:
        if amount <= 0:
            reasons.append(f"the amount must be positive, got {fmt(amount)}")
        elif amount > refundable and refundable > 0:
            reasons.append(f"{fmt(amount)} is more than the refundable {fmt(refundable)} (captured {fmt(captured)}"
                           f" - refunded {fmt(refunded)} - open requests {fmt(open_requests)})")
    window = settings.refund_policy.refund_window
    if window is not None and created is not None:
        age = now - created
        if age > window:
            reasons.append(f"payment {name} was made {age.days} days ago, outside the "
                           f"{settings.refund_policy.refund_window_days:g}-day refund window")
    return Verdict(eligible=not reasons, reasons=reasons, payment=payment)


def check(payment_id: str, amount: int | None = None, *, exclude: int | None = None, db=None) -> Verdict:
    """Can ``payment_id`` (``pi_...`` or ``ch_...``) be refunded, by ``amount`` (minor units)?

    Returns a :class:`Verdict` with every reason it cannot (not succeeded, disputed, fully
    refunded, more than refundable = captured - refunded - other open requests, outside the
    refund window). ``exclude``: a request id whose own amount does not count as another
    open request (what :func:`approve` and :func:`process` ask for that request).
    Raises :class:`~payops.errors.NotFound` for an unknown payment.
    """
    with connect(db) as con:
        return _verdict(con, payment_id, amount, exclude=exclude)


# --------------------------------------------------------------------------- requests


def request(payment_id: str, *, reason: str, amount: int | None = None, note: str | None = None,
            requested_by: str | None = None, db=None) -> dict:
    """Open a refund request (PENDING) for a payment; returns the stored request.

    Args:
        payment_id: ``pi_...`` or ``ch_...``.
        reason: one of :data:`REASONS` (Stripe's refund reasons).
        amount: minor units; default all that is still refundable.
        note: free text (why).
        requested_by: who asks; default ``PAYOPS_USER``.

    Raises:
        InvalidInput: an unknown reason or a non-positive amount.
        NotEligible: the payment cannot be refunded by this amount (the message lists why).
        NotFound: no such payment in the database.
    """
    if reason not in REASONS:
        raise InvalidInput(f"unknown reason {reason!r}; use one of {', '.join(REASONS)}")
    if amount is not None:
        if isinstance(amount, bool) or not isinstance(amount, int):
            raise InvalidInput(f"amounts are integers in minor units, got {amount!r}")
        if amount <= 0:
            raise InvalidInput(f"the amount must be positive, got {amount}")
    who = _user(requested_by)
    now = _now()
    with connect(db) as con, transaction(con):
        # Check and insert under the same lock: two requests cannot both take the last euro.
        v = _verdict(con, payment_id, amount, now=now)
        if not v.eligible:
            raise NotEligible(f"{payment_id} cannot be refunded: " + "; ".join(v.reasons))
        p = v.payment
        amt = amount if amount is not None else p["refundable"]
        (rid,) = con.execute(
            "INSERT INTO refund_requests (payment_intent, charge, customer, amount, currency, reason, note,"
            " status, requested_by, requested_at, attempts, retries, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, 'PENDING', ?, ?, 0, 0, ?) RETURNING id",
            [p["payment_intent"], p["charge"], p["customer"], amt, p["currency"], reason, note, who, now, now],
        ).fetchone()
        after = {"status": "PENDING", "payment_intent": p["payment_intent"], "charge": p["charge"],
                 "customer": p["customer"], "amount": amt, "currency": p["currency"], "reason": reason}
        audit.record(con, actor=who, action=f"{ENTITY}.create", entity=ENTITY, entity_id=rid,
                     after=after, note=note, at=now)
        return _row(con, rid)


def get(request_id: int, *, db=None) -> dict:
    """One refund request as a dict; :class:`~payops.errors.NotFound` if there is none."""
    with connect(db) as con:
        row = _row(con, request_id)
    if row is None:
        raise NotFound(f"no refund request {request_id}")
    return row


def history(request_id: int, *, db=None) -> pd.DataFrame:
    """The audit rows of one request, oldest first."""
    with connect(db) as con:
        return con.execute(
            'SELECT id, "at", actor, action, "before", after, note FROM audit_log '
            "WHERE entity = ? AND entity_id = ? ORDER BY id", [ENTITY, str(int(request_id))]).df()


# --------------------------------------------------------------------------- the queue


def _priority_sql(con: duckdb.DuckDBPyConnection, settings, now: datetime) -> tuple[str, list]:
    """CTEs ``th`` (LARGE threshold per currency) and ``cut`` (URGENT / HIGH age limits)."""
    currencies = [r[0] for r in con.execute("SELECT DISTINCT currency FROM refund_requests").fetchall()
                  if r[0]]
    params: list[Any] = []
    if currencies:
        values = ", ".join("(?, ?)" for _ in currencies)
        for c in currencies:
            params += [c, large_threshold(c, settings)]
        th = f"th(currency, large) AS (VALUES {values})"
    else:
        th = "th(currency, large) AS (SELECT NULL::VARCHAR, NULL::BIGINT WHERE false)"
    urgent = now - settings.refund_policy.urgent_after
    high = now - settings.refund_policy.high_after
    params += [urgent, high, now]
    cut = "cut AS (SELECT ?::TIMESTAMPTZ AS urgent_before, ?::TIMESTAMPTZ AS high_before, ?::TIMESTAMPTZ AS now_)"
    return f"WITH {th}, {cut}", params


# Priority flags: age counts only while a request waits for a decision (PENDING).
_FLAGS = """
    (r.status = 'PENDING' AND r.requested_at < cut.urgent_before) AS is_urgent,
    (r.status = 'PENDING' AND r.requested_at < cut.high_before AND r.requested_at >= cut.urgent_before) AS is_high,
    (r.amount > coalesce(th.large, 9223372036854775807)) AS is_large
"""


def _filters(status, priority, currency, min_amount, search, customer=None,
             waiting_for=None) -> tuple[list[str], list[str], list]:
    """(where on requests, where on flags, params in order)."""
    where, params = [], []
    if status is not None:
        statuses = [status] if isinstance(status, str) else list(status)
        statuses = [s.upper() for s in statuses]
        bad = [s for s in statuses if s not in STATUSES]
        if bad:
            raise InvalidInput(f"unknown status {bad[0]!r}; use one of {', '.join(STATUSES)}")
        if statuses:
            where.append(f"r.status IN ({', '.join('?' for _ in statuses)})")
            params += statuses
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
    flag_where = _reviewer_filters(customer, waiting_for, where, params)
    if priority:
        prios = [priority] if isinstance(priority, str) else list(priority)
        ors = []
        for p in prios:
            p = p.upper()
            if p == "URGENT":
                ors.append("is_urgent")
            elif p == "HIGH":
                ors.append("is_high")
            elif p == "LARGE":
                ors.append("is_large")
            elif p in ("NORMAL", "OTHER"):
                ors.append("NOT (is_urgent OR is_high OR is_large)")
            else:
                raise InvalidInput(f"unknown priority {p!r}; use one of {', '.join(PRIORITIES)} or NORMAL")
        flag_where.append("(" + " OR ".join(ors) + ")")
    return where, flag_where, params


def _reviewer_filters(customer, waiting_for, where: list[str], params: list) -> list[str]:
    """The review app's filters (one customer; "waiting for me"), appended to ``where``/``params``.

    Returns the conditions on the priority flags.
    """
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
    return flag_where


def _base_sql(con, settings, now, status, priority, currency, min_amount, search, customer=None,
              waiting_for=None) -> tuple[str, list]:
    head, params = _priority_sql(con, settings, now)
    where, flag_where, fparams = _filters(status, priority, currency, min_amount, search, customer, waiting_for)
    sql = f"""{head},
    base AS (
        SELECT r.*, c.email AS customer_email, c.name AS customer_name,
               date_diff('second', r.requested_at, cut.now_) / 3600.0 AS age_hours,
               {_FLAGS}
        FROM refund_requests r
        CROSS JOIN cut
        LEFT JOIN th ON th.currency = r.currency
        LEFT JOIN customers c ON c.id = r.customer
        {"WHERE " + " AND ".join(where) if where else ""}
    ),
    ranked AS (
        SELECT *, (CASE WHEN is_urgent THEN 0 WHEN is_high THEN 2 ELSE 4 END)
                  + (CASE WHEN is_large THEN 0 ELSE 1 END) AS priority_rank
        FROM base {"WHERE " + " AND ".join(flag_where) if flag_where else ""}
    )"""
    return sql, params + fparams


QUEUE_COLUMNS = (
    "id", "status", "priorities", "priority_rank", "amount", "currency", "amount_display", "age_hours",
    "customer", "customer_email", "customer_name", "payment_intent", "charge", "reason", "note",
    "requested_by", "requested_at", "first_approver", "decided_by", "decided_at", "decision_note",
    "second_approver", "stripe_refund_id", "failure_message", "livemode",
)


# The queue's orders; amounts are compared within a currency only (minor units of two
# currencies are not comparable), so "amount" groups by currency first.
_ORDERS = {
    "priority": "priority_rank, requested_at, id",
    "age": "requested_at, id",
    "amount": "currency, amount DESC, requested_at, id",
}
SORTS = tuple(_ORDERS)


def queue(*, status=("PENDING",), priority=None, currency=None, min_amount=None, search=None, customer=None,
          waiting_for=None, sort="priority", limit=50, offset=0, db=None, now=None) -> pd.DataFrame:
    """One page of the review queue, in priority order (or by age or amount).

    Order: URGENT, then HIGH, then the others; LARGE first within each; then oldest first.
    Priorities are computed in SQL, so the first page of 100,000 requests is a top-N query.

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

    Returns:
        A DataFrame with the columns of :data:`QUEUE_COLUMNS`.
    """
    settings = get_settings()
    now = now or _now()
    if sort not in _ORDERS:
        raise InvalidInput(f"unknown sort {sort!r}; use one of {', '.join(SORTS)}")
    order = _ORDERS[sort]
    with connect(db) as con:
        sql, params = _base_sql(con, settings, now, status, priority, currency, min_amount, search, customer,
                                waiting_for)
        page = "" if limit is None else f" LIMIT {int(limit)} OFFSET {int(offset or 0)}"
        df = con.execute(
            f"""{sql},
            page AS (SELECT * FROM ranked ORDER BY {order} {page})
            SELECT page.*, coalesce(ch.livemode, pi.livemode) AS livemode
            FROM page LEFT JOIN charges ch ON ch.id = page.charge
                      LEFT JOIN payment_intents pi ON pi.id = page.payment_intent
            ORDER BY {order}""",
            params,
        ).df()
    if df.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in QUEUE_COLUMNS})
    df["priorities"] = [
        [p for p, flag in (("URGENT", u), ("HIGH", h), ("LARGE", lg)) if flag]
        for u, h, lg in zip(df["is_urgent"], df["is_high"], df["is_large"], strict=False)
    ]
    df["amount_display"] = [format_amount(int(a), c) for a, c in zip(df["amount"], df["currency"], strict=False)]
    return df[list(QUEUE_COLUMNS)].reset_index(drop=True)


def queue_count(*, status=("PENDING",), priority=None, currency=None, min_amount=None, search=None, customer=None,
                waiting_for=None, db=None, now=None, **_: Any) -> int:
    """How many requests :func:`queue` would list with the same filters (all pages)."""
    settings = get_settings()
    now = now or _now()
    with connect(db) as con:
        sql, params = _base_sql(con, settings, now, status, priority, currency, min_amount, search, customer,
                                waiting_for)
        return int(con.execute(f"{sql} SELECT count(*) FROM ranked", params).fetchone()[0])


def pending_by_priority(*, db=None, now=None) -> dict[str, int]:
    """PENDING requests per priority: ``{"URGENT", "HIGH", "LARGE", "NORMAL"}``.

    URGENT and HIGH are by age and exclusive; LARGE overlaps both; NORMAL is none of them.
    """
    settings = get_settings()
    now = now or _now()
    with connect(db) as con:
        sql, params = _base_sql(con, settings, now, ("PENDING",), None, None, None, None)
        u, h, lg, n = con.execute(
            f"""{sql} SELECT count(*) FILTER (WHERE is_urgent), count(*) FILTER (WHERE is_high),
                       count(*) FILTER (WHERE is_large),
                       count(*) FILTER (WHERE NOT (is_urgent OR is_high OR is_large)) FROM ranked""",
            params).fetchone()
    return {"URGENT": int(u), "HIGH": int(h), "LARGE": int(lg), "NORMAL": int(n)}


def customer_history(customer: str, *, exclude: int | None = None, limit: int = 100,
                     db=None) -> dict[str, pd.DataFrame]:
    """What a reviewer wants to know about a customer before deciding one of their requests.

    Args:
        customer: the customer id (``cus_...``).
        exclude: a request id to leave out (the one being reviewed).
        limit: at most this many rows of each kind (newest first).

    Returns:
        ``{"requests": ..., "disputes": ...}``: the customer's other refund requests (id,
        status, amount, currency, reason, requested_at, decided_by, decided_at, payment_intent,
        charge), newest first, open ones (:data:`OPEN_STATUSES`) included; and the disputes
        on their payments (id, charge, payment_intent, amount, currency, status, reason,
        created), newest first.
    """
    with connect(db) as con:
        requests = con.execute(
            "SELECT id, status, amount, currency, reason, requested_at, decided_by, decided_at, payment_intent, "
            "charge FROM refund_requests WHERE customer = ? AND id <> ? ORDER BY requested_at DESC, id DESC LIMIT ?",
            [customer, -1 if exclude is None else int(exclude), int(limit)]).df()
        disputes = con.execute(
            """SELECT d.id, d.charge, d.payment_intent, d.amount, d.currency, d.status, d.reason, d.created
               FROM disputes d LEFT JOIN charges c ON c.id = d.charge
                               LEFT JOIN payment_intents pi ON pi.id = d.payment_intent
               WHERE coalesce(c.customer, pi.customer) = ?
               ORDER BY d.created DESC, d.id DESC LIMIT ?""", [customer, int(limit)]).df()
    return {"requests": requests, "disputes": disputes}


# --------------------------------------------------------------------------- decisions


def _transition(con, row: dict, *, to: str, actor: str, action: str, sets: dict, note: str | None,
                expect: dict | None = None, at: datetime | None = None, audit_extra: dict | None = None) -> bool:
    """One conditional UPDATE (``WHERE id AND status [AND expect...]``) plus its audit row.

    Returns False (and writes nothing) when the row no longer matches.
    """
    at = at or _now()
    sets = {**sets, "status": to, "updated_at": at}
    cond = ["id = ?", "status = ?"]
    params = list(sets.values()) + [row["id"], row["status"]]
    for col, val in (expect or {}).items():
        if val is None:
            cond.append(f"{col} IS NULL")
        else:
            cond.append(f"{col} = ?")
            params.append(val)
    assignments = ", ".join(f"{k} = ?" for k in sets)
    changed = con.execute(
        f"UPDATE refund_requests SET {assignments} WHERE {' AND '.join(cond)} RETURNING id", params).fetchall()
    if not changed:
        return False
    before = _snapshot(row, *[k for k in sets if k not in ("status", "updated_at")])
    after = {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in sets.items() if k != "updated_at"}
    after.update(audit_extra or {})
    audit.record(con, actor=actor, action=f"{ENTITY}.{action}", entity=ENTITY, entity_id=row["id"],
                 before=before, after=after, note=note, at=at)
    return True


def _decide(request_id: int, fn, db) -> ActionResult:
    """Run one decision in its own short transaction; a lost race or a problem is a result."""
    try:
        with connect(db) as con:
            con.execute("BEGIN TRANSACTION")
            try:
                row = _row(con, request_id)
                if row is None:
                    con.execute("ROLLBACK")
                    return ActionResult(request_id, False, "", f"no refund request {request_id}")
                result = fn(con, row)
                con.execute("COMMIT" if result.ok else "ROLLBACK")
                return result
            except BaseException:
                con.execute("ROLLBACK")
                raise
    except duckdb.TransactionException:
        # Another connection of this process changed the row first; re-read to say who.
        row = get(request_id, db=db)
        return ActionResult(request_id, False, row["status"], _already(row))
    except PayopsError as exc:
        return ActionResult(request_id, False, "", f"request {request_id}: {exc.message}")


def _missing_role(settings, user: str, *roles: str) -> str | None:
    if any(settings.has_role(user, r) for r in roles):
        return None
    need = " or ".join(roles)
    return f"{user} lacks the {need} role needed for this (set in {settings.config_path} [roles])"


def approve(ids: int | list[int], *, user: str | None = None, note: str | None = None, db=None) -> list[ActionResult]:
    """Approve PENDING requests (or send FAILED ones back to APPROVED for a retry).

    A request above the LARGE threshold needs two approvals (four-eyes): the first by a
    reviewer (or senior) is recorded and leaves it PENDING; the second must come from a
    senior who is neither the first approver nor the requester. The payment's eligibility
    is checked again. Each request gets one :class:`ActionResult`; nothing raises.
    """
    settings = get_settings()
    who = _user(user)
    out = []
    for rid in _ids(ids):
        def do(con, row, rid=rid):
            now = _now()
            status = row["status"]
            large = row["amount"] > large_threshold(row["currency"], settings)
            if status == "FAILED":
                return _retry(con, row, who, note, large, settings, now)
            if status != "PENDING":
                return ActionResult(rid, False, status, _already(row))
            first = row["first_approver"]
            if large and first is not None:
                missing = _missing_role(settings, who, "senior")
                if missing:
                    return ActionResult(rid, False, status, f"request {rid} is LARGE and needs a second approval: "
                                        f"{missing}")
                if who == first:
                    return ActionResult(rid, False, status, f"request {rid} needs a second approval by a senior "
                                        f"other than {first}, who gave the first one")
                if who == row["requested_by"]:
                    return ActionResult(rid, False, status, f"request {rid} needs a second approval by a senior "
                                        f"other than {who}, who requested it")
            else:
                missing = _missing_role(settings, who, "reviewer", "senior")
                if missing:
                    return ActionResult(rid, False, status, f"cannot approve request {rid}: {missing}")
            v = _verdict(con, row["payment_intent"] or row["charge"], row["amount"], exclude=rid,
                         currency=row["currency"], now=now, settings=settings)
            if not v.eligible:
                return ActionResult(rid, False, status, f"request {rid} is not eligible: " + "; ".join(v.reasons))
            if large and first is None:
                ok = _transition(con, row, to="PENDING", actor=who, action="approve", note=note, at=now,
                                 sets={"first_approver": who, "first_approved_at": now},
                                 expect={"first_approver": None})
                if not ok:
                    return ActionResult(rid, False, status, _already(_row(con, rid) or row))
                return ActionResult(rid, True, "PENDING",
                                    f"request {rid}: first approval by {who} recorded; it is LARGE and needs a "
                                    f"second approval by a senior other than {who} and {row['requested_by']}")
            sets = {"decided_by": who, "decided_at": now, "decision_note": note}
            if large:
                sets["second_approver"] = who
                expect = {"first_approver": first}
            else:
                sets.update(first_approver=who, first_approved_at=now)
                expect = {"first_approver": None}
            if not _transition(con, row, to="APPROVED", actor=who, action="approve", note=note, at=now,
                               sets=sets, expect=expect):
                return ActionResult(rid, False, status, _already(_row(con, rid) or row))
            amount = format_amount(row["amount"], row["currency"])
            extra = f" (second approval; first by {first})" if large else ""
            return ActionResult(rid, True, "APPROVED", f"request {rid} approved by {who}{extra}: {amount}")
        out.append(_decide(rid, do, db))
    return out


def _retry(con, row, who, note, large, settings, now) -> ActionResult:
    """FAILED -> APPROVED: send a failed request back for processing, with a fresh key."""
    rid = row["id"]
    missing = _missing_role(settings, who, "senior") if large else _missing_role(settings, who, "reviewer", "senior")
    if missing:
        return ActionResult(rid, False, row["status"], f"cannot retry request {rid}: {missing}")
    v = _verdict(con, row["payment_intent"] or row["charge"], row["amount"], exclude=rid,
                 currency=row["currency"], now=now, settings=settings)
    if not v.eligible:
        return ActionResult(rid, False, row["status"], f"request {rid} is not eligible: " + "; ".join(v.reasons))
    ok = _transition(con, row, to="APPROVED", actor=who, action="retry", note=note, at=now,
                     sets={"retries": int(row.get("retries") or 0) + 1, "failure_message": None,
                           "decided_by": who, "decided_at": now})
    if not ok:
        return ActionResult(rid, False, row["status"], _already(_row(con, rid) or row))
    return ActionResult(rid, True, "APPROVED", f"request {rid} approved again by {who} for a retry")


def reject(ids: int | list[int], *, note: str, user: str | None = None, db=None) -> list[ActionResult]:
    """Reject PENDING requests; a note (why) is required. One :class:`ActionResult` each."""
    settings = get_settings()
    who = _user(user)
    out = []
    for rid in _ids(ids):
        if not (note or "").strip():
            out.append(ActionResult(rid, False, "", f"request {rid}: a rejection needs a note (why)"))
            continue

        def do(con, row, rid=rid):
            if row["status"] != "PENDING":
                return ActionResult(rid, False, row["status"], _already(row))
            missing = _missing_role(settings, who, "reviewer", "senior")
            if missing:
                return ActionResult(rid, False, row["status"], f"cannot reject request {rid}: {missing}")
            now = _now()
            if not _transition(con, row, to="REJECTED", actor=who, action="reject", note=note, at=now,
                               sets={"decided_by": who, "decided_at": now, "decision_note": note},
                               expect={"first_approver": row["first_approver"]}):
                return ActionResult(rid, False, row["status"], _already(_row(con, rid) or row))
            return ActionResult(rid, True, "REJECTED", f"request {rid} rejected by {who}: {note}")
        out.append(_decide(rid, do, db))
    return out


def apply_policy(*, db=None, now: datetime | None = None) -> list[ActionResult]:
    """The session rule: auto-approve (actor ``policy``) eligible PENDING requests whose session
    was not held, i.e. its booking is cancelled, a tutor no-show, or scheduled in the future,
    up to ``[refunds] auto_approve_cap``. LARGE requests (four-eyes) and completed sessions stay
    for reviewers. Returns one result per request the rule applies to.
    """
    settings = get_settings()
    now = now or _now()
    with connect(db) as con:
        candidates = _dicts(con.execute(
            """SELECT r.id, r.amount, r.currency, b.status AS booking_status
               FROM refund_requests r
               JOIN payment_intents pi ON pi.id = r.payment_intent
               JOIN bookings b ON b.booking_id = pi.booking_id OR (pi.booking_id IS NULL AND b.payment_intent = r.payment_intent)
               WHERE r.status = 'PENDING' AND r.first_approver IS NULL
                 AND (b.status IN ('cancelled', 'no_show') OR (b.status = 'scheduled' AND b.session_start > ?))
               ORDER BY r.requested_at, r.id""", [now]))
    out = []
    for c in candidates:
        cap = settings.refund_policy.auto_approve_cap(c["currency"])
        if c["amount"] > large_threshold(c["currency"], settings) or (cap is not None and c["amount"] > cap):
            continue

        def do(con, row, c=c):
            rid = row["id"]
            if row["status"] != "PENDING" or row["first_approver"] is not None:
                return ActionResult(rid, False, row["status"], _already(row))
            v = _verdict(con, row["payment_intent"] or row["charge"], row["amount"], exclude=rid,
                         currency=row["currency"], now=now, settings=settings)
            if not v.eligible:
                return ActionResult(rid, False, "PENDING", f"request {rid} is not eligible: " + "; ".join(v.reasons))
            t = _now()
            why = {"cancelled": "session cancelled", "no_show": "tutor no-show",
                   "scheduled": "session not yet held"}[c["booking_status"]]
            note = f"auto-approved by policy: {why} (booking {v.payment['booking_id']})"
            if not _transition(con, row, to="APPROVED", actor="policy", action="approve", note=note, at=t,
                               sets={"first_approver": "policy", "first_approved_at": t, "decided_by": "policy",
                                     "decided_at": t, "decision_note": note},
                               expect={"first_approver": None}):
                return ActionResult(rid, False, row["status"], _already(_row(con, rid) or row))
            return ActionResult(rid, True, "APPROVED",
                                f"request {rid} approved by policy: {why}, "
                                f"{format_amount(row['amount'], row['currency'])}")
        out.append(_decide(c["id"], do, db))
    return out


# --------------------------------------------------------------------------- processing


def _client(api):
    if api is not None:
        return api
    from payops.stripe_api import get_client

    return get_client()


def _find_refund(refunds: list[dict], request_id: int) -> dict | None:
    """The live refund Stripe holds for a request (by metadata), ignoring failed/canceled ones."""
    for r in refunds:
        md = r.get("metadata") or {}
        if str(md.get("payops_request_id")) == str(request_id) and r.get("status") not in ("failed", "canceled"):
            return r
    return None


def _record_refund(row: dict, refund: dict, actor: str, db, *, action: str = "processed") -> ActionResult:
    """PROCESSING -> PROCESSED (or FAILED if Stripe says the refund failed), storing the refund."""
    from payops.ingest import ingest_into

    rid = row["id"]
    now = _now()
    failed = refund.get("status") in ("failed", "canceled")
    with connect(db) as con, transaction(con):
        ingest_into(con, [refund])
        cur = _row(con, rid)
        if cur is None or cur["status"] != "PROCESSING":
            # Someone (another run, a reconcile) recorded it first: fine, nothing to add.
            return ActionResult(rid, cur is not None and cur["status"] == "PROCESSED",
                                cur["status"] if cur else "", f"request {rid} is already {cur['status'] if cur else '?'}")
        if failed:
            msg = f"Stripe refund {refund['id']} {refund.get('status')}: {refund.get('failure_reason') or 'no reason given'}"
            _transition(con, cur, to="FAILED", actor=actor, action="fail", note=msg, at=now,
                        sets={"stripe_refund_id": refund["id"], "failure_message": msg})
            return ActionResult(rid, False, "FAILED", f"request {rid} failed: {msg}")
        _transition(con, cur, to="PROCESSED", actor=actor, action=action, note=None, at=now,
                    sets={"stripe_refund_id": refund["id"], "processed_at": now, "failure_message": None},
                    audit_extra={"refund_status": refund.get("status")})
    amount = format_amount(int(refund.get("amount") or row["amount"]), row["currency"])
    return ActionResult(rid, True, "PROCESSED", f"request {rid} refunded {amount}: {refund['id']} ({refund.get('status')})")


def _send(row: dict, api, actor: str, db, *, look_first: bool) -> ActionResult:
    """Create (or find) the Stripe refund of a PROCESSING request and record the outcome.

    No database connection is open while Stripe is called.
    """
    rid = row["id"]
    charge = row["charge"]
    try:
        if look_first:
            found = _find_refund(api.list_refunds(charge=charge) if charge else
                                 api.list_refunds(payment_intent=row["payment_intent"]), rid)
            if found is not None:
                return _record_refund(row, found, actor, db)
        send_reason = get_settings().refund_policy.send_reason
        refund = api.create_refund(
            idempotency_key=idempotency_key(rid, int(row.get("retries") or 0)),
            charge=charge, payment_intent=None if charge else row["payment_intent"],
            amount=int(row["amount"]), reason=row["reason"] if send_reason else None,
            metadata={"payops_request_id": str(rid)},
        )
    except StripeError as exc:
        if getattr(exc, "http_status", None) == 409 or getattr(exc, "code", None) == "idempotency_key_in_use":
            # Another run is sending this very refund right now: not a refusal, just wait.
            return ActionResult(rid, False, "PROCESSING",
                                f"request {rid}: being sent by another run ({exc.message}); reconcile later")
        # Stripe refused it (already refunded, amount too large, disputed...): terminal.
        msg = exc.message
        with connect(db) as con, transaction(con):
            cur = _row(con, rid)
            if cur is None or cur["status"] != "PROCESSING":
                return ActionResult(rid, False, cur["status"] if cur else "", f"request {rid} is {cur and cur['status']}")
            _transition(con, cur, to="FAILED", actor=actor, action="fail", note=msg,
                        sets={"failure_message": msg}, audit_extra={"stripe_code": getattr(exc, "code", None)})
        return ActionResult(rid, False, "FAILED", f"request {rid} failed: {msg}")
    except TransientError as exc:
        # Stripe may or may not have made the refund: stay PROCESSING; a rerun or reconcile
        # retries with the same idempotency key (and looks for the refund first).
        msg = f"{exc.message}; still PROCESSING, run `payops refunds reconcile` to finish it"
        with connect(db) as con, transaction(con):
            con.execute("UPDATE refund_requests SET failure_message = ? WHERE id = ? AND status = 'PROCESSING'",
                        [msg, rid])
            audit.record(con, actor=actor, action=f"{ENTITY}.attempt_failed", entity=ENTITY, entity_id=rid,
                         before={"status": "PROCESSING"}, after={"status": "PROCESSING"}, note=msg)
        return ActionResult(rid, False, "PROCESSING", f"request {rid}: {msg}")
    return _record_refund(row, refund, actor, db)


def _start(request_id: int, actor: str, db, settings) -> tuple[dict | None, ActionResult | None]:
    """APPROVED -> PROCESSING (committed before Stripe is called), after re-checking eligibility."""
    with connect(db) as con, transaction(con):
        row = _row(con, request_id)
        if row is None:
            return None, ActionResult(request_id, False, "", f"no refund request {request_id}")
        if row["status"] != "APPROVED":
            return None, ActionResult(request_id, False, row["status"],
                                      f"request {request_id} is {row['status']}, not APPROVED")
        now = _now()
        v = _verdict(con, row["payment_intent"] or row["charge"], row["amount"], exclude=request_id,
                     currency=row["currency"], now=now, settings=settings)
        if not v.eligible:
            msg = "not eligible any more: " + "; ".join(v.reasons)
            _transition(con, row, to="FAILED", actor=actor, action="fail", note=msg, at=now,
                        sets={"failure_message": msg})
            return None, ActionResult(request_id, False, "FAILED", f"request {request_id} failed: {msg}")
        attempts = int(row["attempts"] or 0)
        if not _transition(con, row, to="PROCESSING", actor=actor, action="process", note=None, at=now,
                           sets={"attempts": attempts + 1},
                           audit_extra={"idempotency_key": idempotency_key(request_id, int(row.get("retries") or 0))}):
            cur = _row(con, request_id)
            return None, ActionResult(request_id, False, cur["status"], f"request {request_id} is {cur['status']}")
        row = _row(con, request_id)
        row["_previous_attempts"] = attempts
        return row, None


def process(*, limit: int | None = None, dry_run: bool = False, user: str | None = None, db=None,
            api=None, ids: list[int] | None = None) -> list[ActionResult]:
    """Send APPROVED requests to Stripe (oldest decision first); needs the processor role.

    For each: mark PROCESSING (committed), create the refund with idempotency key
    ``payops-refund-<id>`` and metadata ``payops_request_id``, then mark PROCESSED with the
    refund id (the refund row is stored too). A Stripe refusal makes it FAILED with Stripe's
    message; a network error or timeout is retried with the same key and, if Stripe stays
    unreachable, leaves it PROCESSING for :func:`reconcile`. PROCESSING requests older than
    ``[refunds] stuck_processing_hours`` (left by a crash) are reconciled first.

    Args:
        limit: at most this many requests.
        dry_run: only say what would be sent; change nothing, call nothing.
        user: who processes (default ``PAYOPS_USER``).
        api: a :class:`payops.stripe_api.StripeAPI` (default from the settings).
        ids: only these requests.
    """
    settings = get_settings()
    who = _user(user)
    sql = "SELECT id FROM refund_requests WHERE status = 'APPROVED'"
    params: list[Any] = []
    if ids is not None:
        sql += f" AND id IN ({', '.join('?' for _ in ids) or 'NULL'})"
        params += [int(i) for i in ids]
    sql += " ORDER BY decided_at NULLS FIRST, id"
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    with connect(db) as con:
        todo = [r[0] for r in con.execute(sql, params).fetchall()]
    missing = _missing_role(settings, who, "processor")
    if missing:
        return [ActionResult(rid, False, "APPROVED", f"cannot process request {rid}: {missing}") for rid in todo]
    out: list[ActionResult] = []
    if dry_run:
        with connect(db) as con:
            for rid in todo:
                row = _row(con, rid)
                v = _verdict(con, row["payment_intent"] or row["charge"], row["amount"], exclude=rid,
                             currency=row["currency"], settings=settings)
                amount = format_amount(row["amount"], row["currency"])
                if v.eligible:
                    out.append(ActionResult(rid, True, "APPROVED",
                                            f"request {rid}: would refund {amount} on {row['charge'] or row['payment_intent']}"))
                else:
                    out.append(ActionResult(rid, False, "APPROVED",
                                            f"request {rid}: would fail, not eligible: " + "; ".join(v.reasons)))
        return out
    if not todo and ids is None:
        stuck = settings.refund_policy.stuck_after
        return reconcile(user=who, db=db, api=api, older_than=stuck)
    client = _client(api) if todo else None
    if ids is None:
        stuck = settings.refund_policy.stuck_after
        out += reconcile(user=who, db=db, api=client, older_than=stuck)
    for rid in todo:
        row, problem = _start(rid, who, db, settings)
        if problem is not None:
            out.append(problem)
            continue
        # A request tried before (a crash, a timeout) may already have its refund in Stripe.
        out.append(_send(row, client, who, db, look_first=row["_previous_attempts"] > 0))
    return out


def reconcile(*, user: str | None = None, db=None, api=None, older_than: timedelta | None = None) -> list[ActionResult]:
    """Finish PROCESSING requests left by a crash or an unreachable Stripe.

    For each (optionally only those PROCESSING for longer than ``older_than``): list the
    charge's refunds in Stripe and look for ``metadata.payops_request_id``; if found, mark
    PROCESSED; if not, create it with the same idempotency key. Never a second refund.
    """
    settings = get_settings()
    who = _user(user)
    sql = "SELECT id FROM refund_requests WHERE status = 'PROCESSING'"
    params: list[Any] = []
    if older_than is not None:
        sql += " AND updated_at < ?"
        params.append(_now() - older_than)
    with connect(db) as con:
        rows = [_row(con, r[0]) for r in con.execute(sql + " ORDER BY id", params).fetchall()]
    if not rows:
        return []
    missing = _missing_role(settings, who, "processor")
    if missing:
        return [ActionResult(r["id"], False, "PROCESSING", f"cannot reconcile request {r['id']}: {missing}")
                for r in rows]
    client = _client(api)
    out = []
    for row in rows:
        with connect(db) as con, transaction(con):
            cur = _row(con, row["id"])
            if cur is None or cur["status"] != "PROCESSING":
                continue
            con.execute("UPDATE refund_requests SET attempts = attempts + 1 WHERE id = ?", [row["id"]])
        out.append(_send(cur, client, who, db, look_first=True))
    return out


def sync_refund_failures(db=None) -> list[ActionResult]:
    """PROCESSED requests whose Stripe refund later failed (``refund.failed`` /
    ``charge.refund.updated`` ingested by sync or webhooks) become FAILED, actor ``sync``.

    Idempotent: call it after applying events.
    """
    with connect(db) as con:
        found = _dicts(con.execute(
            """SELECT r.id, f.id AS refund_id, f.status AS refund_status, f.failure_reason
               FROM refund_requests r JOIN refunds f ON f.id = r.stripe_refund_id
               WHERE r.status = 'PROCESSED' AND f.status IN ('failed', 'canceled')
               ORDER BY r.id"""))
    out = []
    for f in found:
        def do(con, row, f=f):
            if row["status"] != "PROCESSED":
                return ActionResult(row["id"], False, row["status"], f"request {row['id']} is {row['status']}")
            msg = f"Stripe refund {f['refund_id']} {f['refund_status']}: {f['failure_reason'] or 'no reason given'}"
            if not _transition(con, row, to="FAILED", actor="sync", action="fail", note=msg,
                               sets={"failure_message": msg}):
                return ActionResult(row["id"], False, row["status"], f"request {row['id']} changed meanwhile")
            return ActionResult(row["id"], True, "FAILED", f"request {row['id']} marked FAILED: {msg}")
        out.append(_decide(f["id"], do, db))
    return out

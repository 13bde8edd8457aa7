"""The payops-owned rows of the demo: bookings, refund requests and their audit trail.

Stripe objects go through :mod:`payops.ingest`; these tables are payops's own. The demo's
only writes to ``refund_requests`` and ``audit_log`` are the two functions at the end,
:func:`insert_refund_requests` and :func:`append_audit_rows`, each one batch statement (a
million payments carry tens of thousands of requests): they move to the refunds and audit
APIs (``refunds`` bulk insert, ``audit.rows``) as soon as those exist.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, NamedTuple

import duckdb
import pyarrow as pa

from payops.audit import GENESIS, _canon, row_hash
from payops.demo.plan import AuditEvent, DemoRequest

__all__ = ["AuditRow", "append_audit_rows", "audit_rows", "insert_bookings", "insert_refund_requests",
           "new_request_ids"]

_BOOKING_COLUMNS = ("booking_id", "payment_intent", "customer", "tutor_id", "session_start", "status", "updated_at")
_REQUEST_COLUMNS = (
    "id", "payment_intent", "charge", "customer", "amount", "currency", "reason", "note", "status",
    "requested_by", "requested_at", "first_approver", "first_approved_at", "decided_by", "decided_at",
    "decision_note", "second_approver", "stripe_refund_id", "processed_at", "failure_message",
    "attempts", "updated_at",
)
_REQUEST_TIMES = {"requested_at", "first_approved_at", "decided_at", "processed_at", "updated_at"}
# What a request's ``create`` audit row holds, besides its status.
_CREATED_FIELDS = ("id", "payment_intent", "charge", "customer", "amount", "currency", "reason", "note",
                   "requested_by")
ENTITY = "refund_request"


def _ts(values: Sequence[int | None]) -> pa.Array:
    return pa.array(values, type=pa.timestamp("s", tz="UTC"))


def insert_bookings(con: duckdb.DuckDBPyConnection, rows: list[tuple]) -> None:
    """Store bookings rows ``(booking_id, payment_intent, customer, tutor_id, session_start, status,
    updated_at)``, times in epoch seconds."""
    if not rows:
        return
    cols = list(zip(*rows, strict=True))
    data = pa.Table.from_arrays(
        [pa.array(cols[0], pa.string()), pa.array(cols[1], pa.string()), pa.array(cols[2], pa.string()),
         pa.array(cols[3], pa.string()), _ts(cols[4]), pa.array(cols[5], pa.string()), _ts(cols[6])],
        names=list(_BOOKING_COLUMNS),
    )
    con.register("_demo_bookings", data)
    try:
        con.execute("INSERT INTO bookings BY NAME SELECT * FROM _demo_bookings")
    finally:
        con.unregister("_demo_bookings")


class AuditRow(NamedTuple):
    """One audit row to append (the fields of :func:`payops.audit.record`)."""

    actor: str
    action: str
    entity: str
    entity_id: str
    before: Any
    after: Any
    note: str | None
    at: datetime


def audit_rows(requests: list[DemoRequest], events: list[AuditEvent]) -> list[AuditRow]:
    """The requests' audit trail in time order, each row as ``payops.refunds`` would have written it."""
    by_id = {r.id: r for r in requests}
    out = []
    for e in sorted(events, key=lambda e: (e.at, e.request_id)):
        req = by_id[e.request_id]
        before: dict[str, Any] | None
        if e.action == "create":
            before = None
            after: dict[str, Any] = {k: getattr(req, k) for k in _CREATED_FIELDS}
            after["status"] = "PENDING"
        else:
            before, after = {"status": e.before}, {"status": e.after}
            if e.action in ("approve", "reject"):
                after["by"] = e.actor
            if e.action == "processed":
                after["stripe_refund_id"] = req.stripe_refund_id
            if e.action == "fail":
                after["failure_message"] = req.failure_message
        out.append(AuditRow(e.actor, f"{ENTITY}.{e.action}", ENTITY, str(e.request_id), before, after, e.note,
                            datetime.fromtimestamp(e.at, UTC)))
    return out


# --------------------------------------------------------------------------- the writes to move


def new_request_ids(con: duckdb.DuckDBPyConnection, n: int) -> list[int]:
    """``n`` fresh refund request ids, ascending."""
    return sorted(v for (v,) in con.execute("SELECT nextval('refund_request_ids') FROM range(?)", [n]).fetchall())


def insert_refund_requests(con: duckdb.DuckDBPyConnection, requests: list[DemoRequest]) -> None:
    """Store complete refund requests in one statement."""
    if not requests:
        return
    arrays = []
    for col in _REQUEST_COLUMNS:
        values = [getattr(r, col) for r in requests]
        if col in _REQUEST_TIMES:
            arrays.append(_ts(values))
        elif col in ("id", "amount"):
            arrays.append(pa.array(values, pa.int64()))
        elif col == "attempts":
            arrays.append(pa.array(values, pa.int32()))
        else:
            arrays.append(pa.array(values, pa.string()))
    con.register("_demo_requests", pa.Table.from_arrays(arrays, names=list(_REQUEST_COLUMNS)))
    try:
        con.execute("INSERT INTO refund_requests BY NAME SELECT * FROM _demo_requests")
    finally:
        con.unregister("_demo_requests")


def append_audit_rows(con: duckdb.DuckDBPyConnection, rows: list[AuditRow]) -> None:
    """Append audit rows in order, hash-chained exactly as :func:`payops.audit.record` does, in one statement.

    Calling ``record()`` per row costs two queries each, too slow for a million payments.
    """
    if not rows:
        return
    ids = sorted(v for (v,) in con.execute("SELECT nextval('audit_log_ids') FROM range(?)", [len(rows)]).fetchall())
    prev = con.execute("SELECT hash FROM audit_log ORDER BY id DESC LIMIT 1").fetchone()
    prev_hash = prev[0] if prev and prev[0] else GENESIS
    names = ("id", "at", "actor", "action", "entity", "entity_id", "before", "after", "note", "prev_hash", "hash")
    stored: list[tuple] = []
    for new_id, r in zip(ids, rows, strict=True):
        bj, aj = _canon(r.before), _canon(r.after)
        h = row_hash(prev_hash, new_id, r.at, r.actor, r.action, r.entity, r.entity_id, bj, aj, r.note)
        stored.append((new_id, r.at, r.actor, r.action, r.entity, r.entity_id, bj, aj, r.note, prev_hash, h))
        prev_hash = h
    cols = list(zip(*stored, strict=True))
    arrays = [pa.array(cols[0], pa.int64()), pa.array(cols[1], pa.timestamp("us", tz="UTC"))]
    arrays += [pa.array(c, pa.string()) for c in cols[2:]]
    con.register("_demo_audit", pa.Table.from_arrays(arrays, names=list(names)))
    try:
        con.execute("INSERT INTO audit_log BY NAME SELECT * FROM _demo_audit")
    finally:
        con.unregister("_demo_audit")

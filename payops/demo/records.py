"""The payops-owned rows of the demo: bookings, refund requests and their audit trail.

Stripe objects go through :mod:`payops.ingest`; these tables are payops's own. The demo
writes ``refund_requests`` and ``audit_log`` only through their owners' batch APIs,
:func:`payops.refunds.insert_many` and :func:`payops.audit.rows` (a million payments carry
tens of thousands of requests: one statement each), and every step of a generated history
is checked against :data:`payops.refunds.TRANSITIONS`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import duckdb
import pyarrow as pa

from payops import audit, refunds
from payops.db import insert_frame
from payops.demo.plan import AuditEvent, DemoRequest

__all__ = ["append_audit_rows", "audit_rows", "insert_bookings", "insert_refund_requests", "new_request_ids"]

_BOOKING_COLUMNS = ("booking_id", "payment_intent", "customer", "tutor_id", "session_start", "status", "updated_at")
_REQUEST_TIMES = ("requested_at", "first_approved_at", "decided_at", "processed_at", "updated_at")
# What a request's ``create`` audit row holds, besides its status.
_CREATED_FIELDS = ("id", "payment_intent", "charge", "customer", "amount", "currency", "reason", "note",
                   "requested_by")


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
    insert_frame(con, "bookings", data)


def audit_rows(requests: list[DemoRequest], events: list[AuditEvent]) -> list[audit.Entry]:
    """The requests' histories as :func:`payops.audit.rows` entries, in time order.

    Raises:
        IllegalTransition: a step the refunds state machine does not allow (a bug in the plan).
    """
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
            refunds.check_transition(e.before or "", e.after, e.action)
            before, after = {"status": e.before}, {"status": e.after}
            if e.action in ("approve", "reject"):
                after["by"] = e.actor
            if e.action in ("processed", "awaiting_refund"):
                after["stripe_refund_id"] = req.stripe_refund_id
            if e.action == "fail":
                after["failure_message"] = req.failure_message
        # a failure's note is the request's message, whose charge id the builder filled in after planning
        note = req.failure_message if e.action == "fail" else e.note
        out.append(audit.Entry(e.actor, f"{refunds.ENTITY}.{e.action}", refunds.ENTITY, str(e.request_id), before,
                               after, note, datetime.fromtimestamp(e.at, UTC)))
    return out


# --------------------------------------------------------------------------- the writes, through their owners


def new_request_ids(con: duckdb.DuckDBPyConnection, n: int) -> list[int]:
    """``n`` fresh refund request ids, ascending."""
    return refunds.new_ids(con, n)


def _moment(epoch: int | None) -> datetime | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, UTC)


def _refund_request(r: DemoRequest) -> refunds.RefundRequest:
    times: dict[str, Any] = {k: _moment(getattr(r, k)) for k in _REQUEST_TIMES}
    return refunds.RefundRequest(
        id=r.id, payment_intent=r.payment_intent, charge=r.charge, customer=r.customer, amount=r.amount,
        currency=r.currency, reason=r.reason, note=r.note, status=r.status, requested_by=r.requested_by,
        first_approver=r.first_approver, decided_by=r.decided_by, decision_note=r.decision_note,
        second_approver=r.second_approver, stripe_refund_id=r.stripe_refund_id, failure_message=r.failure_message,
        attempts=r.attempts, **times)


def insert_refund_requests(con: duckdb.DuckDBPyConnection, requests: list[DemoRequest]) -> None:
    """Store complete refund requests in one statement (:func:`payops.refunds.insert_many`)."""
    refunds.insert_many(con, [_refund_request(r) for r in requests])


def append_audit_rows(con: duckdb.DuckDBPyConnection, rows: list[audit.Entry]) -> None:
    """Append audit rows in order, hash-chained, in one statement (:func:`payops.audit.rows`)."""
    audit.rows(con, rows)

"""Reading and writing ``refund_requests`` rows: the package's storage, and the writes other
modules need (repairs by ``payops fix``, erasure, the demo's generated requests).

Nothing outside :mod:`payops.refunds` writes ``refund_requests``. The connection-level
functions here (``mark_failed``, ``link_refund``, ``mark_processed``, ``set_texts``,
``insert_many``, ``new_ids``) run on the caller's connection, inside the caller's
transaction; every status change among them goes through
:func:`payops.refunds.transition` and writes its audit row.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa

from payops import audit
from payops.db import insert_frame, reuse
from payops.errors import InvalidInput, NotFound
from payops.refunds.model import (
    COLUMNS,
    ENTITY,
    STATUSES,
    TEXT_COLUMNS,
    RefundRequest,
    load,
    transition,
    utcnow,
)

__all__ = ["get", "history", "insert", "insert_many", "new_ids", "set_texts", "mark_failed", "link_refund",
           "mark_processed"]

_TIMES = frozenset({"requested_at", "first_approved_at", "decided_at", "processed_at", "updated_at"})
_INTS = {"id": pa.int64(), "amount": pa.int64(), "attempts": pa.int32(), "retries": pa.int32()}


def get(request_id: int, *, db=None, con=None) -> RefundRequest:
    """One refund request; :class:`~payops.errors.NotFound` if there is none.

    ``con``: an open connection to read on (a composed read); default a short one of its own.
    """
    with reuse(con, db) as c:
        req = load(c, request_id)
    if req is None:
        raise NotFound(f"no refund request {request_id}")
    return req


def history(request_id: int, *, db=None, con=None) -> pd.DataFrame:
    """The audit rows of one request, oldest first (``con``: as :func:`get`)."""
    with reuse(con, db) as c:
        return c.execute(
            'SELECT id, "at", actor, action, "before", after, note FROM audit_log '
            "WHERE entity = ? AND entity_id = ? ORDER BY id", [ENTITY, str(int(request_id))]).df()


def insert(con: duckdb.DuckDBPyConnection, *, payment_intent: str | None, charge: str | None,
           customer: str | None, amount: int, currency: str, reason: str, note: str | None, requested_by: str,
           at: datetime, on_behalf_of: str | None = None) -> RefundRequest:
    """A new PENDING request and its ``create`` audit row, on ``con`` (the caller checked eligibility).

    ``on_behalf_of``: who the requester asks for (an imported CSV's ``requested_by``), kept in
    the audit row; the requester stays the one who acted.
    """
    cur = con.execute(
        "INSERT INTO refund_requests (payment_intent, charge, customer, amount, currency, reason, note,"
        " status, requested_by, requested_at, attempts, retries, updated_at)"
        f" VALUES (?, ?, ?, ?, ?, ?, ?, 'PENDING', ?, ?, 0, 0, ?) RETURNING {', '.join(COLUMNS)}",
        [payment_intent, charge, customer, amount, currency, reason, note, requested_by, at, at])
    req = RefundRequest.from_row(COLUMNS, cur.fetchall()[0])
    after = {"status": "PENDING", "payment_intent": payment_intent, "charge": charge, "customer": customer,
             "amount": amount, "currency": currency, "reason": reason}
    if on_behalf_of:
        after["on_behalf_of"] = on_behalf_of
    audit.record(con, actor=requested_by, action=f"{ENTITY}.create", entity=ENTITY, entity_id=req.id,
                 after=after, note=note, at=at)
    return req


def new_ids(con: duckdb.DuckDBPyConnection, n: int) -> list[int]:
    """``n`` fresh request ids, ascending (for requests built before they are stored)."""
    return sorted(r[0] for r in con.execute("SELECT nextval('refund_request_ids') FROM range(?)", [n]).fetchall())


def _column(name: str, values: list[Any]) -> pa.Array:
    if name in _TIMES:
        return pa.array(values, pa.timestamp("us", tz="UTC"))
    if name in _INTS:
        return pa.array(values, _INTS[name])
    return pa.array(values, pa.string())


def insert_many(con: duckdb.DuckDBPyConnection, requests: Sequence[RefundRequest]) -> int:
    """Store many complete requests in one statement (their audit rows are the caller's,
    through :func:`payops.audit.rows`); returns how many.

    For generated histories such as the demo's, whose ids come from :func:`new_ids`.
    """
    if not requests:
        return 0
    bad = [r.id for r in requests if r.status not in STATUSES or r.amount <= 0]
    if bad:
        raise InvalidInput(f"refund request {bad[0]} has an unknown status or a non-positive amount")
    table = pa.Table.from_arrays([_column(c, [getattr(r, c) for r in requests]) for c in COLUMNS],
                                 names=list(COLUMNS))
    insert_frame(con, "refund_requests", table)
    return len(requests)


def set_texts(con: duckdb.DuckDBPyConnection, columns: Sequence[str],
              updates: Sequence[tuple[int, Sequence[str | None]]]) -> None:
    """Rewrite free-text ``columns`` (a subset of :data:`TEXT_COLUMNS`) of requests, for erasure.

    ``updates`` are ``(request id, new values)`` pairs. The status does not change, so
    this is no transition; the erasure writes its own audit row.
    """
    unknown = [c for c in columns if c not in TEXT_COLUMNS]
    if unknown:
        raise InvalidInput(f"not a free-text column of refund_requests: {', '.join(unknown)}")
    if not updates:
        return
    sets = ", ".join(f"{c} = ?" for c in columns)
    con.executemany(f"UPDATE refund_requests SET {sets} WHERE id = ?", [[*values, rid] for rid, values in updates])


def _repair(con: duckdb.DuckDBPyConnection, request_id: int, status: str, to: str, *, action: str,
            actor: str, changes: Mapping[str, Any], note: str | None, audit_action: str | None) -> bool:
    req = load(con, request_id)
    if req is None or req.status != status:
        return False
    return transition(con, req, to, action=action, actor=actor, changes=changes, note=note,
                      audit_action=audit_action, at=utcnow()) is not None


def mark_failed(con: duckdb.DuckDBPyConnection, request_id: int, message: str, refund_id: str | None, *,
                actor: str, status: str = "PROCESSED", note: str | None = None,
                audit_action: str | None = None) -> bool:
    """A request whose refund Stripe does not have (or that failed) -> FAILED, so it can be retried.

    Only if it is still in ``status``; returns whether it changed. Audited (action
    ``audit_action``, default ``refund_request.fail``).
    """
    return _repair(con, request_id, status, "FAILED", action="fail", actor=actor, note=note,
                   audit_action=audit_action,
                   changes={"failure_message": message, "stripe_refund_id": refund_id})


def link_refund(con: duckdb.DuckDBPyConnection, request_id: int, refund_id: str, *, actor: str,
                note: str | None = None, audit_action: str | None = None) -> bool:
    """Record the Stripe refund of a PROCESSED request that lacked it; returns whether it changed."""
    return _repair(con, request_id, "PROCESSED", "PROCESSED", action="link_refund", actor=actor, note=note,
                   audit_action=audit_action, changes={"stripe_refund_id": refund_id})


def mark_processed(con: duckdb.DuckDBPyConnection, request_id: int, status: str, refund_id: str,
                   processed_at: datetime, *, actor: str, note: str | None = None,
                   audit_action: str | None = None) -> bool:
    """A request in ``status`` whose Stripe refund exists -> PROCESSED; False if its status moved meanwhile.

    ``processed_at`` is kept if the request already has one.
    """
    req = load(con, request_id)
    if req is None or req.status != status:
        return False
    changes = {"stripe_refund_id": refund_id, "processed_at": req.processed_at or processed_at,
               "failure_message": None}
    return transition(con, req, "PROCESSED", action="mark_processed", actor=actor, changes=changes, note=note,
                      audit_action=audit_action, at=utcnow()) is not None

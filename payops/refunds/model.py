"""Refund requests as data: the statuses, the one table of transitions, and its one writer.

Every change of a ``refund_requests`` row goes through :func:`transition`: one conditional
``UPDATE ... WHERE id = ? AND status = ?`` plus its audit row, on the caller's connection
and inside the caller's transaction, so two reviewers (or two processes) can never both
decide one request. A change that :data:`TRANSITIONS` does not list raises
:class:`IllegalTransition` before anything is written.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from typing import Any, Literal, get_args

import duckdb

from payops import audit
from payops.config import get_settings
from payops.errors import InvalidInput, TerminalError

__all__ = [
    "Status", "Reason", "STATUSES", "REASONS", "PRIORITIES", "OPEN_STATUSES", "ENTITY", "TEXT_COLUMNS",
    "COLUMNS", "TRANSITIONS", "IllegalTransition", "RefundRequest", "Verdict", "ActionResult",
    "check_transition", "transition", "load", "idempotency_key", "utcnow", "acting_user", "request_ids",
]

Status = Literal["PENDING", "APPROVED", "REJECTED", "PROCESSING", "PROCESSED", "FAILED"]
Reason = Literal["requested_by_customer", "duplicate", "fraudulent"]  # Stripe's refund reasons

STATUSES: tuple[str, ...] = get_args(Status)
REASONS: tuple[str, ...] = get_args(Reason)
PRIORITIES = ("URGENT", "HIGH", "LARGE")
# Requests that still hold on to money: they count against what is left to refund.
OPEN_STATUSES = ("PENDING", "APPROVED", "PROCESSING")
ENTITY = "refund_request"
# Free text a person typed; the only columns erasure rewrites.
TEXT_COLUMNS = ("note", "decision_note", "failure_message")

# (from status, to status) -> the actions that may make that change. A pair that is not
# here, or an action not listed for it, is an IllegalTransition.
TRANSITIONS: Mapping[tuple[str, str], frozenset[str]] = {
    ("PENDING", "PENDING"): frozenset({"approve"}),  # the first of two approvals of a LARGE request
    ("PENDING", "APPROVED"): frozenset({"approve"}),
    ("PENDING", "REJECTED"): frozenset({"reject"}),
    ("APPROVED", "PROCESSING"): frozenset({"process"}),
    ("APPROVED", "FAILED"): frozenset({"fail"}),  # not eligible any more when about to be sent
    ("APPROVED", "PROCESSED"): frozenset({"mark_processed"}),  # repair: Stripe holds its refund
    # attempt_failed / reconcile: bookkeeping; awaiting_refund: Stripe's refund is pending or requires_action
    ("PROCESSING", "PROCESSING"): frozenset({"attempt_failed", "reconcile", "awaiting_refund"}),
    ("PROCESSING", "PROCESSED"): frozenset({"processed", "mark_processed"}),
    ("PROCESSING", "FAILED"): frozenset({"fail"}),
    ("PROCESSED", "PROCESSED"): frozenset({"link_refund"}),  # repair: the refund id was missing
    ("PROCESSED", "FAILED"): frozenset({"fail"}),  # the refund failed later, or Stripe has none
    ("FAILED", "APPROVED"): frozenset({"retry"}),
    ("FAILED", "PROCESSED"): frozenset({"mark_processed"}),
}


class IllegalTransition(TerminalError):
    """This change of a refund request's status is not allowed."""


@dataclass(frozen=True)
class RefundRequest(Mapping[str, Any]):
    """One row of ``refund_requests`` (amounts in minor units, times in UTC).

    Read it by attribute (``req.status``). Item access (``req["status"]``, ``req.get(...)``)
    is kept for callers written when requests were dicts; the keys are exactly the
    fields, so nothing can be added to a request on the way.
    """

    id: int
    payment_intent: str | None
    charge: str | None
    customer: str | None
    amount: int
    currency: str
    reason: str
    note: str | None
    status: str
    requested_by: str
    requested_at: datetime
    first_approver: str | None = None
    first_approved_at: datetime | None = None
    decided_by: str | None = None
    decided_at: datetime | None = None
    decision_note: str | None = None
    second_approver: str | None = None
    stripe_refund_id: str | None = None
    processed_at: datetime | None = None
    failure_message: str | None = None
    attempts: int = 0
    retries: int = 0
    updated_at: datetime | None = None

    @classmethod
    def from_row(cls, names: Iterable[str], values: Iterable[Any]) -> RefundRequest:
        data = dict(zip(names, values, strict=True))
        data["attempts"] = int(data.get("attempts") or 0)
        data["retries"] = int(data.get("retries") or 0)
        return cls(**data)

    @property
    def payment_id(self) -> str:
        """The payment the request names: its payment intent, else its charge."""
        return self.payment_intent or self.charge or ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def snapshot(self, *keys: str) -> dict[str, Any]:
        """``status`` and ``keys`` as JSON-able values (an audit row's ``before``)."""
        return {k: _jsonable(getattr(self, k)) for k in ("status", *keys)}

    def __getitem__(self, key: str) -> Any:
        if key not in _FIELDS:
            raise KeyError(key)
        return getattr(self, key)

    def __iter__(self) -> Iterator[str]:
        return iter(COLUMNS)

    def __len__(self) -> int:
        return len(COLUMNS)


COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(RefundRequest))
_FIELDS = frozenset(COLUMNS)
# What a transition may set besides the status (id and updated_at are the writer's).
_SETTABLE = _FIELDS - {"id", "status", "updated_at"}


@dataclass
class Verdict:
    """Whether a payment can be refunded (by ``amount``), with every reason it cannot.

    ``reasons`` is empty when ``eligible``; ``payment`` holds the figures the verdict is
    based on: payment_intent, charge, customer, currency, captured, refunded,
    open_requests, refundable, disputed, status, booking_id, booking_status, livemode
    (amounts in minor units) and created. ``notes`` are what a reviewer should know that does not
    block the refund (an open inquiry on the payment).
    """

    eligible: bool
    reasons: list[str]
    payment: dict
    notes: list[str] = field(default_factory=list)

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


def _jsonable(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def utcnow() -> datetime:
    return datetime.now(UTC)


def acting_user(user: str | None) -> str:
    """``user``, else the settings' user (``PAYOPS_USER``)."""
    return user or get_settings().user


def request_ids(ids: int | str | Iterable[int | str]) -> list[int]:
    """One id or many, as ints; :class:`~payops.errors.InvalidInput` for anything else."""
    items = [ids] if isinstance(ids, (int, str)) else list(ids)
    out = []
    for i in items:
        try:
            out.append(int(i))
        except (TypeError, ValueError):
            raise InvalidInput(f"not a request id: {i!r}") from None
    return out


def idempotency_key(request_id: int, retries: int = 0) -> str:
    """The Stripe idempotency key of a request's refund.

    ``payops-refund-<id>``; after a FAILED request was sent back for a retry ``n`` times,
    ``payops-refund-<id>-retry<n>`` (Stripe replays a stored error for a reused key, so a
    retry after a Stripe refusal needs a key of its own; a retry after a network error or
    a crash reuses the key).
    """
    return f"payops-refund-{request_id}" + (f"-retry{retries}" if retries else "")


def load(con: duckdb.DuckDBPyConnection, request_id: int) -> RefundRequest | None:
    """The request ``request_id`` as stored now on ``con``, or None."""
    cur = con.execute(f"SELECT {', '.join(COLUMNS)} FROM refund_requests WHERE id = ?", [int(request_id)])
    row = cur.fetchone()
    return None if row is None else RefundRequest.from_row(COLUMNS, row)


def check_transition(from_status: str, to: str, action: str) -> None:
    """Raise :class:`IllegalTransition` unless :data:`TRANSITIONS` lets ``action`` move ``from_status`` to ``to``."""
    allowed = TRANSITIONS.get((from_status, to))
    if allowed is None:
        raise IllegalTransition(f"a refund request cannot go from {from_status} to {to}")
    if action not in allowed:
        raise IllegalTransition(f"{action!r} cannot move a refund request from {from_status} to {to} "
                                f"(allowed: {', '.join(sorted(allowed))})")


def transition(con: duckdb.DuckDBPyConnection, req: RefundRequest, to: str, *, action: str, actor: str,
               changes: Mapping[str, Any] | None = None, note: str | None = None, at: datetime | None = None,
               expect: Mapping[str, Any] | None = None, audit_action: str | None = None,
               audit_extra: Mapping[str, Any] | None = None) -> RefundRequest | None:
    """Move ``req`` to status ``to``: one conditional UPDATE plus its audit row, on ``con``.

    The row changes only if it still has ``req.status`` (and the values in ``expect``);
    run it inside a transaction so the audit row commits with the change.

    Args:
        con: the caller's connection (inside its transaction).
        req: the request as the caller read it.
        to: the new status (may equal the old one for the changes TRANSITIONS allows).
        action: the kind of change, checked against :data:`TRANSITIONS`.
        actor: who acts (a user, ``policy``, ``sync``).
        changes: other columns to set.
        note: the audit row's note.
        at: when (default now); also the row's ``updated_at``, except for PROCESSING ->
            PROCESSING bookkeeping, which keeps the moment processing began.
        expect: columns that must still hold these values (None: IS NULL).
        audit_action: the audit row's action (default ``refund_request.<action>``).
        audit_extra: more keys for the audit row's ``after``.

    Returns:
        The request as now stored, or None (and nothing written) when the row no longer
        matches: someone else changed it first.

    Raises:
        IllegalTransition: the change is not in :data:`TRANSITIONS`.
    """
    check_transition(req.status, to, action)
    changes = dict(changes or {})
    unknown = set(changes) - _SETTABLE
    if unknown:
        raise ValueError(f"a transition cannot set {', '.join(sorted(unknown))}")
    at = at or utcnow()
    sets = {**changes, "status": to}
    if (req.status, to) != ("PROCESSING", "PROCESSING"):
        # An attempt's bookkeeping keeps updated_at at the moment processing began: the stuck
        # check (``stuck_processing_hours``) measures from there.
        sets["updated_at"] = at
    cond = ["id = ?", "status = ?"]
    params = [*sets.values(), req.id, req.status]
    for col, val in (expect or {}).items():
        if col not in _FIELDS:
            raise ValueError(f"unknown column {col!r}")
        if val is None:
            cond.append(f"{col} IS NULL")
        else:
            cond.append(f"{col} = ?")
            params.append(val)
    assignments = ", ".join(f"{k} = ?" for k in sets)
    cur = con.execute(f"UPDATE refund_requests SET {assignments} WHERE {' AND '.join(cond)} "
                      f"RETURNING {', '.join(COLUMNS)}", params)
    row = cur.fetchone()
    if row is None:
        return None
    after = {k: _jsonable(v) for k, v in sets.items() if k != "updated_at"}
    after.update(audit_extra or {})
    audit.record(con, actor=actor, action=audit_action or f"{ENTITY}.{action}", entity=ENTITY, entity_id=req.id,
                 before=req.snapshot(*changes), after=after, note=note, at=at)
    return RefundRequest.from_row(COLUMNS, row)

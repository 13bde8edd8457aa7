"""Reviewers' decisions: approve (with four-eyes above LARGE), reject, retry, and the session
rule that approves by policy.

Each request is decided in its own short transaction by a named function
``(con, req) -> ActionResult``; per-request problems (a missing role, a request someone else
already decided, an ineligible payment, a rejection without a note) come back as
``ActionResult(ok=False)`` and change nothing; they never raise.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from functools import partial
from typing import Any

import duckdb

from payops.authority import roles_for
from payops.config import Settings, get_settings
from payops.db import connect
from payops.errors import PayopsError, PermissionDenied
from payops.money import format_amount
from payops.refunds.eligibility import verdict
from payops.refunds.model import (
    ActionResult,
    RefundRequest,
    acting_user,
    load,
    request_ids,
    transition,
    utcnow,
)
from payops.refunds.rules import cumulative_sql, is_large_cumulative

__all__ = ["approve", "reject", "apply_policy", "decide", "missing_role", "already_decided"]

Decision = Callable[[duckdb.DuckDBPyConnection, RefundRequest], ActionResult]

# Booking statuses under which the session rule approves, and how the note says it.
_POLICY_WHY = {"cancelled": "session cancelled", "no_show": "tutor no-show", "scheduled": "session not yet held"}


def _ts(value: Any) -> str:
    if value is None:
        return "?"
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return str(value)


def already_decided(req: RefundRequest) -> str:
    """Why a request can no longer be decided, naming who decided it."""
    rid, status = req.id, req.status
    by = f"by {req.decided_by} at {_ts(req.decided_at)}"
    if status == "APPROVED":
        return f"request {rid} was already approved {by}"
    if status in ("PROCESSING", "PROCESSED") and req.decided_by:
        return f"request {rid} was already approved {by} and is {status}"
    if status == "REJECTED":
        return f"request {rid} was already rejected {by}"
    return f"request {rid} is {status}, not PENDING"


def missing_role(settings: Settings, user: str, *roles: str) -> str | None:
    """None if ``user`` holds one of ``roles`` (by name, or by hub group), else a sentence naming what is missing."""
    if set(roles) & set(roles_for(user, settings=settings)):
        return None
    return f"{user} lacks the {' or '.join(roles)} role needed for this (set in {settings.config_path} [roles])"


def decide(request_id: int, fn: Decision, db) -> ActionResult:
    """Run one decision in its own short transaction; a lost race or a problem is a result.

    ``fn`` gets the connection and the request as stored; its result commits when ok.
    """
    try:
        with connect(db) as con:
            con.execute("BEGIN TRANSACTION")
            try:
                req = load(con, request_id)
                if req is None:
                    con.execute("ROLLBACK")
                    return ActionResult(request_id, False, "", f"no refund request {request_id}")
                result = fn(con, req)
                con.execute("COMMIT" if result.ok else "ROLLBACK")
                return result
            except BaseException:
                con.execute("ROLLBACK")
                raise
    except duckdb.TransactionException:
        # Another connection of this process changed the row first; re-read to say who.
        with connect(db) as con:
            req = load(con, request_id)
        return ActionResult(request_id, False, req.status if req else "", already_decided(req) if req else
                            f"no refund request {request_id}")
    except PayopsError as exc:
        return ActionResult(request_id, False, "", f"request {request_id}: {exc.message}")


def _lost(con: duckdb.DuckDBPyConnection, req: RefundRequest) -> ActionResult:
    """The result when a conditional update found the row changed: say by whom."""
    return ActionResult(req.id, False, req.status, already_decided(load(con, req.id) or req))


def _ineligible(con: duckdb.DuckDBPyConnection, req: RefundRequest, settings: Settings,
                now: datetime) -> str | None:
    """Why the request's payment cannot be refunded by its amount now (None: it can)."""
    v = verdict(con, req.payment_id, req.amount, exclude=req.id, currency=req.currency, now=now, settings=settings)
    return None if v.eligible else f"request {req.id} is not eligible: " + "; ".join(v.reasons)


# --------------------------------------------------------------------------- approve


def _second_approval_problem(req: RefundRequest, who: str, settings: Settings) -> str | None:
    """Four-eyes: a senior who is neither the first approver nor the requester."""
    missing = missing_role(settings, who, "senior")
    if missing:
        return f"request {req.id} is LARGE and needs a second approval: {missing}"
    if who == req.first_approver:
        return (f"request {req.id} needs a second approval by a senior other than {req.first_approver}, "
                "who gave the first one")
    if who == req.requested_by:
        return f"request {req.id} needs a second approval by a senior other than {who}, who requested it"
    return None


def _roles_now(who: str, settings: Settings) -> dict[str, Any]:
    """The approver's roles at this moment, kept in the audit row: provenance checks them later."""
    return {"roles": list(roles_for(who, settings=settings))}


def _first_of_two(con, req: RefundRequest, who: str, note: str | None, now: datetime,
                  settings: Settings) -> ActionResult:
    if not transition(con, req, "PENDING", action="approve", actor=who, note=note, at=now,
                      changes={"first_approver": who, "first_approved_at": now}, expect={"first_approver": None},
                      audit_extra=_roles_now(who, settings)):
        return _lost(con, req)
    return ActionResult(req.id, True, "PENDING",
                        f"request {req.id}: first approval by {who} recorded; it is LARGE and needs a second "
                        f"approval by a senior other than {who} and {req.requested_by}")


def _approve_one(con: duckdb.DuckDBPyConnection, req: RefundRequest, *, who: str, note: str | None,
                 settings: Settings) -> ActionResult:
    """Approve one PENDING request (first or second approval), or retry a FAILED one."""
    now = utcnow()
    large = is_large_cumulative(con, req, settings.refund_policy)
    if req.status == "FAILED":
        return _retry(con, req, who=who, note=note, large=large, settings=settings, now=now)
    if req.status != "PENDING":
        return ActionResult(req.id, False, req.status, already_decided(req))
    second = large and req.first_approver is not None
    if second:
        problem = _second_approval_problem(req, who, settings)
    else:
        missing = missing_role(settings, who, "reviewer", "senior")
        problem = f"cannot approve request {req.id}: {missing}" if missing else None
        if not problem and who == req.requested_by and not settings.single_user:
            problem = f"request {req.id} needs an approval by someone other than {who}, who requested it"
    problem = problem or _ineligible(con, req, settings, now)
    if problem:
        return ActionResult(req.id, False, req.status, problem)
    if large and not second:
        return _first_of_two(con, req, who, note, now, settings)
    changes: dict[str, Any] = {"decided_by": who, "decided_at": now, "decision_note": note}
    if second:
        changes["second_approver"] = who
    else:
        changes.update(first_approver=who, first_approved_at=now)
    # the second approval must follow the very first one it saw; a single one must be the first
    expect = {"first_approver": req.first_approver if second else None}
    if not transition(con, req, "APPROVED", action="approve", actor=who, note=note, at=now, changes=changes,
                      expect=expect, audit_extra=_roles_now(who, settings)):
        return _lost(con, req)
    extra = f" (second approval; first by {req.first_approver})" if second else ""
    return ActionResult(req.id, True, "APPROVED",
                        f"request {req.id} approved by {who}{extra}: {format_amount(req.amount, req.currency)}")


def _retry(con, req: RefundRequest, *, who: str, note: str | None, large: bool, settings: Settings,
           now: datetime) -> ActionResult:
    """FAILED -> APPROVED: send a failed request back for processing, with a fresh key."""
    missing = missing_role(settings, who, "senior") if large else missing_role(settings, who, "reviewer", "senior")
    if missing:
        return ActionResult(req.id, False, req.status, f"cannot retry request {req.id}: {missing}")
    problem = _ineligible(con, req, settings, now)
    if problem:
        return ActionResult(req.id, False, req.status, problem)
    if not transition(con, req, "APPROVED", action="retry", actor=who, note=note, at=now,
                      changes={"retries": req.retries + 1, "failure_message": None, "decided_by": who,
                               "decided_at": now}):
        return _lost(con, req)
    return ActionResult(req.id, True, "APPROVED", f"request {req.id} approved again by {who} for a retry")


def approve(ids: int | Iterable[int], *, user: str | None = None, note: str | None = None,
            db=None) -> list[ActionResult]:
    """Approve PENDING requests (or send FAILED ones back to APPROVED for a retry).

    A request above the LARGE threshold needs two approvals (four-eyes): the first by a
    reviewer (or senior) is recorded and leaves it PENDING; the second must come from a
    senior who is neither the first approver nor the requester. The payment's eligibility
    is checked again. Each request gets one :class:`ActionResult`; nothing raises.
    """
    settings = get_settings()
    fn = partial(_approve_one, who=acting_user(user), note=note, settings=settings)
    return [decide(rid, fn, db) for rid in request_ids(ids)]


# --------------------------------------------------------------------------- reject


def _reject_one(con: duckdb.DuckDBPyConnection, req: RefundRequest, *, who: str, note: str,
                settings: Settings) -> ActionResult:
    if req.status != "PENDING":
        return ActionResult(req.id, False, req.status, already_decided(req))
    missing = missing_role(settings, who, "reviewer", "senior")
    if missing:
        return ActionResult(req.id, False, req.status, f"cannot reject request {req.id}: {missing}")
    now = utcnow()
    if not transition(con, req, "REJECTED", action="reject", actor=who, note=note, at=now,
                      changes={"decided_by": who, "decided_at": now, "decision_note": note},
                      expect={"first_approver": req.first_approver}):
        return _lost(con, req)
    return ActionResult(req.id, True, "REJECTED", f"request {req.id} rejected by {who}: {note}")


def reject(ids: int | Iterable[int], *, note: str, user: str | None = None, db=None) -> list[ActionResult]:
    """Reject PENDING requests; a note (why) is required. One :class:`ActionResult` each."""
    rids = request_ids(ids)
    if not (note or "").strip():
        return [ActionResult(rid, False, "", f"request {rid}: a rejection needs a note (why)") for rid in rids]
    fn = partial(_reject_one, who=acting_user(user), note=note, settings=get_settings())
    return [decide(rid, fn, db) for rid in rids]


# --------------------------------------------------------------------------- the session rule


def _approve_by_policy(con: duckdb.DuckDBPyConnection, req: RefundRequest, *, booking_status: str,
                       settings: Settings, now: datetime, ran_by: str) -> ActionResult:
    """Approve one request as ``policy`` because its session was not held."""
    if req.status != "PENDING" or req.first_approver is not None:
        return ActionResult(req.id, False, req.status, already_decided(req))
    v = verdict(con, req.payment_id, req.amount, exclude=req.id, currency=req.currency, now=now, settings=settings)
    if not v.eligible:
        return ActionResult(req.id, False, "PENDING", f"request {req.id} is not eligible: " + "; ".join(v.reasons))
    t = utcnow()
    why = _POLICY_WHY[booking_status]
    note = f"auto-approved by policy: {why} (booking {v.payment['booking_id']}; run by {ran_by})"
    if not transition(con, req, "APPROVED", action="approve", actor="policy", note=note, at=t,
                      changes={"first_approver": "policy", "first_approved_at": t, "decided_by": "policy",
                               "decided_at": t, "decision_note": note},
                      expect={"first_approver": None},
                      audit_extra={"ran_by": ran_by, "ran_by_roles": list(roles_for(ran_by, settings=settings))}):
        return _lost(con, req)
    return ActionResult(req.id, True, "APPROVED",
                        f"request {req.id} approved by policy: {why}, {format_amount(req.amount, req.currency)}")


def _policy_candidates(con: duckdb.DuckDBPyConnection, now: datetime) -> list[tuple]:
    """(id, amount, cumulative amount, currency, booking status, requester) of PENDING requests
    whose session was not held."""
    held = ", ".join(f"'{s}'" for s in _POLICY_WHY if s != "scheduled")
    return con.execute(
        f"""SELECT r.id, r.amount, cum.cumulative, r.currency, b.status, r.requested_by
            FROM refund_requests r
            JOIN ({cumulative_sql()}) cum ON cum.id = r.id
            JOIN payment_intents pi ON pi.id = r.payment_intent
            JOIN bookings b ON b.booking_id = pi.booking_id
                 OR (pi.booking_id IS NULL AND b.payment_intent = r.payment_intent)
            WHERE r.status = 'PENDING' AND r.first_approver IS NULL
              AND (b.status IN ({held}) OR (b.status = 'scheduled' AND b.session_start > ?))
            ORDER BY r.requested_at, r.id""", [now]).fetchall()


def apply_policy(*, user: str | None = None, db=None, now: datetime | None = None) -> list[ActionResult]:
    """The session rule: auto-approve (actor ``policy``) eligible PENDING requests whose session
    was not held, i.e. its booking is cancelled, a tutor no-show, or scheduled in the future,
    up to ``[refunds] auto_approve_cap``. LARGE requests (four-eyes, by the cumulative amount)
    and completed sessions stay for reviewers. Returns one result per request the rule applies to.

    Running it is a decision: ``user`` (default ``PAYOPS_USER``) needs the reviewer or senior
    role and is recorded with each approval (``ran_by``, and in the note); in team mode the
    rule never approves a request its runner asked for.

    Raises:
        PermissionDenied: ``user`` holds neither role.
    """
    settings = get_settings()
    policy = settings.refund_policy
    who = acting_user(user)
    missing = missing_role(settings, who, "reviewer", "senior")
    if missing:
        raise PermissionDenied(f"cannot run the session rule: {missing}")
    now = now or utcnow()
    with connect(db) as con:
        candidates = _policy_candidates(con, now)
    out = []
    for rid, amount, cumulative, currency, booking_status, requester in candidates:
        cap = policy.auto_approve_cap(currency)
        if cumulative > policy.large_threshold(currency) or (cap is not None and amount > cap):
            continue
        if requester == who and not settings.single_user:
            continue
        fn = partial(_approve_by_policy, booking_status=booking_status, settings=settings, now=now, ran_by=who)
        out.append(decide(rid, fn, db))
    return out

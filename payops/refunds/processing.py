"""Sending approved refunds to Stripe, crash-safely, and finishing what a crash left.

The request is marked PROCESSING (committed) *before* Stripe is called, the refund is
created with the idempotency key ``payops-refund-<id>`` and metadata ``payops_request_id``,
and only then is it marked PROCESSED. A crash in between leaves a PROCESSING request that
:func:`reconcile` (or a later :func:`process` run) finishes by finding the refund in Stripe
by its metadata, or by retrying with the same key, never creating a second refund. No
database connection is held while Stripe is called.
"""

from __future__ import annotations

from datetime import timedelta
from functools import partial
from typing import Any

import duckdb

from payops import audit
from payops.authority import audit_key
from payops.config import Settings, get_settings
from payops.db import connect, transaction
from payops.errors import StripeError, TransientError
from payops.money import format_amount, refunded_sql
from payops.refunds.decisions import decide, missing_role
from payops.refunds.eligibility import DEAD_REFUNDS, record_refunded, verdict
from payops.refunds.model import ActionResult, RefundRequest, acting_user, idempotency_key, load, transition, utcnow
from payops.refunds.provenance import check as provenance

__all__ = ["process", "reconcile", "sync_refund_failures", "AWAITING_REFUNDS", "awaiting_message"]

# Stripe refund statuses still on their way: the request stays PROCESSING until the refund's event
# says succeeded (PROCESSED) or failed / canceled (FAILED); see sync_refund_failures.
AWAITING_REFUNDS = ("pending", "requires_action")


def awaiting_message(refund_id: str, status: str | None) -> str:
    """How a request's history says its Stripe refund ``refund_id`` is still on its way (``status``)."""
    what = ("the customer must act (Stripe emailed them) before the money goes back"
            if status == "requires_action" else "PROCESSED when the bank confirms it")
    return f"Stripe refund {refund_id} is {status}: {what}"


def _client(api):
    if api is not None:
        return api
    from payops.stripe_api import get_client  # only when a real call is due: it needs the Stripe key

    return get_client()


def _find_refund(refunds: list[dict], request_id: int) -> dict | None:
    """The live refund Stripe holds for a request (by metadata), ignoring failed/canceled ones."""
    for r in refunds:
        md = r.get("metadata") or {}
        if str(md.get("payops_request_id")) == str(request_id) and r.get("status") not in DEAD_REFUNDS:
            return r
    return None


def _record_refund(req: RefundRequest, refund: dict, actor: str, db) -> ActionResult:
    """PROCESSING -> PROCESSED (or FAILED if Stripe says the refund failed), storing the refund."""
    from payops.ingest import ingest_into  # ingest sits above refunds in the dependency order

    rid = req.id
    now = utcnow()
    with connect(db) as con, transaction(con):
        ingest_into(con, [refund])
        record_refunded(con, req.charge or _ref(refund.get("charge")))
        cur = load(con, rid)
        if cur is None or cur.status != "PROCESSING":
            # Someone (another run, a reconcile) recorded it first: fine, nothing to add.
            status = cur.status if cur else ""
            return ActionResult(rid, status == "PROCESSED", status, f"request {rid} is already {status or '?'}")
        if refund.get("status") in AWAITING_REFUNDS:
            return _awaiting(con, cur, refund, actor)
        if refund.get("status") in DEAD_REFUNDS:
            why = refund.get("failure_reason") or "no reason given"
            msg = f"Stripe refund {refund['id']} {refund.get('status')}: {why}"
            transition(con, cur, "FAILED", action="fail", actor=actor, note=msg, at=now,
                       changes={"stripe_refund_id": refund["id"], "failure_message": msg})
            return ActionResult(rid, False, "FAILED", f"request {rid} failed: {msg}")
        transition(con, cur, "PROCESSED", action="processed", actor=actor, at=now,
                   changes={"stripe_refund_id": refund["id"], "processed_at": now, "failure_message": None},
                   audit_extra={"refund_status": refund.get("status")})
    amount = format_amount(int(refund.get("amount") or req.amount), req.currency)
    return ActionResult(rid, True, "PROCESSED",
                        f"request {rid} refunded {amount}: {refund['id']} ({refund.get('status')})")


def _ref(value: Any) -> str | None:
    return value.get("id") if isinstance(value, dict) else value


def _awaiting(con: duckdb.DuckDBPyConnection, cur: RefundRequest, refund: dict, actor: str) -> ActionResult:
    """Stripe made the refund but has not finished it: the request stays PROCESSING, linked to it."""
    status = refund.get("status")
    msg = awaiting_message(refund["id"], status)
    if cur.stripe_refund_id != refund["id"] or cur.failure_message:
        transition(con, cur, "PROCESSING", action="awaiting_refund", actor=actor, note=msg,
                   changes={"stripe_refund_id": refund["id"], "failure_message": None},
                   audit_extra={"refund_status": status})
    return ActionResult(cur.id, True, "PROCESSING", f"request {cur.id}: {msg}")


def _refused(req: RefundRequest, exc: StripeError, actor: str, db) -> ActionResult:
    """Stripe refused the refund (already refunded, amount too large, disputed...): FAILED."""
    rid, msg = req.id, exc.message
    with connect(db) as con, transaction(con):
        cur = load(con, rid)
        if cur is None or cur.status != "PROCESSING":
            return ActionResult(rid, False, cur.status if cur else "", f"request {rid} is {cur and cur.status}")
        transition(con, cur, "FAILED", action="fail", actor=actor, note=msg, changes={"failure_message": msg},
                   audit_extra={"stripe_code": getattr(exc, "code", None)})
    return ActionResult(rid, False, "FAILED", f"request {rid} failed: {msg}")


def _unreachable(req: RefundRequest, exc: TransientError, actor: str, db) -> ActionResult:
    """Stripe may or may not have made the refund: stay PROCESSING; a rerun or reconcile
    retries with the same idempotency key (and looks for the refund first)."""
    msg = f"{exc.message}; still PROCESSING, run `payops refunds reconcile` to finish it"
    with connect(db) as con, transaction(con):
        cur = load(con, req.id)
        if cur is not None and cur.status == "PROCESSING":
            transition(con, cur, "PROCESSING", action="attempt_failed", actor=actor, note=msg,
                       changes={"failure_message": msg})
    return ActionResult(req.id, False, "PROCESSING", f"request {req.id}: {msg}")


def _destination_charge(req: RefundRequest, db) -> bool:
    """Whether the request's charge paid a tutor through a transfer (its refund reverses it)."""
    with connect(db) as con:
        row = con.execute("SELECT raw->>'$.transfer_data.destination' FROM charges WHERE id = ? OR "
                          "(? IS NULL AND payment_intent = ?) ORDER BY created DESC LIMIT 1",
                          [req.charge, req.charge, req.payment_intent]).fetchone()
    return bool(row and row[0])


def _send(req: RefundRequest, api, actor: str, db, *, look_first: bool) -> ActionResult:
    """Create (or find) the Stripe refund of a PROCESSING request and record the outcome.

    No database connection is open while Stripe is called.
    """
    try:
        if look_first:
            listed = (api.list_refunds(charge=req.charge) if req.charge else
                      api.list_refunds(payment_intent=req.payment_intent))
            found = _find_refund(listed, req.id)
            if found is not None:
                return _record_refund(req, found, actor, db)
        refund = api.create_refund(
            idempotency_key=idempotency_key(req.id, req.retries), reverse_transfer=_destination_charge(req, db),
            charge=req.charge, payment_intent=None if req.charge else req.payment_intent,
            amount=int(req.amount), reason=req.reason if get_settings().refund_policy.send_reason else None,
            metadata={"payops_request_id": str(req.id)},
        )
    except StripeError as exc:
        if getattr(exc, "http_status", None) == 409 or getattr(exc, "code", None) == "idempotency_key_in_use":
            # Another run is sending this very refund right now: not a refusal, just wait.
            return ActionResult(req.id, False, "PROCESSING",
                                f"request {req.id}: being sent by another run ({exc.message}); reconcile later")
        return _refused(req, exc, actor, db)
    except TransientError as exc:
        return _unreachable(req, exc, actor, db)
    return _record_refund(req, refund, actor, db)


def _refuse_unproven(con: duckdb.DuckDBPyConnection, req: RefundRequest, actor: str, settings: Settings,
                     now) -> ActionResult | None:
    """Provenance before money moves (team mode): refuse, mark FAILED and report a request whose
    state does not follow from its audit history; None when it does."""
    if settings.single_user:
        return None
    found = provenance(con, req, settings=settings, key=audit_key())
    if found.ok:
        return None
    msg = ("refused before sending to Stripe: its state does not follow from its audit history: "
           + "; ".join(found.problems))
    transition(con, req, "FAILED", action="fail", actor=actor, note=msg, at=now, changes={"failure_message": msg},
               audit_action="refund_request.provenance_refused", audit_extra={"expected": found.expected})
    return ActionResult(req.id, False, "FAILED", f"request {req.id} {msg}")


def _chain_problem(db, settings: Settings) -> str | None:
    """In team mode nothing is sent while the audit chain is broken (it is what provenance reads)."""
    if settings.single_user:
        return None
    result = audit.verify_chain(db, key=audit_key())
    return None if result.ok else f"nothing sent to Stripe: {result.message}"


def _start(request_id: int, actor: str, db,
           settings: Settings) -> tuple[RefundRequest | None, int, ActionResult | None]:
    """APPROVED -> PROCESSING (committed before Stripe is called), after re-checking eligibility.

    Returns (the PROCESSING request, how many attempts it had before, None) or
    (None, 0, why not).
    """
    with connect(db) as con, transaction(con):
        req = load(con, request_id)
        if req is None:
            return None, 0, ActionResult(request_id, False, "", f"no refund request {request_id}")
        if req.status != "APPROVED":
            return None, 0, ActionResult(request_id, False, req.status,
                                         f"request {request_id} is {req.status}, not APPROVED")
        now = utcnow()
        refused = _refuse_unproven(con, req, actor, settings, now)
        if refused is not None:
            return None, 0, refused
        v = verdict(con, req.payment_id, req.amount, exclude=request_id, currency=req.currency, now=now,
                    settings=settings)
        if not v.eligible:
            msg = "not eligible any more: " + "; ".join(v.reasons)
            transition(con, req, "FAILED", action="fail", actor=actor, note=msg, at=now,
                       changes={"failure_message": msg})
            return None, 0, ActionResult(request_id, False, "FAILED", f"request {request_id} failed: {msg}")
        started = transition(con, req, "PROCESSING", action="process", actor=actor, at=now,
                             changes={"attempts": req.attempts + 1},
                             audit_extra={"idempotency_key": idempotency_key(request_id, req.retries)})
        if started is None:
            cur = load(con, request_id)
            status = cur.status if cur else ""
            return None, 0, ActionResult(request_id, False, status, f"request {request_id} is {status}")
        return started, req.attempts, None


def _approved_ids(con: duckdb.DuckDBPyConnection, ids: list[int] | None, limit: int | None) -> list[int]:
    sql = "SELECT id FROM refund_requests WHERE status = 'APPROVED'"
    params: list[Any] = []
    if ids is not None:
        sql += f" AND id IN ({', '.join('?' for _ in ids) or 'NULL'})"
        params += [int(i) for i in ids]
    sql += " ORDER BY decided_at NULLS FIRST, id"
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    return [r[0] for r in con.execute(sql, params).fetchall()]


def _dry_run(todo: list[int], db, settings: Settings) -> list[ActionResult]:
    out = []
    with connect(db) as con:
        for rid in todo:
            req = load(con, rid)
            if req is None:
                continue
            v = verdict(con, req.payment_id, req.amount, exclude=rid, currency=req.currency, settings=settings)
            if v.eligible:
                amount = format_amount(req.amount, req.currency)
                msg = f"request {rid}: would refund {amount} on {req.charge or req.payment_intent}"
            else:
                msg = f"request {rid}: would fail, not eligible: " + "; ".join(v.reasons)
            out.append(ActionResult(rid, v.eligible, "APPROVED", msg))
    return out


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
    who = acting_user(user)
    with connect(db) as con:
        todo = _approved_ids(con, ids, limit)
    missing = missing_role(settings, who, "processor")
    if missing:
        return [ActionResult(rid, False, "APPROVED", f"cannot process request {rid}: {missing}") for rid in todo]
    if dry_run:
        return _dry_run(todo, db, settings)
    broken = _chain_problem(db, settings) if todo else None
    if broken:
        return [ActionResult(rid, False, "APPROVED", f"request {rid}: {broken}") for rid in todo]
    stuck = settings.refund_policy.stuck_after
    if not todo and ids is None:
        return reconcile(user=who, db=db, api=api, older_than=stuck)
    client = _client(api) if todo else None
    out: list[ActionResult] = []
    if ids is None:
        out += reconcile(user=who, db=db, api=client, older_than=stuck)
    for rid in todo:
        req, previous_attempts, problem = _start(rid, who, db, settings)
        if req is None:
            out.append(problem or ActionResult(rid, False, "", f"request {rid} was not started"))
            continue
        # A request tried before (a crash, a timeout) may already have its refund in Stripe.
        out.append(_send(req, client, who, db, look_first=previous_attempts > 0))
    return out


def _count_attempt(request_id: int, actor: str, db,
                   settings: Settings) -> tuple[RefundRequest | None, ActionResult | None]:
    """PROCESSING -> PROCESSING with one more attempt (audited), after the provenance check.

    Returns (the request, None), (None, why it was refused) or (None, None) if it is no
    longer PROCESSING.
    """
    with connect(db) as con, transaction(con):
        cur = load(con, request_id)
        if cur is None or cur.status != "PROCESSING":
            return None, None
        refused = _refuse_unproven(con, cur, actor, settings, utcnow())
        if refused is not None:
            return None, refused
        return transition(con, cur, "PROCESSING", action="reconcile", actor=actor,
                          changes={"attempts": cur.attempts + 1}), None


def reconcile(*, user: str | None = None, db=None, api=None, older_than: timedelta | None = None) -> list[ActionResult]:
    """Finish PROCESSING requests left by a crash or an unreachable Stripe.

    For each (optionally only those PROCESSING for longer than ``older_than``): list the
    charge's refunds in Stripe and look for ``metadata.payops_request_id``; if found, mark
    PROCESSED; if not, create it with the same idempotency key. Never a second refund.
    """
    settings = get_settings()
    who = acting_user(user)
    sql = "SELECT id FROM refund_requests WHERE status = 'PROCESSING'"
    params: list[Any] = []
    if older_than is not None:
        sql += " AND updated_at < ?"
        params.append(utcnow() - older_than)
    with connect(db) as con:
        ids = [r[0] for r in con.execute(sql + " ORDER BY id", params).fetchall()]
    if not ids:
        return []
    missing = missing_role(settings, who, "processor")
    if missing:
        return [ActionResult(rid, False, "PROCESSING", f"cannot reconcile request {rid}: {missing}") for rid in ids]
    broken = _chain_problem(db, settings)
    if broken:
        return [ActionResult(rid, False, "PROCESSING", f"request {rid}: {broken}") for rid in ids]
    client = _client(api)
    out = []
    for rid in ids:
        req, refused = _count_attempt(rid, who, db, settings)
        if refused is not None:
            out.append(refused)
        elif req is not None:
            out.append(_send(req, client, who, db, look_first=True))
    return out


def _settle(con: duckdb.DuckDBPyConnection, req: RefundRequest, *, refund_id: str, refund_status: str,
            failure_reason: str | None) -> ActionResult:
    """A request follows its Stripe refund's final status (actor ``sync``): PROCESSING -> PROCESSED
    when it succeeded; PROCESSING or PROCESSED -> FAILED when it failed or was canceled."""
    if req.stripe_refund_id != refund_id or req.status not in ("PROCESSING", "PROCESSED"):
        return ActionResult(req.id, False, req.status, f"request {req.id} is {req.status}")
    if refund_status == "succeeded":
        if req.status != "PROCESSING":
            return ActionResult(req.id, False, req.status, f"request {req.id} is {req.status}")
        now = utcnow()
        done = transition(con, req, "PROCESSED", action="processed", actor="sync", at=now,
                          changes={"processed_at": now, "failure_message": None},
                          audit_extra={"refund_status": refund_status})
        if not done:
            return ActionResult(req.id, False, req.status, f"request {req.id} changed meanwhile")
        return ActionResult(req.id, True, "PROCESSED", f"request {req.id}: Stripe refund {refund_id} succeeded")
    msg = f"Stripe refund {refund_id} {refund_status}: {failure_reason or 'no reason given'}"
    if not transition(con, req, "FAILED", action="fail", actor="sync", note=msg, changes={"failure_message": msg}):
        return ActionResult(req.id, False, req.status, f"request {req.id} changed meanwhile")
    return ActionResult(req.id, True, "FAILED", f"request {req.id} marked FAILED: {msg}")


def sync_refund_failures(db=None) -> list[ActionResult]:
    """Requests follow their Stripe refund once sync or webhooks stored its new status (actor ``sync``).

    A PROCESSED request whose refund later failed or was canceled (``refund.failed`` /
    ``charge.refund.updated``) becomes FAILED; a PROCESSING request whose refund was pending or
    required action becomes PROCESSED when the refund succeeded, FAILED when it failed or was
    canceled. Idempotent: call it after applying events.
    """
    marks = ", ".join("?" for _ in DEAD_REFUNDS)
    with connect(db) as con:
        found = con.execute(
            f"""SELECT r.id, f.id, f.status, f.failure_reason
                FROM refund_requests r JOIN refunds f ON f.id = r.stripe_refund_id
                WHERE (r.status = 'PROCESSED' AND f.status IN ({marks}))
                   OR (r.status = 'PROCESSING' AND ({refunded_sql('f.status')} OR f.status IN ({marks})))
                ORDER BY r.id""", list(DEAD_REFUNDS) * 2).fetchall()
    out = []
    for rid, refund_id, refund_status, failure_reason in found:
        fn = partial(_settle, refund_id=refund_id, refund_status=refund_status, failure_reason=failure_reason)
        out.append(decide(rid, fn, db))
    return out

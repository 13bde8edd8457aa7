"""The inconsistencies :func:`payops.maintenance.fix` knows: a registry of checks.

Each :class:`Check` has a kind, a ``find`` that reads the database and returns
:class:`Finding` s (saying what a repair would do, or why a person is needed), and a
``repair`` that mends the repairable ones, writing one audit row per repair. :data:`CHECKS`
lists them in the order they run: a repair can bring in data a later check looks at
(a refund fetched for a request shows its charge's stale ``amount_refunded``).

Stripe is asked only by repairs. A repair that cannot reach Stripe (no key, an error)
leaves its finding unrepaired with the reason (:class:`LookupFailed`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb

from payops import audit, metrics, refunds
from payops.db import connect, transaction
from payops.errors import ConfigError, PayopsError, StripeError
from payops.ingest import ingest_into
from payops.maintenance.archive import archived_ids
from payops.money import REFUNDED_STATUS
from payops.refunds.processing import AWAITING_REFUNDS

# refunds Stripe holds for a request: done, or on their way (docs/statuses.md)
_HELD = (REFUNDED_STATUS, *AWAITING_REFUNDS)

__all__ = ["CHECKS", "Check", "Finding", "FixContext", "LookupFailed", "StripeLookups"]


@dataclass
class Finding:
    """One inconsistency :func:`~payops.maintenance.fix` found, and what happened to it.

    Attributes:
        kind: one of :data:`~payops.maintenance.FIX_KINDS`.
        entity: ``refund_request``, ``charge``, ``booking``, ``daily_metrics`` ...
        entity_id: which one.
        problem: what is wrong, one line.
        repairable: a repair is possible (with ``dry_run``: would be attempted).
        repaired: the repair was made (never with ``dry_run``).
        outcome: what was done (or would be), or why it could not be.
        facts: what the check's repair needs (ids, amounts); not part of equality.
    """

    kind: str
    entity: str
    entity_id: str
    problem: str
    repairable: bool = True
    repaired: bool = False
    outcome: str = ""
    facts: tuple = field(default=(), repr=False, compare=False)

    def line(self, dry_run: bool = False) -> str:
        """The finding as one line of ``payops fix`` output."""
        if dry_run:
            tail = f"would repair: {self.outcome}" if self.repairable else f"cannot repair: {self.outcome}"
        elif self.repaired:
            tail = f"repaired: {self.outcome}"
        else:
            tail = f"NOT repaired: {self.outcome}"
        return f"{self.kind}: {self.entity} {self.entity_id}: {self.problem} -> {tail}"

    def needs_person(self, outcome: str) -> None:
        """Mark the finding as one no repair can mend, with the reason."""
        self.repairable, self.outcome = False, outcome


class LookupFailed(Exception):
    """Stripe could not be asked, or refused; the finding stays for a person."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class StripeLookups:
    """Read-only Stripe calls for repairs; the client is made on first need."""

    def __init__(self, api: Any = None):
        self.api, self._error = api, ""

    def _client(self) -> Any:
        if self.api is None and not self._error:
            from payops.stripe_api import get_client  # the Stripe SDK loads only when a repair needs it

            try:
                self.api = get_client()
            except ConfigError as exc:
                self._error = f"needs Stripe: {exc}"
        if self.api is None:
            raise LookupFailed(self._error or "needs Stripe")
        return self.api

    def retrieve(self, object_type: str, object_id: str) -> dict | None:
        """One object, or None when Stripe says it does not exist."""
        client = self._client()
        try:
            return client.retrieve(object_type, object_id)
        except StripeError as exc:
            if getattr(exc, "code", None) == "resource_missing" or "No such" in str(exc):
                return None
            raise LookupFailed(f"Stripe lookup failed: {exc.message}") from exc
        except PayopsError as exc:
            raise LookupFailed(f"Stripe lookup failed: {exc.message}") from exc

    def list_refunds(self, *, charge: str | None = None, payment_intent: str | None = None) -> list[dict]:
        """Every refund of a charge (or payment intent)."""
        client = self._client()
        try:
            return client.list_refunds(charge=charge, payment_intent=payment_intent)
        except PayopsError as exc:
            raise LookupFailed(f"Stripe lookup failed: {exc.message}") from exc


@dataclass
class FixContext:
    """What every check sees: who acts, on which database, at what moment, with which Stripe."""

    user: str
    db: str | Path | None
    now: datetime
    stuck_after: timedelta
    archive: Path
    timezone: str
    stripe: StripeLookups


Finder = Callable[[duckdb.DuckDBPyConnection, FixContext], list[Finding]]
Repairer = Callable[[list[Finding], FixContext], None]


@dataclass(frozen=True)
class Check:
    """One kind of inconsistency.

    Attributes:
        kind: its name, as ``payops fix --kind`` takes it.
        find: reads only; sets each finding's ``outcome`` to what the repair would do, and
            calls :meth:`Finding.needs_person` on what no repair can mend.
        repair: gets the repairable findings (never with ``dry_run``), opens its own
            connection, and sets ``repaired`` and ``outcome`` on each.
    """

    kind: str
    find: Finder
    repair: Repairer


def _audited(ctx: FixContext, f: Finding) -> dict[str, Any]:
    """Who and what the audit row of a repair names (also for repairs made through payops.refunds)."""
    return {"actor": ctx.user, "audit_action": f"maintenance.fix.{f.kind}",
            "note": f"payops fix: {f.problem}; {f.outcome}"}


def _record(con: duckdb.DuckDBPyConnection, ctx: FixContext, f: Finding, before: Any = None,
            after: Any = None) -> None:
    how = _audited(ctx, f)
    audit.record(con, actor=how["actor"], action=how["audit_action"], entity=f.entity, entity_id=f.entity_id,
                 before=before, after=after, note=how["note"])


def _one_by_one(repair_one: Callable[[duckdb.DuckDBPyConnection, Finding, FixContext], None]) -> Repairer:
    """A repair that mends findings one at a time on one connection; Stripe failures stay findings."""
    def repair(findings: list[Finding], ctx: FixContext) -> None:
        with connect(ctx.db) as con:
            for f in findings:
                try:
                    repair_one(con, f, ctx)
                except LookupFailed as exc:
                    f.needs_person(exc.reason)
    return repair


# ------------------------------------------------------------------ refund_for_unprocessed_request


def _find_refunds_for_unprocessed(con: duckdb.DuckDBPyConnection, ctx: FixContext) -> list[Finding]:
    rows = con.execute(
        "SELECT f.id, f.payops_request_id, f.created, r.status, r.id IS NULL "
        "FROM refunds f LEFT JOIN refund_requests r ON r.id = f.payops_request_id "
        "WHERE f.payops_request_id IS NOT NULL AND f.status IN ('succeeded', 'pending') "
        "AND (r.id IS NULL OR r.status <> 'PROCESSED') "
        # a PROCESSING request waiting for its pending refund is as it should be (docs/statuses.md)
        "AND NOT (r.status = 'PROCESSING' AND f.status = 'pending' AND r.stripe_refund_id = f.id) "
        "ORDER BY f.payops_request_id, f.id").fetchall()
    out = []
    for refund_id, rid, created, status, missing in rows:
        if missing:
            f = Finding("refund_for_unprocessed_request", "refund", refund_id,
                        f"carries payops_request_id {rid}, but there is no such refund request")
            f.needs_person("needs a person: the refund was not made through this database")
        else:
            f = Finding("refund_for_unprocessed_request", "refund_request", str(rid),
                        f"Stripe refund {refund_id} carries its id but the request is {status}",
                        outcome=f"mark PROCESSED with Stripe refund {refund_id}",
                        facts=(rid, status, refund_id, created))
            if status not in ("APPROVED", "PROCESSING", "FAILED"):
                f.needs_person(f"needs a person: money went back for a {status} request")
        out.append(f)
    return out


def _mark_processed(con: duckdb.DuckDBPyConnection, f: Finding, ctx: FixContext) -> None:
    rid, status, refund_id, created = f.facts
    with transaction(con):
        f.repaired = refunds.mark_processed(con, rid, status, refund_id, created, **_audited(ctx, f))
    if not f.repaired:
        f.outcome = "the request changed meanwhile; run fix again"


# ------------------------------------------------------------------ request_stuck_processing


def _find_stuck(con: duckdb.DuckDBPyConnection, ctx: FixContext) -> list[Finding]:
    rows = con.execute(
        "SELECT r.id, r.updated_at FROM refund_requests r WHERE r.status = 'PROCESSING' AND r.updated_at < ? "
        # not stuck: Stripe holds its refund (a pending or requires_action one is on its way: docs/statuses.md)
        "AND NOT EXISTS (SELECT 1 FROM refunds f WHERE f.payops_request_id = r.id "
        f"                AND f.status IN ({', '.join('?' for _ in _HELD)})) ORDER BY r.id",
        [ctx.now - ctx.stuck_after, *_HELD]).fetchall()
    return [Finding("request_stuck_processing", "refund_request", str(rid),
                    f"PROCESSING since {updated:%Y-%m-%d %H:%M} UTC (longer than {ctx.stuck_after})",
                    outcome="hand it to refunds.reconcile") for rid, updated in rows]


def _reconcile(findings: list[Finding], ctx: FixContext) -> None:
    """One :func:`payops.refunds.reconcile` run finishes every stuck request (it never refunds twice)."""
    try:
        results = refunds.reconcile(user=ctx.user, db=ctx.db, api=ctx.stripe.api, older_than=ctx.stuck_after)
    except PayopsError as exc:
        for f in findings:
            f.needs_person(f"reconcile failed: {exc.message}")
        return
    by_id = {str(r.request_id): r for r in results}
    for f in findings:
        r = by_id.get(f.entity_id)
        if r is None:
            f.needs_person("reconcile left it alone: needs a person")
        else:
            f.repaired = f.repairable = bool(r.ok) and r.status != "PROCESSING"
            f.outcome = f"reconcile: {r.status}: {r.message}"
    with connect(ctx.db) as con, transaction(con):
        for f in findings:
            if f.repaired:
                _record(con, ctx, f, {"status": "PROCESSING"}, {"status": by_id[f.entity_id].status})


# ------------------------------------------------------------------ request_processed_without_refund


def _find_processed_without_refund(con: duckdb.DuckDBPyConnection, ctx: FixContext) -> list[Finding]:
    rows = con.execute(
        "SELECT r.id, r.payment_intent, r.charge, r.stripe_refund_id FROM refund_requests r "
        "LEFT JOIN refunds f ON f.id = r.stripe_refund_id "
        "WHERE r.status = 'PROCESSED' AND (r.stripe_refund_id IS NULL OR f.id IS NULL) ORDER BY r.id").fetchall()
    archived = archived_ids("refunds", ctx.archive) if rows else set()
    out = []
    for rid, pi, ch, refund_id in rows:
        if refund_id and refund_id in archived:
            continue
        problem = ("PROCESSED but has no Stripe refund id" if refund_id is None else
                   f"PROCESSED with Stripe refund {refund_id}, which payops does not have")
        local = con.execute(
            "SELECT id FROM refunds WHERE payops_request_id = ? AND status NOT IN ('failed', 'canceled') "
            "ORDER BY created LIMIT 1", [rid]).fetchone()
        local_id = local[0] if local else None
        outcome = (f"link to Stripe refund {local_id} (it carries payops_request_id {rid})" if local_id else
                   "look the refund up in Stripe; link it, or mark the request FAILED if Stripe has none")
        out.append(Finding("request_processed_without_refund", "refund_request", str(rid), problem,
                           outcome=outcome, facts=(rid, pi, ch, refund_id, local_id)))
    return out


def _carries(obj: dict, rid: int) -> bool:
    return str((obj.get("metadata") or {}).get("payops_request_id")) == str(rid)


def _refund_in_stripe(ctx: FixContext, rid: int, pi: str | None, ch: str | None,
                      refund_id: str | None) -> dict | None:
    """The Stripe refund made for request ``rid``: the one it names, else one listed for its payment."""
    if refund_id:
        obj = ctx.stripe.retrieve("refund", refund_id)
        if obj is not None and _carries(obj, rid):
            return obj
    found = None
    if ch or pi:
        for obj in ctx.stripe.list_refunds(charge=ch, payment_intent=None if ch else pi):
            if _carries(obj, rid) and (found is None or obj.get("status") in ("succeeded", "pending")):
                found = obj
    return found


def _link_or_fail(con: duckdb.DuckDBPyConnection, f: Finding, ctx: FixContext) -> None:
    rid, pi, ch, refund_id, local_id = f.facts
    if local_id:
        with transaction(con):
            refunds.link_refund(con, rid, local_id, **_audited(ctx, f))
        f.repaired = True
        return
    found = _refund_in_stripe(ctx, rid, pi, ch, refund_id)
    with transaction(con):
        if found is not None:
            ingest_into(con, [found])
        if found is not None and found.get("status") not in ("failed", "canceled"):
            f.outcome = f"fetched Stripe refund {found['id']} and linked it"
            refunds.link_refund(con, rid, found["id"], **_audited(ctx, f))
        else:
            why = (f"Stripe refund {found['id']} is {found.get('status')}" if found is not None else
                   f"no Stripe refund carries payops_request_id {rid}")
            f.outcome = f"marked FAILED ({why}); it can be approved again"
            refunds.mark_failed(con, rid, f"payops fix: {why}", found["id"] if found is not None else refund_id,
                                **_audited(ctx, f))
    f.repaired = True


# ------------------------------------------------------------------ charge_refunded_mismatch

_MISMATCH_SQL = (
    "SELECT c.id, coalesce(c.amount_refunded, 0), coalesce(sum(f.amount) FILTER "
    "(WHERE f.status NOT IN ('failed', 'canceled')), 0) AS total "
    "FROM charges c LEFT JOIN refunds f ON f.charge = c.id "
    # an uncaptured charge's amount_refunded is its released authorisation: Stripe makes no refund for it
    "WHERE coalesce(c.captured, true) {where} "
    "GROUP BY c.id, c.amount_refunded HAVING coalesce(c.amount_refunded, 0) <> total ORDER BY c.id"
)


class _StillWrong(Exception):
    """Rolls a re-fetch back when even Stripe's copy is inconsistent."""


def _find_charge_mismatch(con: duckdb.DuckDBPyConnection, ctx: FixContext) -> list[Finding]:
    return [Finding("charge_refunded_mismatch", "charge", cid,
                    f"amount_refunded is {refunded} but its refunds total {total}",
                    outcome="re-fetch the charge and its refunds from Stripe", facts=(cid, refunded, total))
            for cid, refunded, total in con.execute(_MISMATCH_SQL.format(where="")).fetchall()]


def _refetch_charge(con: duckdb.DuckDBPyConnection, f: Finding, ctx: FixContext) -> None:
    cid, refunded, total = f.facts
    charge = ctx.stripe.retrieve("charge", cid)
    if charge is None:
        f.needs_person(f"Stripe has no charge {cid}: needs a person")
        return
    refunds_ = ctx.stripe.list_refunds(charge=cid)
    try:
        with transaction(con):
            ingest_into(con, [charge] + refunds_)
            left = con.execute(_MISMATCH_SQL.format(where="AND c.id = ?"), [cid]).fetchall()
            if left:
                raise _StillWrong(left[0])
            f.outcome = (f"re-fetched the charge and {len(refunds_)} refund(s): "
                         f"amount_refunded now {charge.get('amount_refunded')}")
            _record(con, ctx, f, {"amount_refunded": refunded, "refunds_total": total},
                    {"amount_refunded": charge.get("amount_refunded")})
    except _StillWrong as exc:
        f.needs_person(f"even as Stripe has it, amount_refunded is {exc.args[0][1]} and the refunds total "
                       f"{exc.args[0][2]}: needs a person")
        return
    f.repaired = True


# ------------------------------------------------------------------ charge_without_balance_transaction


def _find_charge_without_bt(con: duckdb.DuckDBPyConnection, ctx: FixContext) -> list[Finding]:
    rows = con.execute(
        # an uncaptured (authorised only) or pending charge has no balance transaction on Stripe yet
        "SELECT c.id, c.balance_transaction FROM charges c WHERE c.status = 'succeeded' "
        "AND coalesce(c.captured, true) AND "
        "(c.balance_transaction IS NULL OR NOT EXISTS "
        " (SELECT 1 FROM balance_transactions b WHERE b.id = c.balance_transaction)) ORDER BY c.id").fetchall()
    archived = archived_ids("balance_transactions", ctx.archive) if rows else set()
    return [Finding("charge_without_balance_transaction", "charge", cid,
                    "succeeded but has no balance transaction" if txn is None else
                    f"its balance transaction {txn} is missing",
                    outcome="fetch the charge and its balance transaction from Stripe", facts=(cid, txn))
            for cid, txn in rows if not (txn and txn in archived)]


def _fetch_balance_transaction(con: duckdb.DuckDBPyConnection, f: Finding, ctx: FixContext) -> None:
    cid, txn = f.facts
    charge = ctx.stripe.retrieve("charge", cid)
    bt_ref = charge.get("balance_transaction") if charge else None
    bt_id = bt_ref.get("id") if isinstance(bt_ref, dict) else bt_ref
    bt = ctx.stripe.retrieve("balance_transaction", bt_id) if bt_id else None
    if charge is None or bt is None:
        f.needs_person((f"Stripe has no charge {cid}" if charge is None else
                        "Stripe has no balance transaction for it (yet)") + ": needs a person")
        return
    with transaction(con):
        ingest_into(con, [charge, bt])
        f.outcome = f"fetched balance transaction {bt['id']}"
        _record(con, ctx, f, {"balance_transaction": txn}, {"balance_transaction": bt["id"]})
    f.repaired = True


# ------------------------------------------------------------------ booking_unknown_payment_intent


def _find_booking_without_payment(con: duckdb.DuckDBPyConnection, ctx: FixContext) -> list[Finding]:
    rows = con.execute(
        "SELECT b.booking_id, b.payment_intent FROM bookings b WHERE b.payment_intent IS NOT NULL AND NOT EXISTS "
        "(SELECT 1 FROM payment_intents p WHERE p.id = b.payment_intent) ORDER BY b.booking_id").fetchall()
    archived = archived_ids("payment_intents", ctx.archive) if rows else set()
    return [Finding("booking_unknown_payment_intent", "booking", booking,
                    f"points to payment intent {pi}, which payops does not have",
                    outcome="fetch the payment intent (and its charge) from Stripe", facts=(pi,))
            for booking, pi in rows if pi not in archived]


def _fetch_payment(con: duckdb.DuckDBPyConnection, f: Finding, ctx: FixContext) -> None:
    (pi,) = f.facts
    obj = ctx.stripe.retrieve("payment_intent", pi)
    if obj is None:
        f.needs_person(f"Stripe has no payment intent {pi}: needs a person")
        return
    extra = []
    if isinstance(obj.get("latest_charge"), str):
        ch = ctx.stripe.retrieve("charge", obj["latest_charge"])
        extra = [ch] if ch else []
        # the charge's balance transaction too, or the next check would miss it
        if ch and isinstance(ch.get("balance_transaction"), str):
            bt = ctx.stripe.retrieve("balance_transaction", ch["balance_transaction"])
            extra += [bt] if bt else []
    with transaction(con):
        ingest_into(con, [obj] + extra)
        f.outcome = f"fetched payment intent {pi}" + (f" and charge {extra[0]['id']}" if extra else "")
        _record(con, ctx, f, None, {"payment_intent": pi})
    f.repaired = True


# ------------------------------------------------------------------ daily_metrics_stale


def _stale_days(con: duckdb.DuckDBPyConnection, tz: str) -> list[date]:
    """Days whose daily_metrics were computed before some row of that day last changed."""
    day = "CAST(timezone(?, {col}) AS DATE)"
    parts, params = [], []
    for table in ("charges", "payment_intents", "refunds", "disputes", "balance_transactions"):
        parts.append(f"SELECT {day.format(col='created')} AS day, max(synced_at) AS changed FROM {table} GROUP BY 1")
        params.append(tz)
    for col in ("requested_at", "decided_at", "processed_at"):
        parts.append(f"SELECT {day.format(col=col)} AS day, max(updated_at) AS changed FROM refund_requests "
                     f"WHERE {col} IS NOT NULL GROUP BY 1")
        params.append(tz)
    sql = (f"WITH touched AS ({' UNION ALL '.join(parts)}), m AS (SELECT day, min(computed_at) AS computed "
           "FROM daily_metrics GROUP BY day) "
           "SELECT m.day FROM m JOIN touched t ON t.day = m.day GROUP BY m.day, m.computed "
           "HAVING max(t.changed) > m.computed ORDER BY m.day")
    return [r[0] for r in con.execute(sql, params).fetchall()]


def _ranges(days: list[date]) -> list[tuple[date, date]]:
    """Consecutive days joined into (first, last) runs."""
    out: list[tuple[date, date]] = []
    for d in days:
        if out and d == out[-1][1] + timedelta(days=1):
            out[-1] = (out[-1][0], d)
        else:
            out.append((d, d))
    return out


def _find_stale_metrics(con: duckdb.DuckDBPyConnection, ctx: FixContext) -> list[Finding]:
    return [Finding("daily_metrics_stale", "daily_metrics", f"{start}" if start == end else f"{start}..{end}",
                    "computed before the data of that day last changed",
                    outcome="recompute with metrics.compute_daily", facts=(start, end))
            for start, end in _ranges(_stale_days(con, ctx.timezone))]


def _recompute(findings: list[Finding], ctx: FixContext) -> None:
    # compute_daily opens its own connection: none may be held here.
    for f in findings:
        start, end = f.facts
        try:
            n = metrics.compute_daily(start, end, db=ctx.db)
        except PayopsError as exc:
            f.needs_person(f"recompute failed: {exc.message}")
            continue
        f.outcome = f"recomputed {n} row(s)"
        with connect(ctx.db) as con, transaction(con):
            _record(con, ctx, f, None, {"start": str(start), "end": str(end), "rows": n})
        f.repaired = True


# The registry, in the order the checks run.
CHECKS: tuple[Check, ...] = (
    Check("refund_for_unprocessed_request", _find_refunds_for_unprocessed, _one_by_one(_mark_processed)),
    Check("request_stuck_processing", _find_stuck, _reconcile),
    Check("request_processed_without_refund", _find_processed_without_refund, _one_by_one(_link_or_fail)),
    Check("charge_refunded_mismatch", _find_charge_mismatch, _one_by_one(_refetch_charge)),
    Check("charge_without_balance_transaction", _find_charge_without_bt, _one_by_one(_fetch_balance_transaction)),
    Check("booking_unknown_payment_intent", _find_booking_without_payment, _one_by_one(_fetch_payment)),
    Check("daily_metrics_stale", _find_stale_metrics, _recompute),
)

"""Can a payment be refunded, and by how much: the facts of a payment, then a pure verdict.

:func:`load_facts` reads what the database knows about one payment (its charge, payment
intent, disputes, other open requests, booking); :func:`eligibility_reasons` turns those
facts into every reason a refund is refused, without touching the database or the clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import duckdb

from payops.config import RefundPolicy, Settings, get_settings
from payops.db import reuse
from payops.errors import InvalidInput, NotFound
from payops.money import format_amount, is_chargeback
from payops.refunds.model import OPEN_STATUSES, Verdict, utcnow

__all__ = ["PaymentFacts", "load_facts", "eligibility_reasons", "eligibility_notes", "eligibility_wording", "verdict",
           "check", "already_refunded", "refunded_by_payops", "record_refunded", "DEAD_REFUNDS"]

# A chargeback in this status is over and no longer blocks a refund: the money came back. (A lost
# chargeback keeps it blocked: the money already went back to the customer through the card issuer.)
_CHARGEBACK_OVER = "won"
# An inquiry in this status is closed (inquiries never block a refund; an open one is worth a note).
_INQUIRY_CLOSED = "warning_closed"
# Stripe refund statuses that mean no money went back (they never count as refunded).
DEAD_REFUNDS = ("failed", "canceled")
# Why a payment that has not (yet) succeeded cannot be refunded, by the status of its payment
# intent (or charge); the other statuses (failed, requires_payment_method) say it themselves.
NOT_YET_REFUNDABLE = {
    "processing": "is still processing (a bank debit that has not cleared); it can be refunded once it succeeds",
    "pending": "is still processing (a bank debit that has not cleared); it can be refunded once it succeeds",
    "requires_action": "is waiting for the customer to authenticate (3-D Secure); nothing was charged yet",
    "requires_confirmation": "has not been confirmed; nothing was charged yet",
    "requires_capture": "is authorised but not captured; nothing was charged: cancel it to release the hold",
    "canceled": "was canceled; nothing was captured, so there is nothing to refund",
}


@dataclass(frozen=True)
class PaymentFacts:
    """What payops knows about one payment, amounts in minor units.

    ``open_requests`` is the sum of the payment's open refund requests (other than the one
    being checked); ``refundable`` = captured - refunded - open_requests, never below 0.
    """

    payment_intent: str | None
    charge: str | None
    customer: str | None
    currency: str
    amount: int
    captured: int
    refunded: int
    open_requests: int
    disputed: bool
    status: str | None
    created: datetime | None
    booking_id: str | None = None
    booking_status: str | None = None
    session_start: datetime | None = None
    livemode: bool | None = None
    intent_status: str | None = None  # the payment intent's own status (status is the charge's)
    # the statuses of the charge's stored disputes; when none is stored, ``disputed`` (the charge's
    # flag) stands for an open chargeback
    disputes: tuple[str, ...] = ()

    @property
    def open_chargeback(self) -> bool:
        """A chargeback still open or lost: the money left through the card issuer, a refund would
        pay it twice. Inquiries (``payops.money.INQUIRY_STATUSES``) never count: they move no money."""
        if not self.disputes:
            return self.disputed
        return any(is_chargeback(s) and s != _CHARGEBACK_OVER for s in self.disputes)

    @property
    def open_inquiry(self) -> str | None:
        """The status of an inquiry still open on the payment, if any (it does not block a refund)."""
        return next((s for s in self.disputes if not is_chargeback(s) and s != _INQUIRY_CLOSED), None)

    @property
    def refundable(self) -> int:
        return max(0, self.captured - self.refunded - self.open_requests)

    @property
    def name(self) -> str:
        """How messages name the payment: its charge, else its payment intent."""
        return self.charge or self.payment_intent or "?"

    def as_dict(self) -> dict[str, Any]:
        """The figures as :attr:`Verdict.payment` shows them."""
        return {
            "payment_intent": self.payment_intent, "charge": self.charge, "customer": self.customer,
            "currency": self.currency, "amount": self.amount, "captured": self.captured,
            "refunded": self.refunded, "open_requests": self.open_requests, "refundable": self.refundable,
            "disputed": self.open_chargeback, "status": self.status, "created": self.created,
            "booking_id": self.booking_id, "booking_status": self.booking_status,
            "session_start": self.session_start, "livemode": self.livemode,
        }


# --------------------------------------------------------------------------- loading


def _one(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any]) -> dict | None:
    cur = con.execute(sql, params)
    row = cur.fetchone()
    return None if row is None else dict(zip([d[0] for d in cur.description], row, strict=True))


def _payment_rows(con: duckdb.DuckDBPyConnection, payment_id: str) -> tuple[dict | None, dict | None]:
    """(payment intent row, charge row) that a ``pi_``/``ch_``/``py_`` id names."""
    if payment_id.startswith(("ch_", "py_")):
        ch = _one(con, "SELECT * EXCLUDE (raw) FROM charges WHERE id = ?", [payment_id])
        pi = None
        if ch and ch.get("payment_intent"):
            pi = _one(con, "SELECT * EXCLUDE (raw) FROM payment_intents WHERE id = ?", [ch["payment_intent"]])
        return pi, ch
    if payment_id.startswith("pi_"):
        pi = _one(con, "SELECT * EXCLUDE (raw) FROM payment_intents WHERE id = ?", [payment_id])
        latest = pi.get("latest_charge") if pi else None
        # the payment's latest charge, else its newest succeeded one
        ch = _one(con, "SELECT * EXCLUDE (raw) FROM charges WHERE id = ? OR payment_intent = ? "
                       "ORDER BY (id = ?) DESC, (status = 'succeeded') DESC, created DESC LIMIT 1",
                  [latest, payment_id, latest])
        return pi, ch
    raise InvalidInput(f"{payment_id!r} is not a payment id (expected pi_... or ch_...)")


def _money_state(pi: dict | None, ch: dict | None) -> tuple[Any, int, int, bool]:
    """(status, captured, refunded, disputed) from the charge, else from the payment intent."""
    if ch is not None:
        status = ch.get("status")
        if ch.get("amount_captured") is not None:
            captured = int(ch["amount_captured"])
        elif status == "succeeded" and ch.get("captured") is not False:
            captured = int(ch.get("amount") or 0)
        else:
            captured = 0
        return status, captured, int(ch.get("amount_refunded") or 0), bool(ch.get("disputed"))
    status = (pi or {}).get("status")
    return status, int((pi or {}).get("amount_received") or 0) if status == "succeeded" else 0, 0, False


def already_refunded(charge_amount_refunded: int | None, payops_refunds: int) -> int:
    """How much of a payment is already refunded: the one rule (issue 12).

    The larger of the charge's ``amount_refunded`` as last stored (stale until the next
    sync) and the sum of the payment's non-failed refunds payops holds, including those
    payops itself just created.

    Args:
        charge_amount_refunded: ``charges.amount_refunded`` (None when unknown).
        payops_refunds: from :func:`refunded_by_payops`.
    """
    return max(int(charge_amount_refunded or 0), int(payops_refunds))


def refunded_by_payops(con: duckdb.DuckDBPyConnection, ch_id: str | None, pi_id: str | None) -> int:
    """The sum of the non-failed refunds of the payment (its charge or payment intent) stored in ``refunds``."""
    if ch_id is None and pi_id is None:
        return 0
    marks = ", ".join("?" for _ in DEAD_REFUNDS)
    return int(con.execute(
        f"SELECT coalesce(sum(amount), 0) FROM refunds WHERE (charge = ? OR (charge IS NULL AND payment_intent = ?)) "
        f"AND coalesce(status, '') NOT IN ({marks})", [ch_id, pi_id, *DEAD_REFUNDS]).fetchall()[0][0])


def record_refunded(con: duckdb.DuckDBPyConnection, ch_id: str | None) -> None:
    """Bring the stored charge's ``amount_refunded`` / ``refunded`` up to the refunds payops holds.

    Called when payops records a refund, so the charge row is not stale until the next sync;
    it only ever raises ``amount_refunded`` (a later sync brings Stripe's own figure).
    """
    if not ch_id:
        return
    row = con.execute("SELECT amount_refunded, coalesce(amount_captured, amount), payment_intent FROM charges "
                      "WHERE id = ?", [ch_id]).fetchone()
    if row is None:
        return
    total = already_refunded(row[0], refunded_by_payops(con, ch_id, row[2]))
    if total != int(row[0] or 0):
        con.execute("UPDATE charges SET amount_refunded = ?, refunded = ? WHERE id = ?",
                    [total, total >= int(row[1] or 0), ch_id])


def _open_requests(con: duckdb.DuckDBPyConnection, ch_id: str | None, pi_id: str | None,
                   exclude: int | None) -> int:
    """Open requests of the payment, less those whose refund payops already holds (counted as refunded)."""
    marks = ", ".join("?" for _ in OPEN_STATUSES)
    dead = ", ".join("?" for _ in DEAD_REFUNDS)
    sql = (f"SELECT coalesce(sum(amount), 0) FROM refund_requests r WHERE status IN ({marks}) "
           "AND (charge = ? OR payment_intent = ?) AND NOT EXISTS (SELECT 1 FROM refunds f WHERE "
           f"f.payops_request_id = r.id AND coalesce(f.status, '') NOT IN ({dead}))")
    params: list[Any] = [*OPEN_STATUSES, ch_id, pi_id, *DEAD_REFUNDS]
    if exclude is not None:
        sql += " AND id <> ?"
        params.append(int(exclude))
    return int(con.execute(sql, params).fetchall()[0][0])


def _booking(con: duckdb.DuckDBPyConnection, booking_id: str | None, pi_id: str | None) -> tuple | None:
    row = None
    if booking_id:
        row = con.execute("SELECT booking_id, status, session_start FROM bookings WHERE booking_id = ?",
                          [booking_id]).fetchone()
    if row is None and pi_id:
        row = con.execute("SELECT booking_id, status, session_start FROM bookings WHERE payment_intent = ? "
                          "ORDER BY updated_at DESC LIMIT 1", [pi_id]).fetchone()
    return row


def load_facts(con: duckdb.DuckDBPyConnection, payment_id: str, *, exclude: int | None = None) -> PaymentFacts:
    """The facts of the payment ``payment_id`` (``pi_...`` or ``ch_...``) on ``con``.

    Args:
        con: an open connection.
        payment_id: a payment intent or charge id.
        exclude: a request whose own amount does not count among the open requests.

    Raises:
        InvalidInput: not a payment id. NotFound: no such payment in the database.
    """
    payment_id = (payment_id or "").strip()
    pi, ch = _payment_rows(con, payment_id)
    if pi is None and ch is None:
        raise NotFound(f"no payment {payment_id} in the database (run `payops sync` first?)")
    src: dict = ch or pi or {}
    status, captured, refunded, disputed = _money_state(pi, ch)
    pi_id = pi["id"] if pi else (ch or {}).get("payment_intent")
    ch_id = ch["id"] if ch else None
    refunded = already_refunded(refunded, refunded_by_payops(con, ch_id, pi_id))
    # The stored disputes decide (the charge's `disputed` flag stays true after a dispute is won or
    # an inquiry closed, and may lag behind a new dispute); the flag only counts when none is stored.
    disputes: tuple[str, ...] = ()
    if ch_id:
        disputes = tuple(r[0] for r in con.execute(
            "SELECT status FROM disputes WHERE charge = ? ORDER BY created, id", [ch_id]).fetchall())
    booking_id = pi.get("booking_id") if pi else None
    booking = _booking(con, booking_id, pi_id)
    return PaymentFacts(
        payment_intent=pi_id, charge=ch_id,
        customer=(ch or {}).get("customer") or (pi or {}).get("customer"),
        currency=(src.get("currency") or "").lower(), amount=int(src.get("amount") or 0),
        captured=captured, refunded=refunded, open_requests=_open_requests(con, ch_id, pi_id, exclude),
        disputed=disputed, status=status, created=src.get("created"),
        booking_id=booking[0] if booking else booking_id, booking_status=booking[1] if booking else None,
        session_start=booking[2] if booking else None,
        livemode=(ch or {}).get("livemode", (pi or {}).get("livemode")),
        intent_status=(pi or {}).get("status"), disputes=disputes,
    )


# --------------------------------------------------------------------------- the verdict


def _fmt(amount: int, currency: str) -> str:
    return format_amount(amount, currency) if currency else str(amount)


def _payment_status(f: PaymentFacts) -> str | None:
    """The payment's status for refunding: its intent's when the intent is not done (processing,
    canceled...), a succeeded charge that was never captured counts as ``requires_capture``."""
    if f.intent_status in NOT_YET_REFUNDABLE:
        return f.intent_status
    if f.status == "succeeded" and f.charge and f.captured == 0 and f.amount > 0:
        return "requires_capture"
    return f.status


def _state_reasons(f: PaymentFacts) -> list[str]:
    """Reasons in the payment itself: not succeeded, disputed, nothing left."""
    out = []
    status = _payment_status(f)
    if status in NOT_YET_REFUNDABLE:
        out.append(f"payment {f.name} {NOT_YET_REFUNDABLE[status]}")
    elif status != "succeeded":
        out.append(f"payment {f.name} has status {status}; only succeeded payments can be refunded")
    if f.open_chargeback:
        out.append(f"payment {f.name} is disputed; a refund would be paid twice (answer the dispute instead)")
    if f.status == "succeeded" and f.captured > 0:
        if f.refunded >= f.captured:
            out.append(f"payment {f.name} is already fully refunded ({_fmt(f.refunded, f.currency)})")
        elif f.refundable <= 0:
            out.append(f"nothing left to refund on {f.name}: captured {_fmt(f.captured, f.currency)} - refunded "
                       f"{_fmt(f.refunded, f.currency)} - open requests {_fmt(f.open_requests, f.currency)}")
    return out


def _amount_reasons(f: PaymentFacts, amount: int | None, currency: str | None) -> list[str]:
    """Reasons in what is asked: the wrong currency, a non-positive amount, more than refundable."""
    out = []
    if currency is not None and f.currency and currency.lower() != f.currency:
        out.append(f"the request is in {currency.upper()} but payment {f.name} is in {f.currency.upper()}")
    if amount is not None:
        if amount <= 0:
            out.append(f"the amount must be positive, got {_fmt(amount, f.currency)}")
        elif amount > f.refundable > 0:
            out.append(f"{_fmt(amount, f.currency)} is more than the refundable {_fmt(f.refundable, f.currency)} "
                       f"(captured {_fmt(f.captured, f.currency)} - refunded {_fmt(f.refunded, f.currency)}"
                       f" - open requests {_fmt(f.open_requests, f.currency)})")
    return out


def eligibility_reasons(facts: PaymentFacts, amount: int | None, policy: RefundPolicy, now: datetime, *,
                        currency: str | None = None) -> list[str]:
    """Every reason ``facts``' payment cannot be refunded by ``amount`` at ``now``; [] if it can.

    Pure: the same facts, policy and moment always give the same reasons.

    Args:
        facts: from :func:`load_facts`.
        amount: minor units asked for, or None (all that is refundable).
        policy: the refund policy (its refund window).
        now: the moment the refund window is measured to.
        currency: the currency the request is in, when it must match the payment's.
    """
    reasons = _state_reasons(facts) + _amount_reasons(facts, amount, currency)
    window = policy.refund_window
    if window is not None and facts.created is not None and now - facts.created > window:
        reasons.append(f"payment {facts.name} was made {(now - facts.created).days} days ago, outside the "
                       f"{policy.refund_window_days:g}-day refund window")
    return reasons


def eligibility_notes(facts: PaymentFacts) -> list[str]:
    """What a reviewer should know about ``facts``' payment that does not block a refund. Pure.

    An open inquiry (``warning_needs_response``, ``warning_under_review``): the card issuer asks
    about the payment, no money has moved, and Stripe allows the refund; refunding is a common
    way to settle it.
    """
    status = facts.open_inquiry
    if status is None:
        return []
    return [f"payment {facts.name} has an open inquiry ({status}): the card issuer is asking, no money was taken; "
            "a refund is allowed and usually settles it"]


def verdict(con: duckdb.DuckDBPyConnection, payment_id: str, amount: int | None = None, *,
            exclude: int | None = None, currency: str | None = None, now: datetime | None = None,
            settings: Settings | None = None) -> Verdict:
    """:func:`load_facts` then :func:`eligibility_reasons`, on an open connection."""
    facts = load_facts(con, payment_id, exclude=exclude)
    policy = (settings or get_settings()).refund_policy
    reasons = eligibility_reasons(facts, amount, policy, now or utcnow(), currency=currency)
    return Verdict(eligible=not reasons, reasons=reasons, payment=facts.as_dict(), notes=eligibility_notes(facts))


def check(payment_id: str, amount: int | None = None, *, exclude: int | None = None, db=None,
          con=None) -> Verdict:
    """Can ``payment_id`` (``pi_...`` or ``ch_...``) be refunded, by ``amount`` (minor units)?

    Returns a :class:`Verdict` with every reason it cannot (not succeeded, a chargeback, fully
    refunded, more than refundable = captured - refunded - other open requests, outside the
    refund window). ``exclude``: a request id whose own amount does not count as another
    open request (what :func:`approve` and :func:`process` ask for that request).
    Raises :class:`~payops.errors.NotFound` for an unknown payment. ``con``: an open
    connection to read on (a composed read); default a short one of its own.
    """
    with reuse(con, db) as c:
        return verdict(c, payment_id, amount, exclude=exclude)


def eligibility_wording(v: Verdict) -> tuple[str, list[str]]:
    """How a verdict is worded to people, the same in ``payops refunds check`` and the review app.

    Returns:
        ``(headline, lines)``: ``"Eligible: 12.50 EUR still refundable"`` (the amount when known)
        or ``"Not eligible"``; then every reason it is not (none when eligible), then the notes that
        do not block it (``"note: ..."``, e.g. an open inquiry).
    """
    notes = [f"note: {n}" for n in v.notes]
    if not v.eligible:
        return "Not eligible", list(v.reasons) + notes
    p = v.payment or {}
    refundable, currency = p.get("refundable"), p.get("currency")
    if refundable is None or currency is None:
        return "Eligible", notes
    return f"Eligible: {_fmt(int(refundable), currency)} still refundable", notes

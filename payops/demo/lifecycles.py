"""The demo's payments, refunds, disputes and payouts in the other lifecycle statuses.

What a marketplace sees on any given day besides succeeded and declined payments: checkouts the
student left (``requires_payment_method``, then ``canceled`` a day later), 3-D Secure challenges not
yet answered (``requires_action``), a SEPA debit that has not cleared (``processing``, its charge
``pending``), sessions authorised now and captured after they happen (``requires_capture``) and an
authorisation released (``canceled``), refunds still ``pending`` at the bank, a refund waiting for the
customer (``requires_action``: Stripe emailed them for their details; its refund request stays
PROCESSING), inquiries (``warning_needs_response``, ``warning_under_review``, ``warning_closed``) that
move no money, a payout the bank returned (``failed``: the account was closed) and that money sent
again to the new account (``pending``, not cash yet).

They are built after everything else from the same random stream, so adding them changes no other
object (and each new kind is drawn after the older ones, so it changes none of them); each payment
gets its booking. ``lifecycle_objects`` returns the objects (and the events of the last day) and the
bookings' rows; the requests it adds go into the plan (``plan.requests`` and ``plan.audit``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from payops.demo.catalog import (
    APPROVE_NOTES,
    DAY,
    HOUR,
    NOTES,
    PLATFORM_FEE_BPS,
    PRICES,
    REQUESTERS,
    REVIEWERS,
    SUBJECTS,
)
from payops.demo.plan import AuditEvent, DemoRequest, Payment
from payops.money import fee
from payops.refunds.processing import awaiting_message

if TYPE_CHECKING:
    from payops.demo.stripe_objects import StripeBuilder

__all__ = ["lifecycle_objects", "lifecycle_requests"]

PER_KIND = 400  # one of each kind per this many planned payments (at least one)


def lifecycle_requests(n_payments: int) -> int:
    """How many refund requests :func:`lifecycle_objects` adds for a plan of ``n_payments`` payments."""
    return max(1, n_payments // PER_KIND)


def lifecycle_objects(b: StripeBuilder, payouts: list[dict],
                      request_ids: Sequence[int] = ()) -> tuple[list[dict], list[tuple]]:
    """The extra objects (events of the last day included) and their bookings' rows.

    ``payouts`` (what :meth:`StripeBuilder.payouts` returned) is changed in place: one daily payout
    of a week or so ago comes back from the bank (``failed``). ``request_ids``: fresh refund request
    ids (:func:`lifecycle_requests` of them), one per refund waiting for the customer.
    """
    from payops.demo.stripe_objects import _Sale

    rng, end = b.rng, b.end
    plan = b.plan
    b._events = []
    objs: list[dict] = []
    bookings: list[tuple] = []
    k = max(1, len(plan.payments) // PER_KIND)

    def sale(at: int, currency: str | None = None, *, held: bool = False) -> _Sale:
        """A new payment at ``at``: its session is booked ahead (after ``end``), or ``held`` a day after
        the payment (before ``end``: a completed session)."""
        custs = [c for c in plan.customers if currency is None or c.currency == currency] or plan.customers
        cust = custs[rng.randrange(len(custs))]
        cur = cust.currency
        duration = rng.choice((45, 60, 90))
        tutor = rng.randrange(len(plan.tutors))
        amount = PRICES[cur][duration][plan.tutors[tutor][1]]
        p = Payment(t=at, cust=plan.customers.index(cust), amount=amount, currency=cur, duration=duration,
                    tutor=tutor, decline=-1, retry=False,
                    session=midnight_after(at) + 17 * HOUR if held else midnight_after(end) + rng.randint(0, 9) * DAY
                    + 17 * HOUR, booking="completed" if held else "scheduled", request=None, dispute=None)
        subject = rng.choice(SUBJECTS)
        return _Sale(p, cust, b.ident("pi_3Q"), b.ident("bk_", 14), plan.tutors[tutor][0], subject,
                     f"{subject} tutoring, {duration} min", fee(amount, PLATFORM_FEE_BPS))

    def recent() -> int:
        return end - rng.randint(HOUR, 20 * HOUR)

    def days_ago(lo: int, hi: int) -> int:
        return end - rng.randint(lo * DAY, hi * DAY)

    def book(s: _Sale, status: str, updated: int) -> None:
        if status == "scheduled" and s.p.booking == "completed":
            status, updated = "completed", s.p.session + s.p.duration * 60
        bookings.append((s.booking_id, s.pi_id, s.cust.id, s.tutor_id, s.p.session, status, min(updated, end - 1)))

    for _ in range(k):
        for status in ("requires_payment_method", "requires_action"):
            s = sale(recent())
            pi = _intent(b, s, None, status)
            objs.append(pi)
            book(s, "scheduled", s.p.t)
            b._event("payment_intent.created", pi, pi["created"])
            if status == "requires_action":
                b._event("payment_intent.requires_action", pi, s.p.t)
        s = sale(days_ago(2, 6))  # left at the card form, canceled by the platform a day later
        pi = _intent(b, s, None, "canceled", canceled_at=s.p.t + DAY, reason="abandoned")
        objs.append(pi)
        book(s, "cancelled", s.p.t + DAY)
        objs += _processing(b, sale(recent(), "eur"), book)
        objs += _authorised(b, sale(recent()), book, release=False)
        objs += _authorised(b, sale(days_ago(2, 6)), book, release=True)
        objs += _with_pending_refund(b, sale(days_ago(3, 8), held=True), book, recent())
        for status in ("warning_needs_response", "warning_under_review", "warning_closed"):
            objs += _with_inquiry(b, sale(days_ago(6, 20), held=True), book, status)
    objs += _fail_a_payout(b, payouts)
    # the newer kinds: drawn after all of the above, so they changed none of it
    for rid in request_ids[:k]:
        objs += _with_refund_requiring_action(b, sale(days_ago(4, 8), held=True), book, rid)
    objs += _resend_failed_payout(b, payouts)
    return objs + b._events, bookings


def midnight_after(ts: int) -> int:
    return ts - ts % DAY + DAY


def _intent(b: StripeBuilder, s: Any, charge: dict | None, status: str, *, canceled_at: int | None = None,
            reason: str | None = None) -> dict:
    """The builder's payment intent of ``s``, then set to ``status`` (``charge`` may be None)."""
    placeholder = charge or {"id": None, "status": "failed"}
    pi = b._payment_intent(s, placeholder, None)
    pi.update(status=status, latest_charge=charge["id"] if charge else None, amount_received=0,
              payment_method=charge["payment_method"] if charge else None)
    if status == "requires_action":
        pi["payment_method"] = s.cust.pm
        pi["next_action"] = {"type": "use_stripe_sdk", "use_stripe_sdk": {"type": "three_d_secure_redirect"}}
    if status == "canceled":
        pi.update(canceled_at=canceled_at, cancellation_reason=reason)
    return pi


def _processing(b: StripeBuilder, s: Any, book: Any) -> list[dict]:
    """A SEPA Direct Debit that has not cleared: intent ``processing``, charge ``pending``.

    (The builder's charge is a card charge; its balance transaction is dropped: none exists until the
    debit clears. Payouts are already built, so the builder's balance bookkeeping no longer matters.)
    """
    charge, _, _ = b._charge(s, s.p.t, -1)
    iban_last4 = b.digits(4)
    charge.update(status="pending", paid=False, balance_transaction=None, outcome=None,
                  calculated_statement_descriptor=None, receipt_url=None,
                  payment_method_details={"sepa_debit": {
                      "bank_code": b.digits(8), "branch_code": None, "country": s.cust.card["country"],
                      "fingerprint": b.ident("", 16), "last4": iban_last4, "mandate": b.ident("mandate_1Q")},
                      "type": "sepa_debit"})
    pi = _intent(b, s, charge, "processing")
    pi["payment_method_types"] = ["sepa_debit"]
    pi["payment_method_options"] = None
    book(s, "scheduled", s.p.t)
    b._event("charge.pending", charge, s.p.t)
    b._event("payment_intent.processing", pi, s.p.t)
    return [charge, pi]


def _authorised(b: StripeBuilder, s: Any, book: Any, *, release: bool) -> list[dict]:
    """Authorised now, captured after the session (``requires_capture``); or released (``canceled``)."""
    charge, _, _ = b._charge(s, s.p.t, -1)
    charge.update(captured=False, amount_captured=0, balance_transaction=None, receipt_url=None)
    if release:
        at = s.p.t + 2 * HOUR
        charge.update(refunded=True, amount_refunded=charge["amount"])
        pi = _intent(b, s, charge, "canceled", canceled_at=at, reason="requested_by_customer")
        book(s, "cancelled", at)
        b._event("charge.refunded", charge, at)
        b._event("payment_intent.canceled", pi, at)
    else:
        pi = _intent(b, s, charge, "requires_capture")
        pi.update(capture_method="manual", amount_capturable=charge["amount"], payment_method=s.cust.pm)
        book(s, "scheduled", s.p.t)
        b._event("charge.succeeded", charge, s.p.t)
        b._event("payment_intent.amount_capturable_updated", pi, s.p.t)
    if release:
        pi["capture_method"] = "manual"
    return [charge, pi]


def _paid(b: StripeBuilder, s: Any, book: Any) -> tuple[dict, dict, list[dict]]:
    charge, bt, _ = b._charge(s, s.p.t, -1)
    pi = _intent(b, s, charge, "succeeded")
    pi.update(amount_received=charge["amount"], payment_method=s.cust.pm)
    book(s, "scheduled", s.p.t)
    return charge, pi, [charge, pi] + ([bt] if bt else []) + b._transfer(s, charge)


def _with_pending_refund(b: StripeBuilder, s: Any, book: Any, at: int) -> list[dict]:
    """A paid session whose refund the bank has not completed yet (``pending``)."""
    charge, pi, out = _paid(b, s, book)
    refund, bt, *reversal = b._refund(charge, pi["id"], charge["amount"], at, "requested_by_customer", {}, None)
    refund.update(status="pending", pending_reason="processing")
    refund["destination_details"]["card"].update(reference_status="pending", type="pending")
    b._event("refund.created", refund, at)
    b._event("charge.refunded", charge, at)
    return out + [refund, bt, *reversal]


def _with_inquiry(b: StripeBuilder, s: Any, book: Any, status: str) -> list[dict]:
    """A paid session the card issuer asks about: an inquiry (``warning_*``), no money withdrawn."""
    charge, pi, out = _paid(b, s, book)
    dispute = b._dispute(s.p, "needs_response", charge, pi["id"])[0]
    created = dispute["created"]
    dispute.update(status=status, balance_transactions=[], is_charge_refundable=True)
    dispute["payment_method_details"]["card"]["case_type"] = "inquiry"
    if status != "warning_needs_response":
        dispute["evidence"]["uncategorized_text"] = "Session log attached: the student attended the full session."
        dispute["evidence_details"].update(has_evidence=True, submission_count=1)
    b._event("charge.dispute.created", dispute, created)
    return out + [dispute]


def _fail_a_payout(b: StripeBuilder, payouts: list[dict]) -> list[dict]:
    """One paid daily payout of 5 to 12 days ago turns ``failed`` (the bank account was closed): Stripe
    returns its money to the balance two days after it was sent (a ``payout_failure`` transaction)."""
    end = b.end
    candidates = [p for p in payouts if p["object"] == "payout" and p["status"] == "paid"
                  and end - 12 * DAY <= p["created"] <= end - 5 * DAY]
    if not candidates:
        return []
    payout = candidates[b.rng.randrange(len(candidates))]
    back_at = payout["created"] + 2 * DAY
    back = b._bt(payout["id"], "payout_failure", "payout_failure", payout["amount"], 0, payout["currency"],
                 back_at, back_at, "STRIPE PAYOUT FAILURE", None)
    payout.update(status="failed", failure_balance_transaction=back["id"], failure_code="account_closed",
                  failure_message="The bank account has been closed.", reconciliation_status="not_applicable",
                  trace_id={"status": "unsupported", "value": None})
    return [back]


def _with_refund_requiring_action(b: StripeBuilder, s: Any, book: Any, rid: int) -> list[dict]:
    """A paid session refunded through a refund request that reviewers approved and payops sent, whose
    Stripe refund waits for the customer (``requires_action``: Stripe emailed them for the details it
    needs). As in the fake Stripe: the charge's ``amount_refunded`` counts it at once; no balance
    transaction, transfer reversal or fee refund until it succeeds. The request stays PROCESSING,
    linked to the refund, with the history payops writes (``awaiting_refund``)."""
    rng, end = b.rng, b.end
    charge, pi, out = _paid(b, s, book)
    amount, cur = charge["amount"], charge["currency"]
    at = end - rng.randint(2 * HOUR, 30 * HOUR)  # sent to Stripe
    requested = at - rng.randint(2 * HOUR, 20 * HOUR)
    requester = rng.choice(REQUESTERS)
    reviewers = [r for r in REVIEWERS if r != requester]
    first = rng.choice(reviewers)
    approved = requested + (at - requested) * rng.randint(20, 60) // 100
    note = rng.choice(APPROVE_NOTES)
    req = DemoRequest(id=rid, customer=s.cust.id, amount=amount, currency=cur, reason="requested_by_customer",
                      note=rng.choice(NOTES["requested_by_customer"]), requested_by=requester,
                      requested_at=requested, payment_intent=pi["id"], charge=charge["id"],
                      first_approver=first, first_approved_at=approved, decided_by=first, decided_at=approved,
                      decision_note=note)
    events = [AuditEvent(requested, rid, requester, "create", None, "PENDING", req.note)]
    if amount > b.plan.large.get(cur, amount):  # LARGE: four-eyes, a second and different approver
        req.second_approver = req.decided_by = rng.choice([r for r in reviewers if r != first])
        req.decided_at = approved + (at - approved) // 2
        events += [AuditEvent(approved, rid, first, "approve", "PENDING", "PENDING", note),
                   AuditEvent(req.decided_at, rid, req.second_approver, "approve", "PENDING", "APPROVED",
                              "Second approval.")]
    else:
        events.append(AuditEvent(approved, rid, first, "approve", "PENDING", "APPROVED", note))
    refund = {
        "id": b.ident("re_3Q"), "object": "refund", "amount": amount, "balance_transaction": None,
        "charge": charge["id"], "created": at, "currency": cur,
        "destination_details": {"card": {"reference_status": "pending", "type": "pending"}, "type": "card"},
        "metadata": {"payops_request_id": str(rid)},
        "next_action": {"type": "display_details", "display_details": {
            "email_sent": {"email_sent_at": at, "email_sent_to": s.cust.email}, "expires_at": at + 45 * DAY}},
        "payment_intent": pi["id"], "reason": "requested_by_customer", "receipt_number": None,
        "source_transfer_reversal": None, "status": "requires_action", "transfer_reversal": None,
    }
    charge["amount_refunded"] += amount
    charge["refunded"] = charge["amount_refunded"] >= charge["amount_captured"]
    processor = rng.choice(REVIEWERS)
    req.status, req.stripe_refund_id, req.attempts, req.updated_at = "PROCESSING", refund["id"], 1, at + 1
    events += [AuditEvent(at, rid, processor, "process", "APPROVED", "PROCESSING", None),
               AuditEvent(at + 1, rid, processor, "awaiting_refund", "PROCESSING", "PROCESSING",
                          awaiting_message(refund["id"], "requires_action"))]
    b.plan.requests.append(req)
    b.plan.audit += events
    b._event("refund.created", refund, at)
    b._event("charge.refunded", charge, at)
    return out + [refund]


def _resend_failed_payout(b: StripeBuilder, payouts: list[dict]) -> list[dict]:
    """The money of the failed payout sent again, to the platform's new bank account, by hand an hour or
    three ago: a manual payout still ``pending`` (not cash: ``payops.money.CASH_PAYOUT_STATUSES``). Its
    ``payout`` balance transaction takes back out what the ``payout_failure`` one returned."""
    failed = [p for p in payouts if p["object"] == "payout" and p["status"] == "failed"]
    if not failed:
        return []
    old = failed[0]
    at = b.end - b.rng.randint(HOUR, 3 * HOUR)
    po_id = b.ident("po_1Q")
    cur = old["currency"]
    bt = b._bt(po_id, "payout", "payout", -old["amount"], 0, cur, at, at, "STRIPE PAYOUT", None)
    payout = {**old, "id": po_id, "arrival_date": midnight_after(at) + DAY, "automatic": False,
              "balance_transaction": bt["id"], "created": at, "description": f"Resend of {old['id']}",
              "destination": f"ba_1Q{cur.upper()}TutorlyBank0000002", "failure_balance_transaction": None,
              "failure_code": None, "failure_message": None, "metadata": {"resends": old["id"]},
              "reconciliation_status": "not_applicable", "status": "pending",
              "trace_id": {"status": "pending", "value": None}}
    b._event("payout.created", payout, at)
    return [payout, bt]

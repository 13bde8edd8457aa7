"""Stripe lifecycles for the fake Stripe server (mixed into ``fake_stripe.FakeStripe``).

Each public method moves one object through one transition the way Stripe does and emits the events
Stripe sends for it (https://docs.stripe.com/api/events/types). Every method takes ``at`` (a Unix
time, default: the fake's clock) so a test or ``build_account`` can lay out a history.

Payment intents::

    requires_payment_method -> requires_confirmation -> (confirm) requires_action | processing |
    requires_capture | succeeded | requires_payment_method (declined)
    requires_action -> succeeded | requires_capture | processing | requires_payment_method
    processing -> succeeded | requires_payment_method;  requires_capture -> succeeded (capture)
    any but succeeded/processing -> canceled

Charges follow their intent: ``pending`` while it is processing, ``succeeded`` (``captured`` false
until a manual capture), ``failed``. Refunds: ``pending`` | ``requires_action`` | ``succeeded`` on
creation (``FakeStripe.refund_outcomes``), then ``succeeded``, ``failed`` (also days after success)
or ``canceled`` (only from ``requires_action``). Disputes: ``warning_needs_response`` ->
``warning_under_review`` -> ``warning_closed`` (inquiries, no money moves) or -> ``needs_response``
(funds withdrawn) -> ``under_review`` -> ``won`` (funds reinstated) | ``lost``. Payouts: ``pending``
-> ``in_transit`` -> ``paid`` | ``failed``; ``pending`` -> ``canceled``.
"""

from __future__ import annotations

import random
import string
from typing import Any

DAY = 86400
_ALNUM = string.ascii_letters + string.digits

DISPUTE_FEE = 1500
DECLINES = {  # failure code -> (message, decline_code or None: Stripe omits decline_code then)
    "card_declined": ("Your card was declined.", "generic_decline"),
    "insufficient_funds": ("Your card has insufficient funds.", "insufficient_funds"),
    "expired_card": ("Your card has expired.", None),
    "incorrect_cvc": ("Your card's security code is incorrect.", None),
    "processing_error": ("An error occurred while processing your card. Try again in a little bit.", None),
}
PI_TRANSITIONS = {
    "requires_payment_method": {"requires_confirmation", "canceled"},
    "requires_confirmation": {"requires_action", "processing", "requires_capture", "succeeded",
                              "requires_payment_method", "canceled"},
    "requires_action": {"processing", "requires_capture", "succeeded", "requires_payment_method", "canceled"},
    "processing": {"succeeded", "requires_payment_method"},
    "requires_capture": {"succeeded", "canceled"},
}
DISPUTE_TRANSITIONS = {
    "warning_needs_response": {"warning_under_review", "warning_closed", "needs_response"},
    "warning_under_review": {"warning_closed", "needs_response"},
    "needs_response": {"under_review", "won", "lost"},
    "under_review": {"won", "lost"},
}
# the way to each dispute status: the status it opens in, then the steps after it
DISPUTE_PATHS = {
    "warning_needs_response": ("warning_needs_response", ()),
    "warning_under_review": ("warning_needs_response", ("warning_under_review",)),
    "warning_closed": ("warning_needs_response", ("warning_under_review", "warning_closed")),
    "needs_response": ("needs_response", ()),
    "under_review": ("needs_response", ("under_review",)),
    "won": ("needs_response", ("under_review", "won")),
    "lost": ("needs_response", ("under_review", "lost")),
}
DISPUTE_STATUSES = tuple(DISPUTE_PATHS)
PAYOUT_TRANSITIONS = {"pending": {"in_transit", "canceled", "failed"}, "in_transit": {"paid", "failed"},
                      "paid": {"failed"}}


class IllegalTransition(ValueError):
    """Stripe would refuse this status change."""


def _check(kind: str, table: dict[str, set[str]], old: str, new: str) -> None:
    if new not in table.get(old, set()):
        raise IllegalTransition(f"{kind}: {old} -> {new} is not a Stripe transition")


def payment_method_details(rng: random.Random, type_: str = "card") -> dict:
    """``payment_method_details`` of a charge for a card or a SEPA debit."""
    if type_ == "sepa_debit":
        return {"type": "sepa_debit", "sepa_debit": {
            "bank_code": "37040044", "country": "DE", "last4": f"{rng.randrange(10000):04d}",
            "fingerprint": "".join(rng.choices(_ALNUM, k=16)), "mandate": None}}
    brand = rng.choice(["visa", "visa", "visa", "mastercard", "mastercard", "amex"])
    return {"type": "card", "card": {
        "brand": brand, "last4": f"{rng.randrange(10000):04d}", "exp_month": rng.randrange(1, 13),
        "exp_year": 2027 + rng.randrange(5), "country": "US", "funding": "credit", "network": brand,
        "checks": {"cvc_check": "pass", "address_line1_check": None, "address_postal_code_check": "pass"}}}


def payment_method_object(pm_id: str, pmd: dict, customer: str | None, created: int) -> dict:
    """The PaymentMethod object Stripe embeds in ``last_payment_error.payment_method``."""
    type_ = pmd["type"]
    details = dict(pmd[type_])
    details.pop("mandate", None)
    return {"id": pm_id, "object": "payment_method", "allow_redisplay": "unspecified",
            "billing_details": {"address": None, "email": None, "name": None, "phone": None, "tax_id": None},
            type_: details, "created": created, "customer": customer, "livemode": False, "metadata": {},
            "type": type_}


class LifecycleMixin:
    """Lifecycle transitions; expects FakeStripe's state (``_store``, ``lock``, ``_put``...)."""

    # provided by FakeStripe
    _store: dict[str, dict[str, dict]]
    lock: Any
    refund_outcomes: list[str]
    _event_floor: int | None

    def now(self) -> int:
        raise NotImplementedError

    def new_id(self, prefix: str) -> str:
        raise NotImplementedError

    def _put(self, obj: dict) -> None:
        raise NotImplementedError

    def add_event(self, type: str, obj: dict, *, created: int | None = None,
                  event_id: str | None = None, request: dict | None = None) -> dict:
        raise NotImplementedError

    def _balance_txn(self, *, amount: int, currency: str, source: str, type: str,
                     reporting_category: str, fee: int = 0, fee_details: Any = None,
                     created: int, description: str | None = None, hold: int = 0) -> dict:
        raise NotImplementedError

    # ------------------------------------------------------------------ helpers
    def _at(self, at: int | None) -> int:
        return self.now() if at is None else int(at)

    def _emit(self, type_: str, obj: dict, at: int) -> None:
        """Emit unless building history older than the event retention (``_event_floor``)."""
        floor = self._event_floor
        if floor is None or at >= floor:
            self.add_event(type_, obj, created=at)

    def _lrng(self) -> random.Random:
        rng = getattr(self, "_life_rng", None)
        if rng is None:
            rng = random.Random(4242)
            self._life_rng = rng
        return rng

    def _obj(self, otype: str, oid: str) -> dict:
        obj = self._store[otype].get(oid)
        if obj is None:
            raise KeyError(oid)
        return obj

    # ------------------------------------------------------------------ payment intents and charges
    def create_payment_intent(self, amount: int, currency: str = "usd", *, customer: str | None = None,
                              capture_method: str = "automatic", metadata: dict | None = None,
                              payment_method_type: str = "card", at: int | None = None) -> dict:
        """A new intent in ``requires_payment_method``; emits payment_intent.created."""
        at = self._at(at)
        with self.lock:
            pi_id = self.new_id("pi")
            rng = self._lrng()
            pi = {
                "id": pi_id, "object": "payment_intent", "amount": amount, "amount_capturable": 0,
                "amount_received": 0, "application": None, "application_fee_amount": None,
                "automatic_payment_methods": None, "canceled_at": None, "cancellation_reason": None,
                "capture_method": capture_method,
                "client_secret": f"{pi_id}_secret_{''.join(rng.choices(_ALNUM, k=10))}",
                "confirmation_method": "automatic", "created": at, "currency": currency, "customer": customer,
                "description": None, "last_payment_error": None, "latest_charge": None, "livemode": False,
                "metadata": dict(metadata or {}), "next_action": None, "payment_method": None,
                "payment_method_types": [payment_method_type], "processing": None, "receipt_email": None,
                "setup_future_usage": None, "status": "requires_payment_method", "transfer_data": None,
                "transfer_group": None,
            }
            self._put(pi)
            self._emit("payment_intent.created", pi, at)
            return pi

    def attach_payment_method(self, pi_id: str, *, at: int | None = None) -> dict:
        """requires_payment_method -> requires_confirmation (Stripe sends no event for this step)."""
        with self.lock:
            pi = self._obj("payment_intent", pi_id)
            _check("payment_intent", PI_TRANSITIONS, pi["status"], "requires_confirmation")
            pi["payment_method"] = "pm_" + "".join(self._lrng().choices(_ALNUM, k=24))
            pi["last_payment_error"] = None
            pi["status"] = "requires_confirmation"
            return pi

    def confirm_payment_intent(self, pi_id: str, outcome: str = "succeeded", *,
                               decline: str = "card_declined", at: int | None = None) -> dict:
        """Confirm: ``outcome`` is succeeded, requires_action, processing or failed.

        ``succeeded`` on a manual-capture intent leaves it in ``requires_capture``.
        """
        at = self._at(at)
        with self.lock:
            pi = self._obj("payment_intent", pi_id)
            if pi["status"] == "requires_payment_method":
                self.attach_payment_method(pi_id)
            if outcome == "requires_action":
                _check("payment_intent", PI_TRANSITIONS, pi["status"], "requires_action")
                pi["status"] = "requires_action"
                pi["next_action"] = {"type": "redirect_to_url", "redirect_to_url": {
                    "return_url": "https://tutoring.example/return",
                    "url": f"https://hooks.stripe.com/3d_secure_2/authenticate/{pi_id}"}}
                self._emit("payment_intent.requires_action", pi, at)
                return pi
            return self._attempt(pi, outcome, decline, at)

    def complete_action(self, pi_id: str, outcome: str = "succeeded", *, decline: str = "card_declined",
                        at: int | None = None) -> dict:
        """The customer finished (or failed) the action: requires_action -> the outcome's status."""
        at = self._at(at)
        with self.lock:
            pi = self._obj("payment_intent", pi_id)
            if pi["status"] != "requires_action":
                raise IllegalTransition(f"payment_intent: {pi['status']} has no pending action")
            pi["next_action"] = None
            return self._attempt(pi, outcome, decline, at)

    def _attempt(self, pi: dict, outcome: str, decline: str, at: int) -> dict:
        manual = pi["capture_method"] == "manual"
        target = {"succeeded": "requires_capture" if manual else "succeeded", "processing": "processing",
                  "failed": "requires_payment_method"}[outcome]
        _check("payment_intent", PI_TRANSITIONS, pi["status"], target)
        charge = self._new_charge(pi, at)
        if outcome == "processing":
            charge.update(status="pending", paid=False, captured=True, amount_captured=pi["amount"])
            pi["status"] = "processing"
            self._emit("charge.pending", charge, at)
            self._emit("payment_intent.processing", pi, at)
        elif outcome == "failed":
            self._decline(pi, charge, decline, at)
        elif manual:
            charge.update(status="succeeded", paid=True, captured=False, amount_captured=0)
            pi.update(status="requires_capture", amount_capturable=pi["amount"])
            self._emit("charge.succeeded", charge, at)
            self._emit("payment_intent.amount_capturable_updated", pi, at)
        else:
            self._succeed(pi, charge, at)
        return pi

    def _new_charge(self, pi: dict, at: int) -> dict:
        rng = self._lrng()
        pmd = payment_method_details(rng, pi["payment_method_types"][0])
        pm_id = pi.get("payment_method") or "pm_" + "".join(rng.choices(_ALNUM, k=24))
        pi["payment_method"] = pm_id
        charge = {
            "id": self.new_id("ch"), "object": "charge", "amount": pi["amount"], "amount_captured": 0,
            "amount_refunded": 0, "application": None, "application_fee": None,
            "application_fee_amount": pi.get("application_fee_amount"), "balance_transaction": None,
            "billing_details": {"address": None, "email": None, "name": None, "phone": None, "tax_id": None},
            "calculated_statement_descriptor": "PAYOPS TUTORING", "captured": False, "created": at,
            "currency": pi["currency"], "customer": pi.get("customer"), "description": pi.get("description"),
            "disputed": False, "failure_balance_transaction": None, "failure_code": None,
            "failure_message": None, "fraud_details": {}, "livemode": False, "metadata": dict(pi["metadata"]),
            "on_behalf_of": None,
            "outcome": {"advice_code": None, "network_advice_code": None, "network_decline_code": None,
                        "network_status": "approved_by_network", "reason": None, "risk_level": "normal",
                        "risk_score": rng.randrange(0, 60), "seller_message": "Payment complete.",
                        "type": "authorized"},
            "paid": False, "payment_intent": pi["id"], "payment_method": pm_id, "payment_method_details": pmd,
            "receipt_email": None, "receipt_number": None, "receipt_url": None, "refunded": False,
            "review": None, "shipping": None, "source_transfer": None, "statement_descriptor": None,
            "statement_descriptor_suffix": None, "status": "pending", "transfer_data": None,
            "transfer_group": None,
        }
        pi["latest_charge"] = charge["id"]
        self._put(charge)
        return charge

    def _settle_txn(self, pi: dict, charge: dict, at: int) -> None:
        from fake_stripe import stripe_fee  # local: fake_stripe imports this module

        fee = stripe_fee(charge["amount_captured"])
        txn = self._balance_txn(
            amount=charge["amount_captured"], currency=charge["currency"], source=charge["id"], type="charge",
            reporting_category="charge", fee=fee, created=at, hold=2 * DAY,
            fee_details=[{"amount": fee, "application": None, "currency": charge["currency"],
                          "description": "Stripe processing fees", "type": "stripe_fee"}],
            description=pi.get("description"))
        charge["balance_transaction"] = txn["id"]

    def _succeed(self, pi: dict, charge: dict, at: int) -> None:
        charge.update(status="succeeded", paid=True, captured=True, amount_captured=pi["amount"])
        self._settle_txn(pi, charge, at)
        pi.update(status="succeeded", amount_received=pi["amount"], amount_capturable=0, processing=None)
        self._emit("charge.succeeded", charge, at)
        self._emit("payment_intent.succeeded", pi, at)

    def _decline(self, pi: dict, charge: dict, code: str, at: int) -> None:
        message, decline_code = DECLINES[code]
        charge.update(status="failed", paid=False, captured=False, amount_captured=0, failure_code=code,
                      failure_message=message)
        charge["outcome"].update(network_status="declined_by_network", reason=decline_code or code,
                                 seller_message="The bank did not return any further details with this decline.",
                                 type="issuer_declined")
        error: dict[str, Any] = {
            "charge": charge["id"], "code": code, "doc_url": f"https://docs.stripe.com/error-codes/{code}",
            "message": message, "type": "card_error",
            "payment_method": payment_method_object(charge["payment_method"], charge["payment_method_details"],
                                                    pi.get("customer"), at)}
        if decline_code is not None:  # Stripe omits the key (it never sends null) when there is none
            error["decline_code"] = decline_code
        pi.update(status="requires_payment_method", last_payment_error=error, payment_method=None,
                  processing=None)
        self._emit("charge.failed", charge, at)
        self._emit("payment_intent.payment_failed", pi, at)

    def settle_processing(self, pi_id: str, succeeded: bool = True, *, decline: str = "insufficient_funds",
                          at: int | None = None) -> dict:
        """A processing (bank debit) intent clears or bounces: -> succeeded | requires_payment_method."""
        at = self._at(at)
        with self.lock:
            pi = self._obj("payment_intent", pi_id)
            _check("payment_intent", PI_TRANSITIONS, pi["status"],
                   "succeeded" if succeeded else "requires_payment_method")
            charge = self._obj("charge", pi["latest_charge"])
            if succeeded:
                self._succeed(pi, charge, at)
            else:
                self._decline(pi, charge, decline, at)
            return pi

    def capture_payment_intent(self, pi_id: str, *, at: int | None = None) -> dict:
        """requires_capture -> succeeded; emits charge.captured and payment_intent.succeeded."""
        at = self._at(at)
        with self.lock:
            pi = self._obj("payment_intent", pi_id)
            _check("payment_intent", PI_TRANSITIONS, pi["status"], "succeeded")
            if pi["status"] != "requires_capture":
                raise IllegalTransition(f"payment_intent: {pi['status']} cannot be captured")
            charge = self._obj("charge", pi["latest_charge"])
            charge.update(captured=True, amount_captured=pi["amount"])
            self._settle_txn(pi, charge, at)
            pi.update(status="succeeded", amount_received=pi["amount"], amount_capturable=0)
            self._emit("charge.captured", charge, at)
            self._emit("payment_intent.succeeded", pi, at)
            return pi

    def cancel_payment_intent(self, pi_id: str, reason: str = "requested_by_customer", *,
                              at: int | None = None) -> dict:
        """-> canceled; an uncaptured authorisation is released (charge.refunded)."""
        at = self._at(at)
        with self.lock:
            pi = self._obj("payment_intent", pi_id)
            _check("payment_intent", PI_TRANSITIONS, pi["status"], "canceled")
            if pi["status"] == "requires_capture":
                charge = self._obj("charge", pi["latest_charge"])
                charge.update(refunded=True, amount_refunded=charge["amount"])
                self._emit("charge.refunded", charge, at)
            pi.update(status="canceled", canceled_at=at, cancellation_reason=reason, amount_capturable=0,
                      next_action=None)
            self._emit("payment_intent.canceled", pi, at)
            return pi

    # ------------------------------------------------------------------ refunds
    def succeed_refund(self, refund_id: str, *, at: int | None = None) -> dict:
        """pending | requires_action -> succeeded; emits refund.updated and charge.refund.updated."""
        at = self._at(at)
        with self.lock:
            refund = self._obj("refund", refund_id)
            if refund["status"] not in ("pending", "requires_action"):
                raise IllegalTransition(f"refund: {refund['status']} -> succeeded")
            if refund.get("balance_transaction") is None:
                txn = self._balance_txn(amount=-refund["amount"], currency=refund["currency"], source=refund_id,
                                        type="refund", reporting_category="refund", created=at,
                                        description="REFUND FOR CHARGE")
                refund["balance_transaction"] = txn["id"]
            refund["status"] = "succeeded"
            refund.pop("next_action", None)
            refund.pop("pending_reason", None)
            self._emit("refund.updated", refund, at)
            self._emit("charge.refund.updated", refund, at)
            return refund

    def cancel_refund(self, refund_id: str, *, at: int | None = None) -> dict:
        """requires_action -> canceled (Stripe cancels only those); the money stays with the charge."""
        at = self._at(at)
        with self.lock:
            refund = self._obj("refund", refund_id)
            if refund["status"] != "requires_action":
                raise IllegalTransition(f"refund: {refund['status']} -> canceled")
            refund["status"] = "canceled"
            refund.pop("next_action", None)
            self._release_refund(refund)
            self._emit("refund.updated", refund, at)
            self._emit("charge.refund.updated", refund, at)
            return refund

    def fail_refund(self, refund_id: str, failure_reason: str = "lost_or_stolen_card", *,
                    at: int | None = None) -> dict:
        """pending | requires_action | succeeded -> failed (a succeeded refund can fail days later).

        The money goes back to the balance (a ``refund_failure`` balance transaction) and the charge;
        emits refund.failed and charge.refund.updated.
        """
        at = self._at(at)
        with self.lock:
            refund = self._obj("refund", refund_id)
            if refund["status"] == "failed":
                return refund
            if refund["status"] == "canceled":
                raise IllegalTransition("refund: canceled -> failed")
            refund["status"] = "failed"
            refund["failure_reason"] = failure_reason
            refund.pop("next_action", None)
            refund.pop("pending_reason", None)
            if refund.get("balance_transaction"):
                txn = self._balance_txn(amount=refund["amount"], currency=refund["currency"], source=refund_id,
                                        type="refund_failure", reporting_category="refund_failure", created=at,
                                        description="REFUND FAILURE")
                refund["failure_balance_transaction"] = txn["id"]
            self._release_refund(refund)
            self._emit("refund.failed", refund, at)
            self._emit("charge.refund.updated", refund, at)
            return refund

    def _release_refund(self, refund: dict) -> None:
        charge = self._store["charge"].get(refund.get("charge") or "")
        if charge is not None:
            charge["amount_refunded"] = max(0, charge["amount_refunded"] - refund["amount"])
            charge["refunded"] = False

    # ------------------------------------------------------------------ disputes
    def make_dispute(self, charge_id: str, amount: int | None = None, reason: str = "fraudulent", *,
                     status: str = "needs_response", at: int | None = None) -> dict:
        """Open a dispute: ``needs_response`` (a chargeback: funds withdrawn) or
        ``warning_needs_response`` (an inquiry: no money moves yet). Marks the charge disputed."""
        if status not in ("needs_response", "warning_needs_response"):
            raise IllegalTransition(f"dispute: cannot open in {status}")
        at = self._at(at)
        with self.lock:
            charge = self._obj("charge", charge_id)
            if amount is None:
                amount = charge["amount_captured"] - charge["amount_refunded"] or charge["amount"]
            dispute = new_dispute(self, charge, amount, reason, at, status)
            self._put(dispute)
            charge["disputed"] = True
            self._emit("charge.dispute.created", dispute, at)
            if status == "needs_response":
                self._withdraw(dispute, at)
            return dispute

    def update_dispute(self, dispute_id: str, status: str, *, at: int | None = None) -> dict:
        """Move a dispute along Stripe's lifecycle, with its events and balance transactions."""
        at = self._at(at)
        with self.lock:
            dispute = self._obj("dispute", dispute_id)
            _check("dispute", DISPUTE_TRANSITIONS, dispute["status"], status)
            old = dispute["status"]
            dispute["status"] = status
            dispute["is_charge_refundable"] = status.startswith("warning_")
            if status in ("under_review", "warning_under_review"):
                dispute["evidence"]["uncategorized_text"] = "Session delivered; tutor attendance log attached."
                dispute["evidence_details"].update(has_evidence=True, submission_count=1)
            if status == "needs_response" and old.startswith("warning_"):
                self._emit("charge.dispute.updated", dispute, at)
                self._withdraw(dispute, at)
            elif status in ("won", "lost", "warning_closed"):
                if status == "won":
                    self._reinstate(dispute, at)
                self._emit("charge.dispute.closed", dispute, at)
            else:
                self._emit("charge.dispute.updated", dispute, at)
            return dispute

    def dispute_to(self, charge_id: str, status: str, amount: int | None = None, reason: str = "fraudulent", *,
                   at: int | None = None, until: int | None = None, step: int = 5 * DAY) -> dict:
        """Open a dispute at ``at`` and walk it to ``status``, one step every ``step`` seconds (never
        past ``until``), with every event and balance transaction on the way."""
        at = self._at(at)
        opening, steps = DISPUTE_PATHS[status]
        dispute = self.make_dispute(charge_id, amount, reason, status=opening, at=at)
        for i, nxt in enumerate(steps, start=1):
            t = at + i * step
            self.update_dispute(dispute["id"], nxt, at=min(t, until) if until is not None else t)
        return dispute

    def _withdraw(self, dispute: dict, at: int) -> None:
        cur = dispute["currency"]
        txn = self._balance_txn(
            amount=-dispute["amount"], currency=cur, source=dispute["id"], type="adjustment",
            reporting_category="dispute", fee=DISPUTE_FEE, created=at,
            fee_details=[{"amount": DISPUTE_FEE, "application": None, "currency": cur,
                          "description": "Dispute fee", "type": "stripe_fee"}],
            description=f"Chargeback withdrawal for {dispute['charge']}")
        dispute["balance_transactions"].append(dict(txn))
        self._emit("charge.dispute.funds_withdrawn", dispute, at)

    def _reinstate(self, dispute: dict, at: int) -> None:
        cur = dispute["currency"]
        txn = self._balance_txn(
            amount=dispute["amount"], currency=cur, source=dispute["id"], type="adjustment",
            reporting_category="dispute_reversal", fee=-DISPUTE_FEE, created=at,
            fee_details=[{"amount": -DISPUTE_FEE, "application": None, "currency": cur,
                          "description": "Dispute fee refund", "type": "stripe_fee"}],
            description=f"Chargeback reversal for {dispute['charge']}")
        dispute["balance_transactions"].append(dict(txn))
        self._emit("charge.dispute.funds_reinstated", dispute, at)

    # ------------------------------------------------------------------ payouts
    def make_payout(self, currency: str, amount: int, *, status: str = "pending", at: int | None = None,
                    arrival_days: int = 2) -> dict:
        """A new automatic payout (``pending``); emits payout.created. ``status`` may walk it on."""
        at = self._at(at)
        with self.lock:
            pid = self.new_id("po")
            txn = self._balance_txn(amount=-amount, currency=currency, source=pid, type="payout",
                                    reporting_category="payout", created=at, description="STRIPE PAYOUT")
            payout = {
                "id": pid, "object": "payout", "amount": amount, "application_fee": None,
                "application_fee_amount": None, "arrival_date": at + arrival_days * DAY, "automatic": True,
                "balance_transaction": txn["id"], "created": at, "currency": currency,
                "description": "STRIPE PAYOUT", "destination": "ba_" + "".join(self._lrng().choices(_ALNUM, k=24)),
                "failure_balance_transaction": None, "failure_code": None, "failure_message": None,
                "livemode": False, "metadata": {}, "method": "standard", "original_payout": None,
                "payout_method": None, "reconciliation_status": "in_progress", "reversed_by": None,
                "source_type": "card", "statement_descriptor": None, "status": "pending",
                "trace_id": {"status": "pending", "value": None}, "type": "bank_account",
            }
            self._put(payout)
            self._emit("payout.created", payout, at)
            path = {"pending": [], "in_transit": ["in_transit"], "paid": ["in_transit", "paid"],
                    "failed": ["in_transit", "failed"], "canceled": ["canceled"]}[status]
            for step in path:
                self.update_payout(pid, step, at=at if step != "paid" else payout["arrival_date"])
            return payout

    def update_payout(self, payout_id: str, status: str, *, failure_code: str = "account_closed",
                      at: int | None = None) -> dict:
        """pending -> in_transit -> paid | failed; pending -> canceled. A failed or canceled payout's
        money comes back to the balance (payout_failure / payout_cancel balance transaction)."""
        at = self._at(at)
        with self.lock:
            payout = self._obj("payout", payout_id)
            _check("payout", PAYOUT_TRANSITIONS, payout["status"], status)
            payout["status"] = status
            if status in ("failed", "canceled"):
                kind = "payout_failure" if status == "failed" else "payout_cancel"
                txn = self._balance_txn(amount=payout["amount"], currency=payout["currency"], source=payout_id,
                                        type=kind, reporting_category=kind, created=at,
                                        description="STRIPE PAYOUT " + status.upper())
                payout["failure_balance_transaction"] = txn["id"]
                payout["reconciliation_status"] = "not_applicable"
                if status == "failed":
                    payout["failure_code"] = failure_code
                    payout["failure_message"] = "The bank account has been closed."
                payout["trace_id"] = {"status": "unsupported", "value": None}
            elif status == "paid":
                payout["reconciliation_status"] = "completed"
                payout["trace_id"] = {"status": "supported", "value": "TRACE" + payout_id[-10:].upper()}
            self._emit({"in_transit": "payout.updated", "paid": "payout.paid", "failed": "payout.failed",
                        "canceled": "payout.canceled"}[status], payout, at)
            return payout


def new_dispute(fake: Any, charge: dict, amount: int, reason: str, created: int, status: str) -> dict:
    """A dispute object as Stripe shapes it (evidence, evidence_details, payment_method_details)."""
    pmd = charge.get("payment_method_details") or {}
    card = pmd.get("card") or {}
    dispute: dict[str, Any] = {
        "id": fake.new_id("dp"), "object": "dispute", "amount": amount, "balance_transactions": [],
        "charge": charge["id"], "created": created, "currency": charge["currency"],
        "enhanced_eligibility_types": [], "evidence": empty_evidence(),
        "evidence_details": {"due_by": created + 7 * DAY, "enhanced_eligibility": {}, "has_evidence": False,
                             "past_due": False, "submission_count": 0},
        "is_charge_refundable": status.startswith("warning_"), "livemode": False, "metadata": {},
        "payment_intent": charge.get("payment_intent"), "reason": reason, "status": status,
    }
    if card:
        dispute["payment_method_details"] = {"type": "card", "card": {
            "brand": card.get("brand", "visa"), "case_type": "inquiry" if status.startswith("warning_")
            else "chargeback", "network": card.get("network") or card.get("brand", "visa"),
            "network_reason_code": "10.4" if reason == "fraudulent" else "13.1"}}
    return dispute


EVIDENCE_FIELDS = (
    "access_activity_log", "billing_address", "cancellation_policy", "cancellation_policy_disclosure",
    "cancellation_rebuttal", "customer_communication", "customer_email_address", "customer_name",
    "customer_purchase_ip", "customer_signature", "duplicate_charge_documentation",
    "duplicate_charge_explanation", "duplicate_charge_id", "product_description", "receipt", "refund_policy",
    "refund_policy_disclosure", "refund_refusal_explanation", "service_date", "service_documentation",
    "shipping_address", "shipping_carrier", "shipping_date", "shipping_documentation",
    "shipping_tracking_number", "uncategorized_file", "uncategorized_text")


def empty_evidence() -> dict:
    """A dispute's ``evidence`` before anything is submitted (every field null)."""
    evidence: dict[str, Any] = dict.fromkeys(EVIDENCE_FIELDS)
    evidence["enhanced_evidence"] = {}
    return evidence

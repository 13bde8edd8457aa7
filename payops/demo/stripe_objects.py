"""Building the Stripe objects of a planned demo marketplace.

:class:`StripeBuilder` turns a :class:`~payops.demo.plan.Plan` into the objects the API
version ``2026-10-28.endive`` returns: customers, payment intents, charges (a declined
attempt and its retry), balance transactions, refunds, disputes, daily payouts, and the
events of the last day. It draws ids and the details the plan leaves open (descriptions,
risk scores, references) from the plan's random stream, so the same plan always gives the
same objects. It also fills in each refund request's payment intent and charge, whose ids
are drawn here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from payops.demo.catalog import (
    API_VERSION,
    DAY,
    DECLINES,
    DISPUTE_FEE,
    DISPUTE_REASONS,
    HOUR,
    LOCALE,
    NETWORK_REASON,
    PLATFORM_FEE_BPS,
    PRICES,
    STRIPE_FEE,
    SUBJECTS,
)
from payops.demo.plan import Customer, Payment, Plan, midnight, weighted
from payops.ledger import reversal_split
from payops.money import exponent, fee

__all__ = ["StripeBuilder"]


@dataclass(frozen=True)
class _Sale:
    """What every object of one payment shares."""

    p: Payment
    cust: Customer
    pi_id: str
    booking_id: str
    tutor_id: str
    subject: str
    desc: str
    app_fee: int


class StripeBuilder:
    """Stripe objects from a plan, in the order the plan's random stream expects.

    Call :meth:`customers`, then :meth:`payments` over consecutive slices of the plan's
    payments, then :meth:`payouts` (which pays out what the payments left in the balance).
    """

    def __init__(self, plan: Plan):
        self.plan = plan
        self.rng = plan.draws.rng
        self.ident = plan.draws.ident
        self.digits = plan.draws.digits
        self.start, self.end = plan.start, plan.end
        self.pending: dict[tuple[int, str], int] = {}  # balance that becomes available, per (day, currency)
        self.pending_ids: dict[tuple[int, str], list[str]] = {}  # ... and the balance transactions behind it
        self.links: dict[str, list[str]] = {}  # payout -> the balance transactions it settled
        self.connect: dict[str, tuple[dict, dict]] = {}  # charge id -> (its transfer, its application fee)
        self._events: list[dict] = []

    def customers(self) -> list[dict]:
        """Every customer object."""
        rng = self.rng
        out = []
        for i, cust in enumerate(self.plan.customers):
            out.append({
                "id": cust.id, "object": "customer", "address": None, "balance": 0, "created": cust.created,
                "currency": cust.currency, "default_source": None, "delinquent": False,
                "description": None, "discount": None, "email": cust.email,
                "invoice_prefix": "".join(rng.choices("0123456789ABCDEF", k=8)),
                "invoice_settings": {"custom_fields": None, "default_payment_method": cust.pm,
                                     "footer": None, "rendering_options": None},
                "livemode": False, "metadata": {"student_id": f"stu_{i + 1:06d}"}, "name": cust.name,
                "next_invoice_sequence": 1, "phone": None, "preferred_locales": [LOCALE[cust.currency]],
                "shipping": None, "tax_exempt": "none", "test_clock": None,
            })
        return out

    def payments(self, lo: int, hi: int) -> tuple[list[dict], list[tuple]]:
        """The objects of payments ``lo:hi`` (and the events among them), and their bookings' rows."""
        objs: list[dict] = []
        bookings: list[tuple] = []
        self._events = []
        for p in self.plan.payments[lo:hi]:
            self._payment(p, objs, bookings)
        return objs + self._events, bookings

    def _event(self, etype: str, obj: dict, created: int) -> None:
        """An event for ``obj``, if it happened in the last day (older events are not kept)."""
        ident = self.ident
        if created >= self.end - DAY:
            self._events.append({
                "id": ident("evt_3Q"), "object": "event", "api_version": API_VERSION,
                "created": created, "data": {"object": obj}, "livemode": False, "pending_webhooks": 0,
                "request": {"id": ident("req_", 14), "idempotency_key": ident("", 8) + "-" + ident("", 12)},
                "type": etype,
            })

    def _payment(self, p: Payment, objs: list[dict], bookings: list[tuple]) -> None:
        cust = self.plan.customers[p.cust]
        pi_id = self.ident("pi_3Q")
        booking_id = self.ident("bk_", 14)
        subject = self.rng.choice(SUBJECTS)
        sale = _Sale(p, cust, pi_id, booking_id, self.plan.tutors[p.tutor][0], subject,
                     f"{subject} tutoring, {p.duration} min", fee(p.amount, PLATFORM_FEE_BPS))
        charges = []
        last_error = None
        for at, code in self._attempts(p):
            charge, bt, error = self._charge(sale, at, code)
            if bt is not None:
                objs.append(bt)
            last_error = error or last_error
            charges.append(charge)
            objs.append(charge)
        charge = charges[-1]
        ok = charge["status"] == "succeeded"
        pi = self._payment_intent(sale, charge, last_error)
        objs.append(pi)
        bookings.append(self._booking(sale, charge))
        if ok:
            objs += self._transfer(sale, charge)
            pi["transfer_data"] = {"destination": charge["transfer_data"]["destination"]}
            self._after_payment(sale, charge, objs)
        if p.request is not None:
            p.request.payment_intent = pi_id
            p.request.charge = charge["id"]
            if p.request.failure_message:
                p.request.failure_message = p.request.failure_message.replace("{charge}", charge["id"])
        for ch in charges:
            self._event("charge.succeeded" if ch["status"] == "succeeded" else "charge.failed", ch, ch["created"])
        self._event("payment_intent.succeeded" if ok else "payment_intent.payment_failed", pi, charge["created"])

    def _attempts(self, p: Payment) -> list[tuple[int, int]]:
        """``(time, decline code or -1)`` of each charge: a declined first charge, maybe a successful retry."""
        if p.decline < 0:
            return [(p.t, -1)]
        attempts = [(p.t, p.decline)]
        if p.retry:
            attempts.append((min(self.end - 1, p.t + self.rng.randint(120, 1800)), -1))
        return attempts

    def _outcome(self, sale: _Sale, ch_id: str, code: int) -> tuple[dict, dict | None]:
        """The charge's ``outcome``, and for a decline the payment intent's ``last_payment_error``."""
        rng = self.rng
        if code < 0:
            return {"advice_code": None, "network_advice_code": None, "network_decline_code": None,
                    "network_status": "approved_by_network", "reason": None, "risk_level": "normal",
                    "risk_score": rng.randint(2, 60), "seller_message": "Payment complete.",
                    "type": "authorized"}, None
        fcode, reason, fmsg, _ = DECLINES[code]
        outcome = {"advice_code": "try_again_later" if code == 5 else "do_not_try_again"
                   if reason in ("do_not_honor",) else None,
                   "network_advice_code": None, "network_decline_code": None,
                   "network_status": "declined_by_network", "reason": reason,
                   "risk_level": "normal", "risk_score": rng.randint(5, 70),
                   "seller_message": f"The bank returned the decline code `{reason}`.",
                   "type": "issuer_declined"}
        error: dict[str, Any] = {
            "charge": ch_id, "code": fcode,
            "doc_url": f"https://stripe.com/docs/error-codes/{fcode.replace('_', '-')}",
            "message": fmsg, "payment_method": self._payment_method(sale.cust), "type": "card_error"}
        if fcode == "card_declined":  # Stripe omits decline_code (never null) when the issuer gave none
            error["decline_code"] = reason
        return outcome, error

    def _payment_method(self, cust: Customer) -> dict:
        """The customer's card as the PaymentMethod object Stripe embeds in ``last_payment_error``."""
        card = cust.card
        return {
            "id": cust.pm, "object": "payment_method", "allow_redisplay": "unspecified",
            "billing_details": {"address": None, "email": cust.email, "name": cust.name, "phone": None,
                                "tax_id": None},
            "card": {"brand": card["brand"], "country": card["country"], "exp_month": card["exp_month"],
                     "exp_year": card["exp_year"], "fingerprint": card["fingerprint"], "funding": card["funding"],
                     "last4": card["last4"]},
            "created": cust.created, "customer": cust.id, "livemode": False, "metadata": {}, "type": "card",
        }

    def _charge(self, sale: _Sale, at: int, code: int) -> tuple[dict, dict | None, dict | None]:
        """One charge attempt; its balance transaction if it succeeded; its error if declined."""
        rng, ident = self.rng, self.ident
        p, cust, pi_id, booking_id, desc, app_fee = sale.p, sale.cust, sale.pi_id, sale.booking_id, sale.desc, \
            sale.app_fee
        cur, amount, card = p.currency, p.amount, cust.card
        ch_id = ident("ch_3Q")
        ok = code < 0
        outcome, error = self._outcome(sale, ch_id, code)
        fcode: str | None = None
        fmsg: str | None = None
        if not ok:
            fcode, _, fmsg, _ = DECLINES[code]
        charge: dict[str, Any] = {
            "id": ch_id, "object": "charge", "amount": amount,
            "amount_captured": amount if ok else 0, "amount_refunded": 0, "application": None,
            "application_fee": ident("fee_1Q") if ok else None,
            "application_fee_amount": app_fee if ok else None,
            "balance_transaction": None,
            "billing_details": {
                "address": {"city": None, "country": card["country"], "line1": None, "line2": None,
                            "postal_code": f"{rng.randrange(10000, 99999)}" if cur == "usd" else None,
                            "state": None},
                "email": cust.email, "name": cust.name, "phone": None, "tax_id": None,
            },
            "calculated_statement_descriptor": "TUTORLY", "captured": ok, "created": at,
            "currency": cur, "customer": cust.id, "description": desc,
            "disputed": False, "failure_balance_transaction": None,
            "failure_code": fcode, "failure_message": fmsg, "fraud_details": {}, "livemode": False,
            "metadata": {"booking_id": booking_id}, "on_behalf_of": None, "outcome": outcome,
            "paid": ok, "payment_intent": pi_id, "payment_method": cust.pm,
            "payment_method_details": {
                "card": {
                    "amount_authorized": amount if ok else None, "authorization_code": None,
                    "brand": card["brand"],
                    "checks": {"address_line1_check": None,
                               "address_postal_code_check": "pass" if cur == "usd" else None,
                               "cvc_check": "fail" if fcode == "incorrect_cvc" else "pass"},
                    "country": card["country"], "exp_month": card["exp_month"],
                    "exp_year": card["exp_year"] if fcode != "expired_card" else self.plan.as_of.year - 1,
                    "extended_authorization": {"status": "disabled"},
                    "fingerprint": card["fingerprint"], "funding": card["funding"],
                    "incremental_authorization": {"status": "unavailable"}, "installments": None,
                    "last4": card["last4"], "mandate": None, "multicapture": {"status": "unavailable"},
                    "network": card["brand"], "network_token": {"used": False},
                    "network_transaction_id": self.digits(15) if ok else None,
                    "overcapture": {"maximum_amount_capturable": amount, "status": "unavailable"},
                    "regulated_status": "unregulated", "three_d_secure": None, "wallet": None,
                },
                "type": "card",
            },
            "radar_options": {}, "receipt_email": cust.email, "receipt_number": None,
            "receipt_url": f"https://pay.stripe.com/receipts/payment/{ident('', 40)}" if ok else None,
            "refunded": False, "review": None, "shipping": None,
            "source_transfer": None, "statement_descriptor": None,
            "statement_descriptor_suffix": None, "status": "succeeded" if ok else "failed",
            "transfer_data": None, "transfer_group": f"group_{pi_id}",
        }
        if not ok:
            return charge, None, error
        bps, fixed = STRIPE_FEE[cur]
        stripe_fee = fee(amount, bps) + fixed
        avail = midnight(at) + 2 * DAY
        bt = self._bt(charge["id"], "charge", "charge", amount, stripe_fee, cur, at, avail,
                      desc, "Stripe processing fees")
        charge["balance_transaction"] = bt["id"]
        self._credit(avail, cur, bt["net"], bt["id"])
        return charge, bt, None

    def _transfer(self, sale: _Sale, charge: dict) -> list[dict]:
        """The destination charge's transfer of the tutor's share and its application fee object.

        Ids are derived from the charge's (no random draw), so adding Connect moved no other object.
        """
        amount, cur, at, suffix = charge["amount"], charge["currency"], charge["created"], charge["id"][5:]
        acct = self.plan.tutors[sale.p.tutor][2]
        tr_id, fee_id = "tr_3Q" + suffix, charge["application_fee"]
        avail = midnight(at) + 2 * DAY  # debited when the charge's funds become available
        bt = self._bt(tr_id, "transfer", "transfer", -(amount - sale.app_fee), 0, cur, at, avail,
                      f"Transfer to {acct}", None, txn_id="txn_3T" + suffix)
        self._credit(avail, cur, bt["net"], bt["id"])
        transfer = {
            "id": tr_id, "object": "transfer", "amount": amount - sale.app_fee, "amount_reversed": 0,
            "balance_transaction": bt["id"], "created": at, "currency": cur, "description": None,
            "destination": acct, "destination_payment": "py_3Q" + suffix, "livemode": False,
            "metadata": {"booking_id": sale.booking_id, "tutor_id": sale.tutor_id},
            "reversals": {"object": "list", "data": [], "has_more": False,
                          "url": f"/v1/transfers/{tr_id}/reversals"},
            "reversed": False, "source_transaction": charge["id"], "source_type": "card",
            "transfer_group": charge["transfer_group"],
        }
        app_fee = {
            "id": fee_id, "object": "application_fee", "account": acct, "amount": sale.app_fee,
            "amount_refunded": 0, "application": "ca_3QTutorlyPlatform0001", "balance_transaction": None,
            "charge": charge["id"], "created": at, "currency": cur,
            "fee_source": {"charge": charge["id"], "type": "charge"}, "livemode": False,
            "originating_transaction": None, "refunded": False,
            "refunds": {"object": "list", "data": [], "has_more": False,
                        "url": f"/v1/application_fees/{fee_id}/refunds"},
        }
        charge.update(transfer=tr_id, transfer_data={"amount": None, "destination": acct})
        self.connect[charge["id"]] = (transfer, app_fee)
        self._event("transfer.created", transfer, at)
        self._event("application_fee.created", app_fee, at)
        return [bt, transfer, app_fee]

    def _reverse(self, charge: dict, refund: dict) -> list[dict]:
        """The tutor's part of a refund taken back (a transfer reversal) and the platform's fee refunded,
        by the reversal rule of :mod:`payops.ledger`."""
        pair = self.connect.get(charge["id"])
        if pair is None:
            return []
        transfer, app_fee = pair
        at, cur, suffix = refund["created"], charge["currency"], refund["id"][5:]
        fee_back, back = reversal_split(refund["amount"], charge["amount_captured"], app_fee["amount"],
                                        refunded_before=app_fee["amount_refunded"] + transfer["amount_reversed"],
                                        fee_refunded_before=app_fee["amount_refunded"])
        out: list[dict] = []
        if back > 0:
            trr_id = "trr_3Q" + suffix
            bt = self._bt(trr_id, "transfer_refund", "transfer_reversal", back, 0, cur, at, at,
                          f"Transfer reversal for {refund['id']}", None, txn_id="txn_3V" + suffix)
            self._credit(at, cur, back, bt["id"])
            transfer["reversals"]["data"].insert(0, {
                "id": trr_id, "object": "transfer_reversal", "amount": back, "balance_transaction": bt["id"],
                "created": at, "currency": cur, "destination_payment_refund": "pyr_3Q" + suffix, "metadata": {},
                "source_refund": refund["id"], "transfer": transfer["id"]})
            transfer["amount_reversed"] += back
            transfer["reversed"] = transfer["amount_reversed"] >= transfer["amount"]
            refund["transfer_reversal"] = trr_id
            out.append(bt)
            self._event("transfer.reversed", transfer, at)
        if fee_back > 0:
            app_fee["refunds"]["data"].insert(0, {
                "id": "fr_3Q" + suffix, "object": "fee_refund", "amount": fee_back, "balance_transaction": None,
                "created": at, "currency": cur, "fee": app_fee["id"], "metadata": {}})
            app_fee["amount_refunded"] += fee_back
            app_fee["refunded"] = app_fee["amount_refunded"] >= app_fee["amount"]
            self._event("application_fee.refunded", app_fee, at)
        return out

    def _payment_intent(self, sale: _Sale, charge: dict, last_error: dict | None) -> dict:
        rng, ident = self.rng, self.ident
        p, cust, pi_id, booking_id, desc, app_fee = sale.p, sale.cust, sale.pi_id, sale.booking_id, sale.desc, \
            sale.app_fee
        cur, amount, tutor_id, subject = p.currency, p.amount, sale.tutor_id, sale.subject
        session_iso = datetime.fromtimestamp(p.session, UTC).isoformat().replace("+00:00", "Z")
        ok = charge["status"] == "succeeded"
        pi = {
            "id": pi_id, "object": "payment_intent", "amount": amount, "amount_capturable": 0,
            "amount_details": {"tip": {}}, "amount_received": amount if ok else 0, "application": None,
            "application_fee_amount": app_fee,
            "automatic_payment_methods": {"allow_redirects": "never", "enabled": True},
            "canceled_at": None, "cancellation_reason": None, "capture_method": "automatic_async",
            "client_secret": f"{pi_id}_secret_{ident('', 25)}", "confirmation_method": "automatic",
            "created": max(self.start, p.t - rng.randint(2, 40)), "currency": cur, "customer": cust.id,
            "description": desc,
            "last_payment_error": None if ok else last_error,
            "latest_charge": charge["id"], "livemode": False,
            "metadata": {"booking_id": booking_id, "tutor_id": tutor_id, "session_start": session_iso,
                         "duration_minutes": str(p.duration), "subject": subject},
            "next_action": None, "on_behalf_of": None,
            "payment_method": cust.pm if ok else None,
            "payment_method_configuration_details": None,
            "payment_method_options": {"card": {"installments": None, "mandate_options": None,
                                                "network": None, "request_three_d_secure": "automatic"}},
            "payment_method_types": ["card"], "processing": None, "receipt_email": cust.email,
            "review": None, "setup_future_usage": None, "shipping": None,
            "statement_descriptor": None, "statement_descriptor_suffix": None,
            "status": "succeeded" if ok else "requires_payment_method", "transfer_data": None,
            "transfer_group": f"group_{pi_id}",
        }
        return pi

    def _booking(self, sale: _Sale, charge: dict) -> tuple:
        """The ``bookings`` row of the payment: its status as planned, updated when that happened."""
        p, end = sale.p, self.end
        ok = charge["status"] == "succeeded"
        if p.booking == "completed":
            updated = p.session + p.duration * 60
        elif p.booking == "no_show":
            updated = min(end - 1, p.session + 1800)
        elif p.booking == "cancelled":
            last = min(end, p.session) if ok else min(end, charge["created"] + 3 * HOUR)
            updated = charge["created"] + max(1, int((last - charge["created"]) * self.rng.uniform(0.05, 0.95)))
        else:
            updated = charge["created"]
        return (sale.booking_id, sale.pi_id, sale.cust.id, sale.tutor_id, p.session, p.booking, min(updated, end - 1))

    def _after_payment(self, sale: _Sale, charge: dict, objs: list[dict]) -> None:
        """The refunds and the dispute of a successful payment, with their events."""
        for r in self._refunds(sale.p, charge, sale.pi_id):
            objs.append(r)
            if r["object"] == "refund":
                self._event("charge.refunded", charge, r["created"])
        if sale.p.dispute:
            for o in self._dispute(sale.p, sale.p.dispute, charge, sale.pi_id):
                objs.append(o)
                if o["object"] == "dispute":
                    self._event("charge.dispute.created", o, o["created"])

    def _bt(self, source: str | None, typ: str, category: str, amount: int, stripe_fee: int, cur: str,
            created: int, available: int, desc: str | None, fee_desc: str | None, *,
            txn_id: str | None = None) -> dict:
        return {
            "id": txn_id or self.ident("txn_3Q"), "object": "balance_transaction", "amount": amount,
            "available_on": available, "balance_type": "payments", "created": created, "currency": cur,
            "description": desc, "exchange_rate": None, "fee": stripe_fee,
            "fee_details": [{"amount": stripe_fee, "application": None, "currency": cur,
                             "description": fee_desc, "type": "stripe_fee"}] if stripe_fee else [],
            "net": amount - stripe_fee, "reporting_category": category, "source": source,
            "status": "available" if available <= self.end else "pending", "type": typ,
        }

    def _credit(self, available: int, cur: str, net: int, txn: str) -> None:
        # funds available at ``available`` are paid out by the next daily payout
        day = midnight(available) + (DAY if available % DAY else 0)
        key = (day, cur)
        self.pending[key] = self.pending.get(key, 0) + net
        self.pending_ids.setdefault(key, []).append(txn)

    def _refund(self, charge: dict, pi_id: str, amount: int, created: int, reason: str | None,
                metadata: dict, refund_id: str | None) -> list[dict]:
        cur = charge["currency"]
        bt = self._bt(None, "refund", "refund", -amount, 0, cur, created, created,
                      f"REFUND FOR CHARGE ({charge['description']})", None)
        refund = {
            "id": refund_id or self.ident("re_3Q"), "object": "refund", "amount": amount,
            "balance_transaction": bt["id"], "charge": charge["id"], "created": created, "currency": cur,
            "destination_details": {"card": {"reference": self.digits(23),
                                             "reference_status": "available",
                                             "reference_type": "acquirer_reference_number", "type": "refund"},
                                    "type": "card"},
            "metadata": metadata, "payment_intent": pi_id, "reason": reason, "receipt_number": None,
            "source_transfer_reversal": None, "status": "succeeded", "transfer_reversal": None,
        }
        bt["source"] = refund["id"]
        charge["amount_refunded"] += amount
        charge["refunded"] = charge["amount_refunded"] == charge["amount_captured"]
        self._credit(created, cur, -amount, bt["id"])
        return [refund, bt, *self._reverse(charge, refund)]

    def _refunds(self, p: Payment, charge: dict, pi_id: str) -> list[dict]:
        """The refund made for the payment's PROCESSED request; else, by chance, one a support agent made."""
        rng = self.rng
        out: list[dict] = []
        created0 = charge["created"]
        req = p.request
        if req is not None:
            if req.status == "PROCESSED" and req.processed_at is not None:
                out += self._refund(charge, pi_id, req.amount, req.processed_at, req.reason,
                                    {"payops_request_id": str(req.id)}, req.stripe_refund_id)
            return out
        if p.dispute:
            return out
        u = rng.random()
        unit = 10 ** exponent(p.currency)  # one whole unit of the currency
        if p.booking == "cancelled" and u < 0.6:
            amount = p.amount
        elif p.booking == "no_show" and u < 0.4:
            amount = p.amount if rng.random() < 0.5 else p.amount // 2 // unit * unit
        elif u < 0.006:
            amount = max(unit, p.amount * rng.choice((10, 20, 25, 50)) // 100 // unit * unit)
        else:
            return out
        room = self.end - created0
        if room < 120:
            return out
        created = created0 + rng.randint(60, max(61, min(room - 1, 10 * DAY)))
        reason = rng.choices(("requested_by_customer", "duplicate", None), (0.8, 0.05, 0.15))[0]
        return self._refund(charge, pi_id, amount, created, reason, {}, None)

    def _dispute(self, p: Payment, status: str, charge: dict, pi_id: str) -> list[dict]:
        """The dispute of a payment the plan disputes, in ``status``, with its balance transactions."""
        rng = self.rng
        cur, amount = p.currency, p.amount
        room = self.end - charge["created"]
        frac = {"needs_response": (0.85, 0.98), "under_review": (0.5, 0.8),
                "won": (0.05, 0.4), "lost": (0.05, 0.4)}[status]
        created = charge["created"] + int(room * rng.uniform(*frac))
        reason = weighted(rng, DISPUTE_REASONS)()
        dfee = DISPUTE_FEE[cur]
        bts = [self._bt(None, "adjustment", "dispute", -amount, dfee, cur, created, created,
                        f"Chargeback withdrawal for {charge['id']}", "Dispute fee")]
        if status == "won":
            closed = created + int((self.end - created) * rng.uniform(0.5, 0.95))
            bts.append(self._bt(None, "adjustment", "dispute_reversal", amount, 0, cur, closed, closed,
                                f"Chargeback won for {charge['id']}", None))
        dp_id = self.ident("dp_1Q")
        for bt in bts:
            bt["source"] = dp_id
            self._credit(bt["created"], cur, bt["net"], bt["id"])
        submitted = status != "needs_response"
        dispute = {
            "id": dp_id, "object": "dispute", "amount": amount, "balance_transactions": bts,
            "charge": charge["id"], "created": created, "currency": cur, "enhanced_eligibility_types": [],
            "evidence": {
                "access_activity_log": None, "billing_address": None, "cancellation_policy": None,
                "cancellation_policy_disclosure": None, "cancellation_rebuttal": None,
                "customer_communication": None, "customer_email_address": charge["billing_details"]["email"],
                "customer_name": charge["billing_details"]["name"], "customer_purchase_ip": None,
                "customer_signature": None, "duplicate_charge_documentation": None,
                "duplicate_charge_explanation": None, "duplicate_charge_id": None,
                "product_description": charge["description"], "receipt": None, "refund_policy": None,
                "refund_policy_disclosure": None, "refund_refusal_explanation": None,
                "service_date": datetime.fromtimestamp(p.session, UTC).date().isoformat(),
                "service_documentation": None, "shipping_address": None, "shipping_carrier": None,
                "shipping_date": None, "shipping_documentation": None, "shipping_tracking_number": None,
                "uncategorized_file": None, "enhanced_evidence": {},
                "uncategorized_text": "Session log attached: student joined and the session ran its full length."
                if submitted else None,
            },
            "evidence_details": {"due_by": midnight(created) + 8 * DAY - 1, "enhanced_eligibility": {},
                                 "has_evidence": submitted, "past_due": False,
                                 "submission_count": 1 if submitted else 0},
            "is_charge_refundable": False, "livemode": False, "metadata": {},
            "payment_intent": pi_id,
            "payment_method_details": {"card": {"brand": charge["payment_method_details"]["card"]["brand"],
                                                "case_type": "chargeback",
                                                "network": charge["payment_method_details"]["card"]["network"],
                                                "network_reason_code": NETWORK_REASON[reason]},
                                       "type": "card"},
            "reason": reason, "status": status,
        }
        charge["disputed"] = True
        return [dispute, *bts]

    def payouts(self) -> list[dict]:
        """One automatic payout per day and currency of the funds that became available."""
        pending = self.pending
        out: list[dict] = []
        carry: dict[str, int] = {}
        carry_ids: dict[str, list[str]] = {}
        days = sorted({d for d, _ in pending})
        for day in days:
            for cur in sorted(PRICES):
                if (day, cur) not in pending and not carry.get(cur):
                    continue
                balance = carry.get(cur, 0) + pending.get((day, cur), 0)
                ids = carry_ids.get(cur, []) + self.pending_ids.get((day, cur), [])
                created = day + 2 * HOUR
                if balance <= 0 or not (self.start <= created < self.end):
                    carry[cur], carry_ids[cur] = balance, ids
                    continue
                carry[cur], carry_ids[cur] = 0, []
                po_id = self.ident("po_1Q")
                arrival = day + DAY
                bt = self._bt(po_id, "payout", "payout", -balance, 0, cur, created, created,
                              "STRIPE PAYOUT", None)
                status = "paid" if arrival <= self.end else "in_transit"
                payout = {
                    "id": po_id, "object": "payout", "amount": balance, "application_fee": None,
                    "application_fee_amount": None, "arrival_date": arrival, "automatic": True,
                    "balance_transaction": bt["id"], "created": created, "currency": cur,
                    "description": "STRIPE PAYOUT", "destination": f"ba_1Q{cur.upper()}TutorlyBank0000001",
                    "failure_balance_transaction": None, "failure_code": None, "failure_message": None,
                    "livemode": False, "metadata": {}, "method": "standard", "original_payout": None,
                    "reconciliation_status": "completed" if status == "paid" else "in_progress",
                    "reversed_by": None, "source_type": "card", "statement_descriptor": None,
                    "status": status, "trace_id": {"status": "supported" if status == "paid" else "pending",
                                                   "value": self.digits(15)
                                                   if status == "paid" else None},
                    "type": "bank_account",
                }
                out += [payout, bt]
                self.links[po_id] = [*ids, bt["id"]]
                if created >= self.end - DAY:
                    out.append({
                        "id": self.ident("evt_1Q"), "object": "event", "api_version": API_VERSION,
                        "created": created, "data": {"object": payout}, "livemode": False,
                        "pending_webhooks": 0, "request": {"id": None, "idempotency_key": None},
                        "type": "payout.created",
                    })
        return out

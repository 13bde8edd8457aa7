"""Small builders of Stripe-shaped objects (dicts) for tests."""

from __future__ import annotations

from typing import Any

BASE_TS = 1_760_000_000


def customer(id="cus_1", **kw: Any) -> dict:
    return {"id": id, "object": "customer", "email": f"{id}@example.com", "name": f"Student {id}",
            "phone": None, "created": BASE_TS, "livemode": False, "metadata": {}, **kw}


def payment_intent(id="pi_1", **kw: Any) -> dict:
    base = {"id": id, "object": "payment_intent", "amount": 4500, "amount_received": 4500, "currency": "usd",
            "status": "succeeded", "customer": "cus_1", "created": BASE_TS, "latest_charge": "ch_1",
            "application_fee_amount": 675, "livemode": False,
            "metadata": {"booking_id": "bk_1", "tutor_id": "tut_1"}}
    base.update(kw)
    return base


def charge(id="ch_1", **kw: Any) -> dict:
    base = {"id": id, "object": "charge", "amount": 4500, "amount_captured": 4500, "amount_refunded": 0,
            "currency": "usd", "status": "succeeded", "paid": True, "refunded": False, "disputed": False,
            "captured": True, "customer": "cus_1", "payment_intent": "pi_1", "balance_transaction": "txn_1",
            "failure_code": None, "failure_message": None, "application_fee_amount": 675, "livemode": False,
            "payment_method_details": {"type": "card", "card": {"brand": "visa", "last4": "4242"}},
            "metadata": {}, "created": BASE_TS}
    base.update(kw)
    return base


def refund(id="re_1", **kw: Any) -> dict:
    base = {"id": id, "object": "refund", "amount": 1000, "charge": "ch_1", "payment_intent": "pi_1",
            "currency": "usd", "status": "succeeded", "reason": "requested_by_customer", "failure_reason": None,
            "balance_transaction": "txn_r1", "metadata": {}, "created": BASE_TS + 3600}
    base.update(kw)
    return base


def balance_transaction(id="txn_1", **kw: Any) -> dict:
    base = {"id": id, "object": "balance_transaction", "amount": 4500, "fee": 161, "net": 4339,
            "currency": "usd", "source": "ch_1", "type": "charge", "reporting_category": "charge",
            "status": "available", "created": BASE_TS, "available_on": BASE_TS + 2 * 86400,
            "exchange_rate": None,
            "fee_details": [{"amount": 161, "currency": "usd", "type": "stripe_fee",
                             "description": "Stripe processing fees"}]}
    base.update(kw)
    return base


def dispute(id="dp_1", **kw: Any) -> dict:
    base = {"id": id, "object": "dispute", "amount": 4500, "charge": "ch_1", "payment_intent": "pi_1",
            "currency": "usd", "status": "needs_response", "reason": "fraudulent", "created": BASE_TS + 86400}
    base.update(kw)
    return base


def payout(id="po_1", **kw: Any) -> dict:
    base = {"id": id, "object": "payout", "amount": 100000, "currency": "usd", "status": "paid",
            "arrival_date": BASE_TS + 2 * 86400, "created": BASE_TS}
    base.update(kw)
    return base


def event(obj: dict, type: str | None = None, *, id: str = "evt_1", created: int = BASE_TS + 10) -> dict:
    return {"id": id, "object": "event", "type": type or f"{obj['object']}.updated", "created": created,
            "api_version": "2026-10-28.endive", "data": {"object": obj}, "livemode": False}

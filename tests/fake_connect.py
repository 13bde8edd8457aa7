"""Stripe Connect in the fake: destination charges, transfers and their reversals, application
fees and their refunds, and which balance transactions each automatic payout settled.

A destination charge of ``A`` with ``application_fee_amount`` ``F`` and
``transfer_data.destination`` gets a transfer of ``A - F`` to the connected account (a
``transfer`` balance transaction of ``-(A - F)``) and an application fee object of ``F``.
A refund of ``R`` with ``reverse_transfer`` and ``refund_application_fee`` refunds the
application fee by ``R * F / A`` (half-even) and reverses the transfer by the rest (a
``transfer_refund`` balance transaction, category ``transfer_reversal``); the refund that
completes the charge takes what is left of both. This is payops' stated reversal rule
(docs/schema.md), written here independently of payops so tests can catch it drifting.

Payouts made by :meth:`ConnectMixin.sweep_payout` settle every balance transaction of
their currency that is available and not yet paid out: ``GET /v1/balance_transactions
?payout=po_...`` lists them (with the payout's own), as Stripe does for automatic payouts.
"""

from __future__ import annotations

from typing import Any

PAYOUT_KINDS = ("payout", "payout_cancel", "payout_failure")


def _half_even_div(n: int, d: int) -> int:
    q, r = divmod(n, d)
    if 2 * r > d or (2 * r == d and q % 2):
        q += 1
    return q


class ConnectMixin:
    """Connect objects on a :class:`~fake_stripe.FakeStripe` (which provides the state methods)."""

    # provided by FakeStripe / LifecycleMixin
    _store: dict[str, dict[str, dict]]
    lock: Any
    new_id: Any
    _put: Any
    _balance_txn: Any
    _emit: Any
    now: Any

    # ------------------------------------------------------------------ charges
    def connect_charge(self, charge: dict, destination: str, app_fee: int, *, at: int) -> dict:
        """Make ``charge`` (succeeded) a destination charge: its transfer and application fee."""
        amount, cur = int(charge.get("amount_captured") or charge["amount"]), charge["currency"]
        with self.lock:
            tr_id, fee_id = self.new_id("tr"), self.new_id("fee")
            txn = self._balance_txn(amount=-(amount - app_fee), currency=cur, source=tr_id, type="transfer",
                                    reporting_category="transfer", created=at,
                                    description=f"Transfer to {destination}")
            transfer = {
                "id": tr_id, "object": "transfer", "amount": amount - app_fee, "amount_reversed": 0,
                "balance_transaction": txn["id"], "created": at, "currency": cur, "description": None,
                "destination": destination, "destination_payment": "py_" + tr_id[3:], "livemode": False,
                "metadata": {}, "reversals": {"object": "list", "data": [], "has_more": False,
                                              "url": f"/v1/transfers/{tr_id}/reversals"},
                "reversed": False, "source_transaction": charge["id"], "source_type": "card",
                "transfer_group": charge.get("transfer_group"),
            }
            fee = {
                "id": fee_id, "object": "application_fee", "account": destination, "amount": app_fee,
                "amount_refunded": 0, "application": "ca_tutorly", "balance_transaction": None,
                "charge": charge["id"], "created": at, "currency": cur, "fee_source": {"charge": charge["id"],
                                                                                     "type": "charge"},
                "livemode": False, "originating_transaction": None,
                "refunded": False, "refunds": {"object": "list", "data": [], "has_more": False,
                                               "url": f"/v1/application_fees/{fee_id}/refunds"},
            }
            charge.update({"application_fee": fee_id, "application_fee_amount": app_fee, "transfer": tr_id,
                           "transfer_data": {"amount": None, "destination": destination},
                           "on_behalf_of": None})
            self._put(transfer)
            self._put(fee)
            self._emit("transfer.created", transfer, at)
            self._emit("application_fee.created", fee, at)
        return transfer

    def connect_refund(self, charge: dict, refund: dict, *, at: int) -> None:
        """Reverse the tutor's part of ``refund`` and refund the platform's fee, by the rule above."""
        tr_id, fee_id = charge.get("transfer"), charge.get("application_fee")
        if not tr_id or not fee_id:
            return
        with self.lock:
            transfer, fee = self._store["transfer"][tr_id], self._store["application_fee"][fee_id]
            amount, r = int(charge.get("amount_captured") or charge["amount"]), int(refund["amount"])
            before = sum(int(x["amount"]) for x in fee["refunds"]["data"]) + transfer["amount_reversed"]
            if before + r >= amount:
                fee_back = fee["amount"] - fee["amount_refunded"]
            else:
                fee_back = min(fee["amount"] - fee["amount_refunded"], _half_even_div(r * fee["amount"], amount))
            back = r - fee_back
            cur = charge["currency"]
            if back > 0:
                trr_id = self.new_id("trr")
                txn = self._balance_txn(amount=back, currency=cur, source=trr_id, type="transfer_refund",
                                        reporting_category="transfer_reversal", created=at,
                                        description=f"Transfer reversal for {refund['id']}")
                reversal = {"id": trr_id, "object": "transfer_reversal", "amount": back,
                            "balance_transaction": txn["id"], "created": at, "currency": cur,
                            "destination_payment_refund": None, "metadata": {}, "source_refund": refund["id"],
                            "transfer": tr_id}
                transfer["reversals"]["data"].insert(0, reversal)
                transfer["amount_reversed"] += back
                transfer["reversed"] = transfer["amount_reversed"] >= transfer["amount"]
                refund["transfer_reversal"] = trr_id
                self._emit("transfer.reversed", transfer, at)
            if fee_back > 0:
                fr = {"id": self.new_id("fr"), "object": "fee_refund", "amount": fee_back,
                      "balance_transaction": None, "created": at, "currency": cur, "fee": fee_id, "metadata": {}}
                fee["refunds"]["data"].insert(0, fr)
                fee["amount_refunded"] += fee_back
                fee["refunded"] = fee["amount_refunded"] >= fee["amount"]
                self._emit("application_fee.refunded", fee, at)

    # ------------------------------------------------------------------ payouts
    def payout_txns(self, payout_id: str) -> list[str] | None:
        """The balance transactions an automatic payout settled (None: not an automatic payout)."""
        return getattr(self, "_payout_txns", {}).get(payout_id)

    def sweep_payout(self, currency: str, *, at: int, destination: str, arrival_days: int = 2) -> dict | None:
        """An automatic payout of every available, not yet paid out balance transaction of ``currency``."""
        with self.lock:
            settled: dict[str, str] = self.__dict__.setdefault("_settled", {})
            todo = [t for t in self._store["balance_transaction"].values()
                    if t["currency"] == currency and t["id"] not in settled and t["available_on"] <= at
                    and t["created"] <= at and t["type"] not in PAYOUT_KINDS]
            amount = sum(int(t["net"]) for t in todo)
            if amount <= 0:
                return None
            pid = self.new_id("po")
            txn = self._balance_txn(amount=-amount, currency=currency, source=pid, type="payout",
                                    reporting_category="payout", created=at, description="STRIPE PAYOUT")
            arrival = at + arrival_days * 86400
            paid = arrival <= self.now()
            payout = {
                "id": pid, "object": "payout", "amount": amount, "application_fee": None,
                "application_fee_amount": None, "arrival_date": arrival, "automatic": True,
                "balance_transaction": txn["id"], "created": at, "currency": currency,
                "description": "STRIPE PAYOUT", "destination": destination,
                "failure_balance_transaction": None, "failure_code": None, "failure_message": None,
                "livemode": False, "metadata": {}, "method": "standard", "original_payout": None,
                "payout_method": None, "reconciliation_status": "completed" if paid else "in_progress",
                "reversed_by": None, "source_type": "card", "statement_descriptor": None,
                "status": "paid" if paid else "in_transit",
                "trace_id": {"status": "supported" if paid else "pending", "value": None}, "type": "bank_account",
            }
            for t in todo:
                settled[t["id"]] = pid
            settled[txn["id"]] = pid
            self.__dict__.setdefault("_payout_txns", {})[pid] = [t["id"] for t in todo] + [txn["id"]]
            self._put(payout)
            self._emit("payout.created", payout, at)
            return payout

"""Everything a reviewer reads about one refund request before deciding it, on one connection.

The review app's detail pane shows a request with its verdict (can its amount still be
refunded?), the payment's breakdown and booking, the Stripe refunds already made, the
request's audit history and the customer's other requests and disputes. Each of these is a
library read of its own (:func:`payops.refunds.check`, :func:`payops.payments.breakdown`,
...); :func:`request_detail` runs them all on one short connection, because opening the
DuckDB file costs more than the reads themselves.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import duckdb
import pandas as pd

from payops import payments
from payops.periods import reader
from payops.refunds.eligibility import verdict as _verdict
from payops.refunds.model import RefundRequest, Verdict, utcnow
from payops.refunds.queue import customer_history
from payops.refunds.store import get, history

__all__ = ["RequestDetail", "request_detail"]

# A request whose own amount may still go to Stripe (approved, processed, or retried after a
# failure): its verdict is about that amount, not counting it as "another open request".
_AMOUNT_STILL_ASKED = ("PENDING", "APPROVED", "FAILED")
# The booking's keys in a payment's breakdown (see payops.payments.breakdown).
_BOOKING_KEYS = ("booking_id", "booking_status", "session_start", "tutor_id")


@dataclass(frozen=True)
class RequestDetail:
    """One refund request and what is known around it (see :func:`request_detail`).

    Attributes:
        request: the request as stored.
        verdict: whether the request's amount can be refunded now (while that amount may still
            go to Stripe it is not counted as "another open request"; otherwise the payment's
            state alone), or None when it names no payment.
        breakdown: the payment's money and booking (:func:`payops.payments.breakdown`), or None.
        stripe_refunds: the payment intent's Stripe refunds (:func:`payops.payments.refunds_of`),
            or None when the request names no payment intent.
        history: the request's audit rows, oldest first (:func:`payops.refunds.history`).
        customer: the customer's other requests and disputes
            (:func:`payops.refunds.customer_history`), or None without a customer.
    """

    request: RefundRequest
    verdict: Verdict | None
    breakdown: dict[str, Any] | None
    stripe_refunds: pd.DataFrame | None
    history: pd.DataFrame
    customer: dict[str, pd.DataFrame] | None

    @property
    def live(self) -> bool:
        """True for a live-mode payment (its Stripe dashboard links lead to live data)."""
        if self.verdict is not None:
            return bool((self.verdict.payment or {}).get("livemode"))
        return bool(self.breakdown and self.breakdown.get("livemode"))

    @property
    def booking(self) -> dict[str, Any] | None:
        """The payment's booking (booking_id, booking_status, session_start, tutor_id), or None."""
        if not self.breakdown or not self.breakdown.get("booking_id"):
            return None
        return {k: self.breakdown.get(k) for k in _BOOKING_KEYS}


def request_detail(request_id: int, *, db=None, now: datetime | None = None,
                   con: duckdb.DuckDBPyConnection | None = None) -> RequestDetail:
    """One request with its verdict, payment, refunds, history and customer, from ONE connection.

    Args:
        request_id: the refund request.
        db: the database file (default the ``PAYOPS_DB`` setting).
        now: the moment the refund window is measured against (default now).
        con: an open connection to read on; default a short one of its own, closed before
            returning.

    Raises:
        NotFound: no such request, or its payment is not in the database.
    """
    rid = int(request_id)
    with reader(db, con) as c:
        req = get(rid, con=c)
        pi, pay_id = req.payment_intent, req.payment_id
        breakdown = payments.breakdown(pay_id, con=c) if pay_id else None
        check: Verdict | None = None
        if pay_id and req.status in _AMOUNT_STILL_ASKED:
            check = _verdict(c, pay_id, int(req.amount), exclude=rid, now=now or utcnow())
        elif pay_id:
            check = _verdict(c, pay_id, now=now or utcnow())
        return RequestDetail(
            request=req, verdict=check, breakdown=breakdown,
            stripe_refunds=payments.refunds_of(pi, con=c) if pi else None,
            history=history(rid, con=c),
            customer=customer_history(req.customer, exclude=rid, con=c) if req.customer else None,
        )

"""The Stripe streams payops keeps: one list, imported by every module that names them.

A *stream* is one Stripe list synced into the table of the same name (``charges`` ->
``/v1/charges`` -> table ``charges``, objects with ``"object": "charge"``). Ingest, sync,
status, the lake, maintenance and the demo all take the names from here.
"""

from __future__ import annotations

from collections.abc import Iterable

from payops.errors import InvalidInput

__all__ = ["STREAM_OBJECTS", "STREAMS", "OBJECT_STREAMS", "EVENT_TYPES", "MAX_TYPES", "select_streams"]

# stream (= table = list path under /v1/) -> the Stripe object type it holds. Parents come
# before children (a charge's payment intent, a refund's charge and reversed transfer, a
# balance transaction's source): loaders that need them first (devstripe) take this order,
# and so do the summaries and the documentation.
STREAM_OBJECTS: dict[str, str] = {
    "customers": "customer",
    "payment_intents": "payment_intent",
    "charges": "charge",
    "transfers": "transfer",
    "application_fees": "application_fee",
    "refunds": "refund",
    "balance_transactions": "balance_transaction",
    "disputes": "dispute",
    "payouts": "payout",
}
STREAMS: tuple[str, ...] = tuple(STREAM_OBJECTS)
OBJECT_STREAMS: dict[str, str] = {otype: stream for stream, otype in STREAM_OBJECTS.items()}

# Event types whose data.object belongs to each stream (balance transactions have none).
EVENT_TYPES: dict[str, tuple[str, ...]] = {
    "customers": ("customer.created", "customer.updated", "customer.deleted"),
    "payment_intents": tuple(f"payment_intent.{t}" for t in (
        "created", "succeeded", "payment_failed", "canceled", "processing", "requires_action",
        "amount_capturable_updated", "partially_funded")),
    "charges": tuple(f"charge.{t}" for t in (
        "succeeded", "failed", "refunded", "captured", "updated", "expired", "pending")),
    "refunds": ("refund.created", "refund.updated", "refund.failed", "charge.refund.updated"),
    "balance_transactions": (),
    "disputes": tuple(f"charge.dispute.{t}" for t in (
        "created", "updated", "closed", "funds_withdrawn", "funds_reinstated")),
    "payouts": tuple(f"payout.{t}" for t in (
        "created", "updated", "paid", "failed", "canceled", "reconciliation_completed")),
    # a reversal arrives inside its transfer (transfer.reversed), a fee refund inside its fee
    "transfers": ("transfer.created", "transfer.updated", "transfer.reversed"),
    "application_fees": ("application_fee.created", "application_fee.refunded", "application_fee.refund.updated"),
}
MAX_TYPES = 20  # Stripe accepts at most 20 types[] per events request


def select_streams(streams: Iterable[str] | str | None) -> list[str]:
    """The streams a user asked for (a list or ``"a,b"``), checked, without repeats.

    Args:
        streams: stream names; None means every stream.

    Raises:
        InvalidInput: an unknown stream, or none at all.
    """
    if streams is None:
        return list(STREAMS)
    if isinstance(streams, str):
        streams = [s for s in streams.split(",") if s.strip()]
    out: list[str] = []
    for s in streams:
        s = s.strip()
        if s not in STREAM_OBJECTS:
            raise InvalidInput(f"unknown stream {s!r} (streams: {', '.join(STREAMS)})")
        if s not in out:
            out.append(s)
    if not out:
        raise InvalidInput(f"no stream given (streams: {', '.join(STREAMS)})")
    return out

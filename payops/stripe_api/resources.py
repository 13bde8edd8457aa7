"""What payops asks Stripe for: lists, probes, single objects and refunds.

:class:`StripeAPI` holds a :class:`~payops.stripe_api.transport.Transport` and knows the
resources: which path lists which object type, how a list is paged (always through
:class:`~payops.stripe_api.pager.Pager`), how a refund is created. Objects come back as
plain dicts (stripe-python 16's ``StripeObject`` is not a dict).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from payops.config import Settings, get_settings
from payops.errors import StripeAuthError, StripeError, StripeUnavailable
from payops.streams import OBJECT_STREAMS
from payops.stripe_api.pager import PAGE_LIMIT, Pager, window_params
from payops.stripe_api.transport import Transport, refusal

__all__ = ["StripeAPI", "get_client", "to_dict", "RESOURCES"]

# object type -> its list path under /v1/ (a stream's path is its name; events are extra)
RESOURCES: dict[str, str] = {**OBJECT_STREAMS, "event": "events"}


def to_dict(obj: Any) -> Any:
    """A StripeObject (or list of them) as plain dicts, recursively."""
    if hasattr(obj, "to_dict"):
        return obj.to_dict()
    if isinstance(obj, list):
        return [to_dict(o) for o in obj]
    return obj


class StripeAPI:
    """The resources payops uses, over one rate-limited :class:`Transport`.

    Build it with :func:`get_client`. ``stats`` counts requests, 429s and retries.
    """

    def __init__(self, settings: Settings | None = None, *, transport: Transport | None = None,
                 **transport_options: Any):
        self.transport = transport or Transport(settings or get_settings(), **transport_options)

    def __repr__(self) -> str:
        return f"StripeAPI({self.transport!r})"

    @property
    def stats(self) -> dict[str, int]:
        return self.transport.stats

    @property
    def rate(self) -> float:
        return self.transport.rate

    @property
    def livemode(self) -> bool:
        return self.transport.livemode

    def call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """An SDK call through the transport (limiter, retries, errors): see :meth:`Transport.call`."""
        return self.transport.call(fn, *args, **kwargs)

    def check_key(self) -> None:
        """One cheap request so a rejected key fails up front, with one line."""
        self.call(self.transport.raw.v1.customers.list, {"limit": 1})

    def retrieve(self, object_type: str, object_id: str, **params: Any) -> dict:
        """One object as a dict, e.g. ``retrieve("charge", "ch_123")``."""
        service = getattr(self.transport.raw.v1, RESOURCES[object_type])
        return to_dict(self.call(service.retrieve, object_id, params or None))

    # --- lists ------------------------------------------------------------------------
    def list_page(self, object_type: str, params: dict[str, Any], *,
                  server_attempts: int | None = None) -> dict:
        """One page of a list: ``{"data": [dict...], "has_more": bool}``."""
        page = self.transport.request_json("get", f"/v1/{RESOURCES[object_type]}", params,
                                           server_attempts=server_attempts)
        return {"data": page.get("data") or [], "has_more": bool(page.get("has_more"))}

    def pager(self, object_type: str, params: dict[str, Any] | None = None, *,
              cursor: str | None = None) -> Pager:
        """A :class:`Pager` over a list (iterate it, or step it with ``next_page()``)."""
        return Pager(lambda p: self.list_page(object_type, p), params, cursor=cursor)

    def list_all(self, object_type: str, params: dict[str, Any] | None = None) -> Iterator[dict]:
        """Every object of a list (no order assumed; guarded against repeated pages)."""
        return iter(self.pager(object_type, params))

    def list_window(self, object_type: str, start: int | None = None, end: int | None = None,
                    params: dict[str, Any] | None = None) -> Iterator[dict]:
        """Every object with ``start <= created < end`` (either bound optional)."""
        return self.list_all(object_type, {**(params or {}), **window_params(start, end)})

    def probe_list(self, object_type: str, params: dict[str, Any] | None = None) -> tuple[str, dict | None, str]:
        """Whether this server serves a list with these filters, learnt from one request.

        The first request asks for a full page (``limit`` 100 unless ``params`` says
        otherwise), so a caller can use it as the list's first page.

        Returns:
            ``(verdict, page, message)``: ``("ok", page, "")`` when the filtered request
            worked; ``("refused", None, msg)`` when it was refused (400, 404 or 5xx: servers
            like localstripe refuse ``created`` or ``types[]``) but the unfiltered list
            works; ``("missing", None, msg)`` when the endpoint itself does not exist.

        Raises:
            StripeAuthError: the key was rejected.
        """
        try:
            return "ok", self.list_page(object_type, {"limit": PAGE_LIMIT, **(params or {})},
                                        server_attempts=2), ""
        except (StripeError, StripeUnavailable) as exc:
            if isinstance(exc, StripeAuthError):
                raise
            reason = refusal(exc)
        try:
            self.list_page(object_type, {"limit": 1}, server_attempts=2)
        except (StripeError, StripeUnavailable) as exc:
            if isinstance(exc, StripeAuthError):
                raise
            return "missing", None, f"{refusal(exc)}, even without filters"
        return "refused", None, reason

    # --- refunds ----------------------------------------------------------------------
    def create_refund(self, *, idempotency_key: str, charge: str | None = None, payment_intent: str | None = None,
                      amount: int | None = None, reason: str | None = None,
                      metadata: dict[str, str] | None = None, reverse_transfer: bool = False) -> dict:
        """Create a refund with an idempotency key (retries send the same key).

        ``reverse_transfer``: a destination charge's refund also reverses the tutor's transfer and
        refunds the application fee, in proportion (the reversal rule of :mod:`payops.ledger`).
        """
        params: dict[str, Any] = {}
        if reverse_transfer:
            params["reverse_transfer"] = True
            params["refund_application_fee"] = True
        if charge:
            params["charge"] = charge
        if payment_intent and not charge:
            params["payment_intent"] = payment_intent
        if amount is not None:
            params["amount"] = int(amount)
        if reason:
            params["reason"] = reason
        if metadata:
            params["metadata"] = {k: str(v) for k, v in metadata.items()}
        return to_dict(self.call(self.transport.raw.v1.refunds.create, params,
                                 {"idempotency_key": idempotency_key}))

    def list_refunds(self, *, charge: str | None = None, payment_intent: str | None = None) -> list[dict]:
        """Every refund of a charge (or payment intent)."""
        params: dict[str, Any] = {}
        if charge:
            params["charge"] = charge
        elif payment_intent:
            params["payment_intent"] = payment_intent
        return list(self.list_all("refund", params))


def get_client(settings: Settings | None = None, **kwargs: Any) -> StripeAPI:
    """A :class:`StripeAPI` from the settings (``STRIPE_API_KEY``, ``STRIPE_API_BASE``, ``PAYOPS_STRIPE_RPS``).

    Keyword arguments (``max_attempts``, ``backoff``, ``timeout``) go to :class:`Transport`.
    """
    return StripeAPI(settings, **kwargs)

"""The Stripe client: pinned API version, a shared rate limiter, retries, errors translated.

Everything payops sends to Stripe goes through :class:`StripeAPI.call`, which

- waits for a token from one process-wide token bucket (20 requests/s for live keys,
  10 for test keys, ``PAYOPS_STRIPE_RPS`` overrides), shared by every thread;
- retries a 429, a connection error or a 5xx with exponential backoff and jitter (a 429
  is never counted as success), up to a bounded number of attempts;
- turns the SDK's exceptions into :mod:`payops.errors` with one-line messages that never
  contain the key.

Objects come back as plain dicts (stripe-python 16's ``StripeObject`` is not a dict).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import stripe

from payops.config import Settings, get_settings
from payops.errors import ConfigError, RateLimited, StripeAuthError, StripeError, StripeUnavailable

__all__ = ["PINNED_API_VERSION", "StripeAPI", "TokenBucket", "get_client", "to_dict", "RESOURCES",
           "window_params"]

PINNED_API_VERSION: str = stripe.api_version

# object type -> the StripeClient.v1 service that lists / retrieves it
RESOURCES = {
    "customer": "customers",
    "payment_intent": "payment_intents",
    "charge": "charges",
    "refund": "refunds",
    "balance_transaction": "balance_transactions",
    "dispute": "disputes",
    "payout": "payouts",
    "event": "events",
}


class TokenBucket:
    """A thread-safe token bucket: ``rate`` tokens per second, bursts up to ``capacity``."""

    def __init__(self, rate: float, capacity: float | None = None):
        if rate <= 0:
            raise ConfigError(f"the Stripe request rate must be positive, got {rate}")
        self.rate = float(rate)
        self.capacity = float(capacity if capacity is not None else max(1.0, rate))
        self._tokens = self.capacity
        self._last = time.monotonic()
        self._lock = threading.Lock()

    def acquire(self) -> float:
        """Take one token, sleeping until one is available; returns the seconds waited."""
        waited = 0.0
        while True:
            with self._lock:
                now = time.monotonic()
                self._tokens = min(self.capacity, self._tokens + (now - self._last) * self.rate)
                self._last = now
                if self._tokens >= 1:
                    self._tokens -= 1
                    return waited
                need = (1 - self._tokens) / self.rate
            time.sleep(need)
            waited += need


_buckets: dict[float, TokenBucket] = {}
_buckets_lock = threading.Lock()


def shared_bucket(rate: float) -> TokenBucket:
    """The process-wide bucket for ``rate`` (every client of this process shares it)."""
    with _buckets_lock:
        if rate not in _buckets:
            _buckets[rate] = TokenBucket(rate)
        return _buckets[rate]


def to_dict(obj: Any) -> Any:
    """A StripeObject (or list of them) as plain dicts, recursively."""
    if hasattr(obj, "to_dict"):
        return obj.to_dict()
    if isinstance(obj, list):
        return [to_dict(o) for o in obj]
    return obj


def window_params(start: int | None, end: int | None) -> dict[str, Any]:
    """``{"created": {"gte": start, "lt": end}}`` for the bounds given (none: ``{}``)."""
    created: dict[str, int] = {}
    if start is not None:
        created["gte"] = int(start)
    if end is not None:
        created["lt"] = int(end)
    return {"created": created} if created else {}


def _message(exc: stripe.StripeError) -> str:
    msg = getattr(exc, "user_message", None) or getattr(exc, "_message", None) or str(exc)
    return str(msg).splitlines()[0] if msg else exc.__class__.__name__


class StripeAPI:
    """A configured Stripe client with rate limiting, retries and error translation.

    Build it with :func:`get_client`. ``stats`` counts requests, 429s and retries.
    """

    def __init__(self, settings: Settings, *, max_attempts: int = 8, backoff: float = 0.25,
                 timeout: float | None = None):
        key = settings.stripe_api_key
        if not key:
            raise ConfigError("STRIPE_API_KEY is not set (looked in the environment); "
                              "export it, e.g. STRIPE_API_KEY=sk_test_...")
        self._key = key
        live = "_live_" in key.reveal()
        self.livemode = live
        self.rate = settings.stripe_rps or (20.0 if live else 10.0)
        self.bucket = shared_bucket(self.rate)
        self.max_attempts = max_attempts
        self.backoff = backoff
        kwargs: dict[str, Any] = {"stripe_version": PINNED_API_VERSION, "max_network_retries": 0}
        if settings.stripe_api_base:
            base = settings.stripe_api_base.rstrip("/")
            kwargs["base_addresses"] = {"api": base}
        if timeout is not None:
            kwargs["http_client"] = stripe.new_default_http_client(timeout=timeout)
        # Retries are ours (below), so the SDK's own are off: one place decides.
        self.raw = stripe.StripeClient(key.reveal(), **kwargs)
        self.stats = {"requests": 0, "rate_limited": 0, "retries": 0, "errors": 0}
        self._stats_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"StripeAPI(key={self._key!r}, rate={self.rate:g}/s)"

    def _count(self, name: str) -> None:
        with self._stats_lock:
            self.stats[name] += 1

    def _sleep(self, attempt: int, retry_after: float | None = None) -> None:
        delay = self.backoff * (2 ** attempt)
        delay = min(delay, 8.0) * (0.5 + random.random())  # full jitter around the step
        if retry_after:
            delay = max(delay, retry_after)
        time.sleep(delay)

    def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call an SDK method under the limiter, retrying what is worth retrying.

        Raises:
            StripeAuthError: the key was rejected (the message shows only its last 4 characters).
            StripeError: Stripe refused the request (``.code`` holds Stripe's error code).
            RateLimited: Stripe kept answering 429 after every retry.
            StripeUnavailable: network or server errors after every retry.
        """
        return self._call(fn, args, kwargs)

    def _call(self, fn: Callable[..., Any], args: tuple, kwargs: dict, *,
              server_attempts: int | None = None) -> Any:
        """:meth:`call`, with 5xx/network retries capped at ``server_attempts`` (429s keep
        the full budget): a probe must learn quickly that a server refuses a filter."""
        last: Exception | None = None
        server_failures = 0
        for attempt in range(self.max_attempts):
            self.bucket.acquire()
            self._count("requests")
            try:
                return fn(*args, **kwargs)
            except stripe.AuthenticationError:
                raise StripeAuthError(
                    f"Stripe rejected the API key ending in ...{self._key.last4}"
                ) from None
            except stripe.PermissionError as exc:
                raise StripeAuthError(f"the API key ending in ...{self._key.last4} may not do this: {_message(exc)}") from None
            except stripe.RateLimitError as exc:
                self._count("rate_limited")
                last = exc
            except stripe.APIConnectionError as exc:
                last = exc
                server_failures += 1
            except stripe.APIError as exc:
                status = getattr(exc, "http_status", None) or 500
                if status < 500:
                    raise self._terminal(exc) from None
                last = exc
                server_failures += 1
                if server_attempts is not None and server_failures >= server_attempts:
                    raise self._terminal(exc) from None
            except (stripe.InvalidRequestError, stripe.CardError, stripe.IdempotencyError) as exc:
                raise self._terminal(exc) from None
            except stripe.StripeError as exc:
                raise self._terminal(exc) from None
            self._count("retries")
            self._sleep(attempt)
        self._count("errors")
        if isinstance(last, stripe.RateLimitError):
            raise RateLimited(f"Stripe kept answering 429 (rate limited) after {self.max_attempts} attempts")
        raise StripeUnavailable(f"Stripe could not be reached after {self.max_attempts} attempts: "
                                f"{_message(last) if isinstance(last, stripe.StripeError) else last}")

    def _terminal(self, exc: stripe.StripeError) -> StripeError:
        err = StripeError(_message(exc))
        err.code = getattr(exc, "code", None)  # type: ignore[attr-defined]
        err.http_status = getattr(exc, "http_status", None)  # type: ignore[attr-defined]
        return err

    # --- helpers ----------------------------------------------------------------------
    def service(self, object_type: str):
        return getattr(self.raw.v1, RESOURCES[object_type])

    def check_key(self) -> None:
        """One cheap request so a rejected key fails up front, with one line."""
        self.call(self.raw.v1.customers.list, {"limit": 1})

    def retrieve(self, object_type: str, object_id: str, **params: Any) -> dict:
        """One object as a dict, e.g. ``retrieve("charge", "ch_123")``."""
        return to_dict(self.call(self.service(object_type).retrieve, object_id, params or None))

    def request_json(self, method: str, path: str, params: dict[str, Any] | None = None, *,
                     server_attempts: int | None = None) -> dict:
        """One request through the SDK's raw path, the body parsed with orjson.

        Pages of 100 objects are parsed ~10x faster this way than into ``StripeObject``s
        (which costs ~36 ms a page and holds the GIL), so many worker threads do not queue
        behind the parser. Same limiter, retries and error translation as :meth:`call`.
        """
        return self._call(self._raw_json, (method, path, dict(params or {})), {},
                          server_attempts=server_attempts)

    def _raw_json(self, method: str, path: str, params: dict[str, Any]) -> dict:
        requestor = getattr(self.raw, "_requestor", None)
        if requestor is None or not hasattr(requestor, "request_raw"):  # pragma: no cover
            return orjson.loads(self.raw.raw_request(method, path, **params).body)
        rbody, rcode, rheaders = requestor.request_raw(
            method, path, params=params, options={}, base_address="api", api_mode="V1",
            usage=["raw_request"])
        if 200 <= rcode < 300:
            return orjson.loads(rbody)
        # Errors go through the SDK so they become the usual stripe.* exceptions.
        requestor._interpret_response(rbody, rcode, rheaders, "V1")
        raise stripe.APIError(f"unexpected HTTP status {rcode}", http_status=rcode)  # pragma: no cover

    def list_page(self, object_type: str, params: dict[str, Any], *,
                  server_attempts: int | None = None) -> dict:
        """One page of a list: ``{"data": [dict...], "has_more": bool}``."""
        page = self.request_json("get", f"/v1/{RESOURCES[object_type]}", params,
                                 server_attempts=server_attempts)
        return {"data": page.get("data") or [], "has_more": bool(page.get("has_more"))}

    def list_all(self, object_type: str, params: dict[str, Any] | None = None) -> Iterator[dict]:
        """Every object of a list, paging with ``starting_after`` (no order assumed).

        Stops when a page brings no id not seen before: some servers answer an unknown
        ``starting_after`` with the first page again, which would otherwise page forever.
        """
        params = {"limit": 100, **(params or {})}
        seen: set[str] = set()
        while True:
            page = self.list_page(object_type, params)
            data = [o for o in page["data"] if o.get("id") not in seen]
            yield from data
            if not page["has_more"] or not data:
                return
            seen.update(o["id"] for o in data)
            params = {**params, "starting_after": page["data"][-1]["id"]}

    def list_window(self, object_type: str, start: int | None = None, end: int | None = None,
                    params: dict[str, Any] | None = None) -> Iterator[dict]:
        """Every object with ``start <= created < end`` (either bound optional), paging with
        ``starting_after``; no order assumed."""
        return self.list_all(object_type, {**(params or {}), **window_params(start, end)})

    def list_window_page(self, object_type: str, start: int | None, end: int | None,
                         starting_after: str | None = None, *, limit: int = 100,
                         params: dict[str, Any] | None = None,
                         server_attempts: int | None = None) -> dict:
        """One page of the ``[start, end)`` created window after ``starting_after``."""
        p: dict[str, Any] = {"limit": limit, **(params or {}), **window_params(start, end)}
        if starting_after:
            p["starting_after"] = starting_after
        return self.list_page(object_type, p, server_attempts=server_attempts)

    def probe_list(self, object_type: str, params: dict[str, Any] | None = None) -> tuple[str, dict | None, str]:
        """Whether this server serves a list with these filters, learnt from one request.

        Returns ``(verdict, page, message)``: ``("ok", page, "")`` when the filtered request
        worked; ``("refused", None, msg)`` when the filtered request was refused (400, 404 or
        5xx: servers like localstripe refuse ``created`` or ``types[]``) but the unfiltered
        list works; ``("missing", None, msg)`` when the endpoint itself does not exist.
        A rejected key still raises :class:`StripeAuthError`.
        """
        try:
            return "ok", self.list_page(object_type, {"limit": 100, **(params or {})},
                                        server_attempts=2), ""
        except (StripeError, StripeUnavailable) as exc:
            if isinstance(exc, StripeAuthError):
                raise
            refusal = _refusal(exc)
        try:
            self.list_page(object_type, {"limit": 1}, server_attempts=2)
        except (StripeError, StripeUnavailable) as exc:
            if isinstance(exc, StripeAuthError):
                raise
            return "missing", None, f"{_refusal(exc)}, even without filters"
        return "refused", None, refusal

    def create_refund(self, *, idempotency_key: str, charge: str | None = None, payment_intent: str | None = None,
                      amount: int | None = None, reason: str | None = None,
                      metadata: dict[str, str] | None = None) -> dict:
        """Create a refund with an idempotency key (retries send the same key)."""
        params: dict[str, Any] = {}
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
        return to_dict(self.call(self.raw.v1.refunds.create, params,
                                 {"idempotency_key": idempotency_key}))

    def list_refunds(self, *, charge: str | None = None, payment_intent: str | None = None) -> list[dict]:
        """Every refund of a charge (or payment intent)."""
        params: dict[str, Any] = {}
        if charge:
            params["charge"] = charge
        elif payment_intent:
            params["payment_intent"] = payment_intent
        return list(self.list_all("refund", params))


def _refusal(exc: Exception) -> str:
    """A short reason: the server's message, or its HTTP status when the body was not JSON."""
    status = getattr(exc, "http_status", None)
    msg = getattr(exc, "message", str(exc))
    if msg.startswith("Invalid response body") or msg.startswith("Stripe could not be reached"):
        return f"HTTP {status}" if status else "no usable answer"
    return f"HTTP {status}: {msg}" if status else msg


def get_client(settings: Settings | None = None, **kwargs: Any) -> StripeAPI:
    """A :class:`StripeAPI` from the settings (``STRIPE_API_KEY``, ``STRIPE_API_BASE``, ``PAYOPS_STRIPE_RPS``)."""
    return StripeAPI(settings or get_settings(), **kwargs)

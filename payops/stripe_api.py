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

import stripe

from payops.config import Settings, get_settings
from payops.errors import (ConfigError, RateLimited, StripeAuthError, StripeError,
                           StripeUnavailable)

__all__ = ["PINNED_API_VERSION", "StripeAPI", "TokenBucket", "get_client", "to_dict", "RESOURCES"]

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
        last: Exception | None = None
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
            except (stripe.APIConnectionError,) as exc:
                last = exc
            except stripe.APIError as exc:
                status = getattr(exc, "http_status", None) or 500
                if status < 500:
                    raise self._terminal(exc) from None
                last = exc
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

    def list_page(self, object_type: str, params: dict[str, Any]) -> dict:
        """One page of a list: ``{"data": [dict...], "has_more": bool}``."""
        page = self.call(self.service(object_type).list, params)
        return {"data": [to_dict(o) for o in page.data], "has_more": bool(page.has_more)}

    def list_all(self, object_type: str, params: dict[str, Any] | None = None) -> Iterator[dict]:
        """Every object of a list, paging with ``starting_after`` (no order assumed)."""
        params = {"limit": 100, **(params or {})}
        seen_last = None
        while True:
            page = self.list_page(object_type, params)
            data = page["data"]
            yield from data
            if not page["has_more"] or not data or data[-1]["id"] == seen_last:
                return
            seen_last = data[-1]["id"]
            params = {**params, "starting_after": seen_last}

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


def get_client(settings: Settings | None = None, **kwargs: Any) -> StripeAPI:
    """A :class:`StripeAPI` from the settings (``STRIPE_API_KEY``, ``STRIPE_API_BASE``, ``PAYOPS_STRIPE_RPS``)."""
    return StripeAPI(settings or get_settings(), **kwargs)

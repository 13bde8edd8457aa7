"""The transport to Stripe: one pinned client, the shared rate limiter, retries, errors.

Every request payops sends goes through :meth:`Transport.call` (SDK methods) or
:meth:`Transport.request_json` (raw GETs parsed with orjson), which

- waits for a token from one process-wide token bucket (20 requests/s for live keys,
  10 for test keys, ``PAYOPS_STRIPE_RPS`` overrides), shared by every thread;
- retries a 429, a connection error or a 5xx with exponential backoff and jitter (a 429
  is never counted as success), up to a bounded number of attempts;
- turns the SDK's exceptions into :mod:`payops.errors` with one-line messages that never
  contain the key.

What to ask for (lists, refunds, ...) is :mod:`payops.stripe_api.resources`' job.
"""

from __future__ import annotations

import random
import re
import threading
import time
from collections.abc import Callable
from typing import Any

import orjson
import stripe

from payops.config import Settings
from payops.errors import ConfigError, RateLimited, StripeAuthError, StripeError, StripeUnavailable
from payops.text import plural

__all__ = ["PINNED_API_VERSION", "Transport", "TokenBucket", "shared_bucket", "refusal"]

PINNED_API_VERSION: str = stripe.api_version


class TokenBucket:
    """A thread-safe token bucket: ``rate`` tokens per second, bursts up to ``capacity``.

    Tokens accrue from the clock, so a thread that wakes late loses no budget: the grant
    rate stays ``rate`` however many threads wait.
    """

    def __init__(self, rate: float, capacity: float | None = None):
        if rate <= 0:
            raise ConfigError(f"the Stripe request rate must be positive, got {rate}")
        self.rate = float(rate)
        self.capacity = float(capacity if capacity is not None else max(1.0, rate))
        self._tokens = self.capacity
        self._last = time.monotonic()
        self._lock = threading.Lock()

    def acquire(self) -> float:
        """Take one token, sleeping until one is available; returns the seconds slept."""
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


def _message(exc: stripe.StripeError) -> str:
    msg = getattr(exc, "user_message", None) or getattr(exc, "_message", None) or str(exc)
    return str(msg).splitlines()[0] if msg else exc.__class__.__name__


_SECRET = re.compile(r"\b(sk|rk|pk|whsec)_[A-Za-z0-9_]+|Bearer\s+\S+")


def cause_chain(exc: BaseException, limit: int = 6) -> str:
    """Every cause of ``exc`` on one line, outermost first, secrets masked.

    Stripe's connection error says only "Unexpected error communicating with Stripe" on its
    first line; what went wrong (refused, DNS, TLS, timeout) is further down and in its causes.
    """
    parts: list[str] = []
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen and len(parts) < limit:
        seen.add(id(cur))
        body = " ".join(str(cur).split())
        if isinstance(cur, stripe.APIConnectionError):
            found = re.search(r"\(Network error: (.*)\)\s*$", body)
            text = found.group(1) if found else ""
        else:
            text = f"{type(cur).__name__}: {body}" if body else type(cur).__name__
        # a cause whose words an outer message already quotes adds nothing
        if text and not any((body or text) in p for p in parts):
            parts.append(text[:400])
        cur = cur.__cause__ or (None if cur.__suppress_context__ else cur.__context__)
    return _SECRET.sub("[redacted]", " <- ".join(parts)) or type(exc).__name__


def refusal(exc: Exception) -> str:
    """A short reason: the server's message, or its HTTP status when the body was not JSON."""
    status = getattr(exc, "http_status", None)
    msg = getattr(exc, "message", str(exc))
    if msg.startswith("Invalid response body") or msg.startswith("Stripe could not be reached"):
        return f"HTTP {status}" if status else "no usable answer"
    return f"HTTP {status}: {msg}" if status else msg


class Transport:
    """A configured Stripe client with rate limiting, retries and error translation.

    ``stats`` counts requests, 429s, retries and requests that failed for good.
    """

    def __init__(self, settings: Settings, *, max_attempts: int = 8, backoff: float = 0.25,
                 timeout: float | None = None):
        key = settings.stripe_api_key
        if not key:
            raise ConfigError("STRIPE_API_KEY is not set (looked in the environment); "
                              "export it, e.g. STRIPE_API_KEY=sk_test_...")
        self.key = key
        self.livemode = "_live_" in key.reveal()
        self.rate = settings.stripe_rps or (20.0 if self.livemode else 10.0)
        self.bucket = shared_bucket(self.rate)
        self.max_attempts = max_attempts
        self.backoff = backoff
        kwargs: dict[str, Any] = {"stripe_version": PINNED_API_VERSION, "max_network_retries": 0}
        if settings.stripe_api_base:
            kwargs["base_addresses"] = {"api": settings.stripe_api_base.rstrip("/")}
        if timeout is not None:
            kwargs["http_client"] = stripe.new_default_http_client(timeout=timeout)
        # Retries are ours (below), so the SDK's own are off: one place decides.
        self.raw = stripe.StripeClient(key.reveal(), **kwargs)
        self.stats = {"requests": 0, "rate_limited": 0, "retries": 0, "errors": 0}
        self._stats_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Transport(key={self.key!r}, rate={self.rate:g}/s)"

    def _count(self, name: str) -> None:
        with self._stats_lock:
            self.stats[name] += 1

    def _sleep(self, attempt: int) -> None:
        delay = min(self.backoff * (2 ** attempt), 8.0)
        time.sleep(delay * (0.5 + random.random()))  # jitter around the step

    def call(self, fn: Callable[..., Any], *args: Any, server_attempts: int | None = None,
             **kwargs: Any) -> Any:
        """Call an SDK method under the limiter, retrying what is worth retrying.

        Args:
            fn: the SDK method (e.g. ``transport.raw.v1.refunds.create``).
            server_attempts: cap on 5xx/network attempts (429s keep the full budget): a
                probe must learn quickly that a server refuses a filter.

        Raises:
            StripeAuthError: the key was rejected (the message shows only its last 4 characters).
            StripeError: Stripe refused the request (``.code`` holds Stripe's error code).
            RateLimited: Stripe kept answering 429 after every retry.
            StripeUnavailable: network or server errors after every retry.
        """
        last: Exception | None = None
        server_failures = 0  # 5xx only: a connection error keeps the full budget
        for attempt in range(self.max_attempts):
            self.bucket.acquire()
            self._count("requests")
            try:
                return fn(*args, **kwargs)
            except stripe.RateLimitError as exc:
                self._count("rate_limited")
                last = exc
            except stripe.APIConnectionError as exc:
                last = exc
            except stripe.APIError as exc:
                if (getattr(exc, "http_status", None) or 500) < 500:
                    raise self.translate(exc) from None
                last = exc
                server_failures += 1
                if server_attempts is not None and server_failures >= server_attempts:
                    raise self.translate(exc) from None
            except stripe.StripeError as exc:
                raise self.translate(exc) from None
            self._count("retries")
            self._sleep(attempt)
        self._count("errors")
        if isinstance(last, stripe.RateLimitError):
            raise RateLimited(f"Stripe kept answering 429 (rate limited) after {plural(self.max_attempts, 'attempt')}")
        why = cause_chain(last) if isinstance(last, stripe.APIConnectionError) else (
            _message(last) if isinstance(last, stripe.StripeError) else str(last))
        raise StripeUnavailable(f"Stripe could not be reached after {plural(self.max_attempts, 'attempt')}: {why}")

    def translate(self, exc: stripe.StripeError) -> StripeError:
        """The :mod:`payops.errors` exception for an SDK exception that is not retried."""
        if isinstance(exc, stripe.AuthenticationError):
            return StripeAuthError(f"Stripe rejected the API key ending in ...{self.key.last4}")
        if isinstance(exc, stripe.PermissionError):
            return StripeAuthError(
                f"the API key ending in ...{self.key.last4} may not do this: {_message(exc)}")
        err = StripeError(_message(exc))
        # payops.errors.StripeError declares no fields: these two ride along for callers
        # that branch on Stripe's code (e.g. resource_missing) and for probe messages
        err.code = getattr(exc, "code", None)  # type: ignore[attr-defined]
        err.http_status = getattr(exc, "http_status", None)  # type: ignore[attr-defined]
        return err

    def request_json(self, method: str, path: str, params: dict[str, Any] | None = None, *,
                     server_attempts: int | None = None) -> dict:
        """One request through the SDK's raw path, the body parsed with orjson.

        Pages of 100 objects are parsed ~10x faster this way than into ``StripeObject``s
        (which costs ~36 ms a page and holds the GIL), so many worker threads do not queue
        behind the parser. Same limiter, retries and error translation as :meth:`call`.
        """
        return self.call(self._raw_json, method, path, dict(params or {}),
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

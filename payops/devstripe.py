"""A local Stripe stand-in for the demo: ``make demo-stripe`` (``python -m payops.devstripe``).

It serves the project's fake Stripe (tests/fake_stripe.py, the server the tests use) on
127.0.0.1, loaded with every Stripe object of a payops database (the ``raw`` column of its
Stripe tables, e.g. the demo's data/demo.duckdb), so ``payops sync`` and ``payops refunds
process`` work with no key and no internet. Every event the stand-in creates after loading
(a refund: ``refund.created``, ``charge.refunded``, ...) is posted, signed like Stripe signs it,
to a webhook endpoint (``payops webhooks serve``), retried with backoff while that endpoint is
down or busy, as Stripe retries.

The fake stays in tests/ (its fault injection is test machinery, and it is over the size of a
payops module), so this dev tool needs a source checkout: it adds the checkout's tests/ folder
to ``sys.path``. Never for production: it accepts any ``sk_test_`` key.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import os
import queue
import secrets
import signal
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import orjson

from payops.db import connect
from payops.errors import ConfigError
from payops.streams import STREAMS

HOST = "127.0.0.1"
DEFAULT_PORT = 12111
DEFAULT_WEBHOOK_URL = "http://127.0.0.1:8787/webhooks"
API_KEY = "sk_test_devstripe_offline"
# Parents before children, so a charge's payment intent is there when the charge is.
TABLES = STREAMS
TESTS_DIR = Path(__file__).resolve().parent.parent / "tests"
RETRY_DELAYS = (0.5, 1, 2, 4, 8, 15, 30)


def _fake_stripe_class() -> Any:
    """tests/fake_stripe.FakeStripe of this source checkout (ConfigError outside a checkout)."""
    if not (TESTS_DIR / "fake_stripe.py").is_file():
        raise ConfigError(f"the Stripe stand-in needs a source checkout of payops ({TESTS_DIR}/fake_stripe.py "
                          "is missing); install with `make setup`")
    if str(TESTS_DIR) not in sys.path:
        sys.path.insert(0, str(TESTS_DIR))
    from fake_stripe import FakeStripe

    return FakeStripe


def sign(payload: bytes, secret: str, timestamp: int) -> str:
    """The ``Stripe-Signature`` header Stripe sends: ``t=<unix time>,v1=<HMAC-SHA256 hex>``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


class WebhookSender:
    """Posts events, signed, to one endpoint from a background thread, retrying like Stripe.

    Args:
        url: the endpoint (``http://127.0.0.1:.../webhooks``).
        secret: the endpoint's signing secret (``whsec_...``); never logged.
        log: called with one line per attempt (event type and id, HTTP status).
    """

    def __init__(self, url: str, secret: str, log: Any = print):
        self.url = url
        self._secret = secret
        self.log = log
        self.delivered: list[str] = []
        self._queue: queue.Queue[dict | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="devstripe-webhooks", daemon=True)
        self._thread.start()

    def send(self, event: dict) -> None:
        """Queue one event for delivery."""
        self._queue.put(event)

    def close(self, timeout: float = 5.0) -> None:
        """Stop after the events already queued (waits up to ``timeout`` seconds)."""
        self._queue.put(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        while (event := self._queue.get()) is not None:
            self._deliver(event)

    def _deliver(self, event: dict) -> None:
        payload = orjson.dumps(event)
        for attempt, delay in enumerate((0, *RETRY_DELAYS), start=1):
            time.sleep(delay)
            status = self._post(payload)
            self.log(f"webhook {event['type']} {event['id']} -> {self.url}: {status} (attempt {attempt})")
            if isinstance(status, int) and 200 <= status < 300:
                self.delivered.append(event["id"])
                return
            if status == 400:  # refused for good (bad signature or body): Stripe does not retry either
                return

    def _post(self, payload: bytes) -> int | str:
        req = urllib.request.Request(self.url, data=payload, method="POST", headers={
            "Content-Type": "application/json", "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
            "Stripe-Signature": sign(payload, self._secret, int(time.time()))})
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 - a 127.0.0.1 URL we were given
                return int(resp.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)
        except OSError as exc:
            return f"unreachable ({type(exc).__name__})"


def load_database(fake: Any, db: str | Path) -> dict[str, int]:
    """Add every Stripe object stored in ``db`` (its ``raw`` JSON) to ``fake``; counts per table."""
    counts: dict[str, int] = {}
    with connect(db, read_only=True) as con:
        for table in TABLES:
            rows = con.execute(f"SELECT raw FROM {table} WHERE raw IS NOT NULL ORDER BY created, id").fetchall()
            for (raw,) in rows:
                fake.add(orjson.loads(raw) if isinstance(raw, (str, bytes)) else raw)
            counts[table] = len(rows)
    return counts


def make_stand_in(db: str | Path, *, webhook_url: str | None, secret: str, log: Any = print) -> tuple[Any, Any]:
    """A fake Stripe holding ``db``'s objects whose new events go to ``webhook_url``; (fake, sender).

    The fake is not started: call its ``start()`` (or ``serve``).
    """
    fake_cls = _fake_stripe_class()
    sender = WebhookSender(webhook_url, secret, log=log) if webhook_url else None

    class DevStripe(fake_cls):  # type: ignore[misc, valid-type]  # a class found at run time
        delivering = False

        def add_event(self, type: str, obj: dict, **kw: Any) -> dict:  # noqa: A002 - FakeStripe's name
            event = super().add_event(type, obj, **kw)
            if self.delivering and sender is not None:
                sender.send(event)
            return event

    fake = DevStripe(api_key=API_KEY)
    counts = load_database(fake, db)
    fake.delivering = True
    log("loaded " + ", ".join(f"{n} {t}" for t, n in counts.items()) + f" from {db}")
    return fake, sender


def env_lines(url: str, secret: str) -> str:
    """The shell lines that point payops at the stand-in."""
    return (f"export STRIPE_API_BASE={url}\n"
            f"export STRIPE_API_KEY={API_KEY}\n"
            f"export STRIPE_WEBHOOK_SECRET={secret}\n")


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by the owner only, atomically (readers never see half)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def serve(db: str | Path, *, port: int = DEFAULT_PORT, webhook_url: str | None = DEFAULT_WEBHOOK_URL,
          env_file: Path | None = None, log: Any = print) -> None:
    """Serve the stand-in on 127.0.0.1:``port`` until SIGTERM/SIGINT.

    A fresh webhook secret is made for each run; with ``env_file`` the export lines (API base,
    fake key, secret) are written there, owner-only, once the server listens.
    """
    secret = "whsec_" + secrets.token_urlsafe(24)
    fake, sender = make_stand_in(db, webhook_url=webhook_url, secret=secret, log=log)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    fake.start(port=port)
    try:
        if env_file is not None:
            _write_private(env_file, env_lines(fake.url, secret))
        log(f"Stripe stand-in on {fake.url} (webhooks to {webhook_url or 'nowhere'}); SIGTERM stops")
        stop.wait()
    finally:
        fake.stop()
        if sender is not None:
            sender.close()
        if env_file is not None:
            env_file.unlink(missing_ok=True)
        log("Stripe stand-in stopped")


def main(argv: list[str] | None = None) -> int:
    """``python -m payops.devstripe --db data/demo.duckdb [--port N] [--webhook-url URL] [--env-file F]``."""
    p = argparse.ArgumentParser(prog="python -m payops.devstripe", description=__doc__.splitlines()[0])
    p.add_argument("--db", required=True, type=Path, help="the payops database whose Stripe objects it holds")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help="port on 127.0.0.1 (0: a free one)")
    p.add_argument("--webhook-url", default=DEFAULT_WEBHOOK_URL, help="where new events are posted ('' for nowhere)")
    p.add_argument("--env-file", type=Path, default=None, help="write the STRIPE_* export lines here")
    args = p.parse_args(argv)
    if args.webhook_url and not args.webhook_url.startswith(f"http://{HOST}:"):
        p.error(f"--webhook-url must be on {HOST}")
    serve(args.db, port=args.port, webhook_url=args.webhook_url or None, env_file=args.env_file,
          log=lambda line: print(line, flush=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Stripe webhooks and event files: verify, store once, apply newer-wins.

:func:`handle` checks a delivery's ``Stripe-Signature`` with
``stripe.Webhook.construct_event`` (a bad, missing or stale signature raises
:class:`~payops.errors.SignatureError` and nothing is written), then applies the event
through :mod:`payops.ingest`: the event is stored once (``events`` primary key) and its
object replaces the stored row only if the event is at least as new as that row. So a
duplicate or out-of-order delivery is harmless.

:func:`serve` runs a small HTTP endpoint (stdlib ``http.server``) that answers 200 after
the event is stored, 400 on a bad signature or payload, 503 while the database is busy
(Stripe retries), 500 otherwise. :func:`apply_file` applies an export (JSON array, a
``{"data": [...]}`` list object, one event, or NDJSON such as Stripe CLI output).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson
import stripe

from payops.audit import record
from payops.db import connect, transaction
from payops.errors import DatabaseBusy, InvalidInput, PayopsError, SignatureError
from payops.ingest import IngestSummary, ingest_into
from payops.refunds import sync_refund_failures

__all__ = ["handle", "apply_events", "apply_file", "load_events", "make_server", "serve"]

TOLERANCE = 300  # seconds; Stripe's default: older signatures are refused (replays)


def apply_events(events: Iterable[dict], *, db: str | Path | None = None, source: str = "file",
                 actor: str = "sync") -> IngestSummary:
    """Store and apply events in one transaction (idempotent; newer-wins).

    Args:
        events: Stripe event dicts (``object == "event"``).
        db: database path (default ``PAYOPS_DB``).
        source: where they came from, for the audit row (``webhook``, a file name).
        actor: the audit actor.

    Raises:
        InvalidInput: something that is not an event; nothing was written.
    """
    events = list(events)
    for i, ev in enumerate(events):
        if not isinstance(ev, dict) or ev.get("object") != "event":
            raise InvalidInput(f"{source}: item #{i + 1} is not a Stripe event "
                               f"(object={ev.get('object') if isinstance(ev, dict) else type(ev).__name__!r})")
    with connect(db) as con, transaction(con):
        summary = ingest_into(con, events)
        if summary.events_new:
            record(con, actor=actor, action="events.apply", entity="event",
                   entity_id=events[0]["id"] if len(events) == 1 else None,
                   after={"source": source, "events_new": summary.events_new,
                          "events_duplicate": summary.events_duplicate,
                          "tables": summary.tables})
    if summary.events_new:
        # a refund that failed after payops processed it turns its request FAILED
        sync_refund_failures(db=db)
    return summary


def handle(payload: bytes, signature_header: str, secret: str, *,
           db: str | Path | None = None, tolerance: int = TOLERANCE) -> IngestSummary:
    """Verify one webhook delivery and apply its event.

    Args:
        payload: the request body, exactly as received.
        signature_header: the ``Stripe-Signature`` header.
        secret: the endpoint's signing secret (``whsec_...``).
        db: database path (default ``PAYOPS_DB``).
        tolerance: the oldest signature timestamp accepted, in seconds.

    Returns:
        The :class:`~payops.ingest.IngestSummary` (``events_duplicate == 1`` for a redelivery).

    Raises:
        SignatureError: missing, invalid or stale signature; nothing was written.
        InvalidInput: the body is not a Stripe event.
    """
    try:
        stripe.Webhook.construct_event(payload, signature_header, secret, tolerance)
    except stripe.SignatureVerificationError as exc:
        raise SignatureError(f"webhook signature refused: {str(exc).splitlines()[0]}") from None
    except ValueError:
        raise InvalidInput("webhook body is not JSON") from None
    # construct_event returns a StripeObject; ingest wants the plain dict.
    event = orjson.loads(payload)
    return apply_events([event], db=db, source="webhook")


def load_events(text: str | bytes, *, source: str = "input") -> list[dict]:
    """Events from a JSON array, a list object (``{"data": [...]}``), one event, or NDJSON."""
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    stripped = text.strip()
    if not stripped:
        return []
    try:
        doc = orjson.loads(stripped)
    except orjson.JSONDecodeError:
        doc = None
        out = []
        for n, line in enumerate(stripped.splitlines(), 1):
            if not line.strip():
                continue
            try:
                out.append(orjson.loads(line))
            except orjson.JSONDecodeError:
                raise InvalidInput(f"{source}: line {n} is not JSON (expected a JSON array, "
                                   "a {\"data\": [...]} list or one event per line)") from None
        return out
    if isinstance(doc, list):
        return doc
    if isinstance(doc, dict) and doc.get("object") == "list" or (
            isinstance(doc, dict) and isinstance(doc.get("data"), list)):
        return doc["data"]
    if isinstance(doc, dict):
        return [doc]
    raise InvalidInput(f"{source}: expected events, got {type(doc).__name__}")


def apply_file(path: str | Path, *, db: str | Path | None = None) -> IngestSummary:
    """Apply the events of a JSON / NDJSON file (see :func:`load_events`)."""
    path = Path(path)
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror}") from None
    return apply_events(load_events(text, source=str(path)), db=db, source=path.name)


def make_server(host: str, port: int, secret: str, *, db: str | Path | None = None,
                log=None) -> ThreadingHTTPServer:
    """An HTTP server that verifies and applies every POSTed webhook (not yet serving)."""
    lock = threading.Lock()  # one writer: DuckDB transactions of this process in turn

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "payops-webhooks/1"

        def log_message(self, format, *args):  # our own one-line log below
            pass

        def _reply(self, status: int, body: dict) -> None:
            data = orjson.dumps(body)
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            self._reply(200, {"ok": True, "service": "payops webhooks"})

        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            payload = self.rfile.read(length) if length else b""
            sig = self.headers.get("Stripe-Signature") or ""
            try:
                with lock:
                    summary = handle(payload, sig, secret, db=db)
            except PayopsError as exc:
                # 400: Stripe must not retry a bad delivery; 503: busy, Stripe retries later
                if isinstance(exc, (SignatureError, InvalidInput)):
                    status, what = 400, f"400 refused: {exc.message}"
                elif isinstance(exc, DatabaseBusy):
                    status, what = 503, f"503 {exc.message}"
                else:
                    status, what = 500, f"500 {exc.message}"
                self._reply(status, {"error": exc.message})
                _log(log, what)
                return
            ev: dict[str, Any] = orjson.loads(payload)
            dup = summary.events_duplicate > 0
            self._reply(200, {"received": True, "id": ev.get("id"), "duplicate": dup})
            _log(log, f"200 {ev.get('type')} {ev.get('id')}{' (duplicate)' if dup else ''}")

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    return server


def _log(log, line: str) -> None:
    if log is not None:
        log(line)


def serve(host: str = "127.0.0.1", port: int = 8787, secret: str | None = None, *,
          db: str | Path | None = None, log=print) -> None:
    """Serve webhooks until interrupted (``secret`` default: ``STRIPE_WEBHOOK_SECRET``)."""
    if secret is None:
        from payops.config import get_settings
        from payops.errors import ConfigError

        s = get_settings().webhook_secret
        if not s:
            raise ConfigError("STRIPE_WEBHOOK_SECRET is not set (looked in the environment); "
                              "export the endpoint's signing secret (whsec_...)")
        secret = s.reveal()
    server = make_server(host, port, secret, db=db, log=log)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()

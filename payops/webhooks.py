"""Stripe webhooks and event files: verify, store once, apply newer-wins.

:func:`handle` checks a delivery's ``Stripe-Signature`` with
``stripe.Webhook.construct_event`` (a bad, missing or stale signature raises
:class:`~payops.errors.SignatureError` and nothing is written), then applies the event
through :mod:`payops.ingest`: the event is stored once (``events`` primary key) and its
object replaces the stored row only if the event is at least as new as that row. So a
duplicate or out-of-order delivery is harmless.

:func:`serve` runs the receiver as a tornado server (tornado comes with Jupyter); the same
handler mounts inside ``payops serve`` (:func:`webhook_routes`). It answers 200 once the event
is stored, 400 for a bad signature or body, 503 while the database is busy or too many
deliveries wait (Stripe retries), and is built for the open internet:

* a body cap (:attr:`WebhookLimits.max_body`, 1 MiB; Stripe events are a few KB): a larger
  ``Content-Length`` gets 413 before one byte of the body is read, a chunked body is cut off
  (413) as soon as it passes the cap;
* read timeouts: the headers must arrive within ``header_timeout`` (else the connection is
  closed) and the body within ``body_timeout`` (else 408);
* bounded concurrency: events are applied one at a time by one writer thread, at most
  ``max_pending`` wait (more get 503 at once), so a flood cannot pile up threads or memory;
* every malformed request gets a JSON 4xx, never a traceback or a silently dropped connection.

:func:`apply_file` applies an export (JSON array, a ``{"data": [...]}`` list object, one
event, or NDJSON such as Stripe CLI output).
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import stripe
import tornado.httpserver
import tornado.netutil
import tornado.web

from payops.audit import record
from payops.db import connect, transaction
from payops.errors import InvalidInput, PayopsError, SignatureError, TransientError
from payops.ingest import IngestSummary, ingest_into
from payops.refunds import sync_refund_failures

__all__ = ["handle", "apply_events", "apply_file", "load_events", "make_server", "serve", "WebhookLimits",
           "WebhookReceiver", "WebhookHandler", "webhook_routes", "WebhookServer", "verify", "apply_deliveries"]

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
    event = verify(payload, signature_header, secret, tolerance=tolerance)
    return apply_events([event], db=db, source="webhook")


def load_events(text: str | bytes, *, source: str = "input") -> list[dict]:
    """Events from a JSON array, a list object (``{"data": [...]}``), one event, or NDJSON."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidInput(f"{source}: not UTF-8 text (expected JSON events, not a binary file)") from None
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


@dataclass(frozen=True)
class WebhookLimits:
    """How much the receiver accepts from one client.

    Attributes:
        max_body: the largest body accepted, in bytes (larger: 413).
        header_timeout: seconds a client has to send its request line and headers.
        body_timeout: seconds a client has to send its body once the headers are in (else 408).
        max_pending: deliveries waiting for the writer at most; more get 503 (Stripe retries).
    """

    max_body: int = 1024 * 1024
    header_timeout: float = 10.0
    body_timeout: float = 10.0
    max_pending: int = 64


class WebhookReceiver:
    """What every webhook request shares: the secret, the database, one writer, the queue bound.

    A delivery's signature is checked as it arrives (a bad one is answered 400 at once); good
    events queue for the writer, which stores everything queued in one transaction (a group
    commit), so a burst costs a few transactions, not one per event.

    Args:
        secret: the endpoint's signing secret (``whsec_...``).
        db: database path (default ``PAYOPS_DB``).
        limits: the :class:`WebhookLimits`.
        writer: the executor that applies events (default: a thread of its own). Inside
            ``payops serve`` it is the service's one writer thread, so webhooks and refund
            decisions never race for the database.
        log: called with one line per delivery (never the body or the secret).
    """

    max_batch = 500

    def __init__(self, secret: str, *, db: str | Path | None = None, limits: WebhookLimits | None = None,
                 writer: Executor | None = None, log: Callable[[str], Any] | None = None):
        self._secret = secret
        self.db = db
        self.limits = limits or WebhookLimits()
        self._own_writer = writer is None
        self.writer = writer or ThreadPoolExecutor(max_workers=1, thread_name_prefix="payops-webhooks")
        self.log = log
        self.pending = 0
        self._queue: list[tuple[dict, asyncio.Future]] = []
        self._flushing = False

    def close(self) -> None:
        """Stop the writer thread if it is the receiver's own."""
        if self._own_writer:
            self.writer.shutdown(wait=True)

    def _refused(self, exc: PayopsError) -> tuple[int, dict]:
        # 400: Stripe must not retry a bad delivery; 503: busy, Stripe retries later
        if isinstance(exc, (SignatureError, InvalidInput)):
            status = 400
        elif isinstance(exc, TransientError):
            status = 503
        else:
            status = 500
        _log(self.log, f"{status} {'refused: ' if status == 400 else ''}{exc.message}")
        return status, {"error": exc.message}

    async def deliver(self, payload: bytes, signature: str) -> tuple[int, dict]:
        """Verify one delivery and have the writer store it; returns (HTTP status, JSON body)."""
        if self.pending >= self.limits.max_pending:
            _log(self.log, f"503 busy: {self.pending} deliveries waiting")
            return 503, {"error": "too many deliveries waiting; retry later"}
        try:
            ev = verify(payload, signature, self._secret)
        except PayopsError as exc:
            return self._refused(exc)
        loop = asyncio.get_running_loop()
        done: asyncio.Future = loop.create_future()
        self.pending += 1
        self._queue.append((ev, done))
        if not self._flushing:
            self._flushing = True
            loop.create_task(self._flush())
        try:
            outcome = await done
        finally:
            self.pending -= 1
        if isinstance(outcome, PayopsError):
            return self._refused(outcome)
        _log(self.log, f"200 {ev.get('type')} {ev.get('id')}{' (duplicate)' if outcome else ''}")
        return 200, {"received": True, "id": ev.get("id"), "duplicate": outcome}

    async def _flush(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._queue:
                batch, self._queue = self._queue[:self.max_batch], self._queue[self.max_batch:]
                outcomes = await loop.run_in_executor(self.writer, _apply_quietly, [ev for ev, _ in batch], self.db)
                for (_, done), outcome in zip(batch, outcomes, strict=True):
                    if not done.done():
                        done.set_result(outcome)
        finally:
            self._flushing = False


def verify(payload: bytes, signature_header: str, secret: str, *, tolerance: int = TOLERANCE) -> dict:
    """The event of one delivery, after its signature checks out.

    Raises:
        SignatureError: missing, invalid or stale signature.
        InvalidInput: the body is not a Stripe event.
    """
    try:
        stripe.Webhook.construct_event(payload, signature_header, secret, tolerance)
    except stripe.SignatureVerificationError as exc:
        raise SignatureError(f"webhook signature refused: {str(exc).splitlines()[0]}") from None
    except (ValueError, UnicodeDecodeError):
        raise InvalidInput("webhook body is not JSON") from None
    # construct_event returns a StripeObject; ingest wants the plain dict.
    event = orjson.loads(payload)
    if not isinstance(event, dict) or event.get("object") != "event" or not isinstance(event.get("id"), str):
        raise InvalidInput("webhook body is not a Stripe event")
    return event


def apply_deliveries(events: list[dict], *, db: str | Path | None = None) -> list[bool]:
    """Store and apply verified events in one transaction; returns, per event, whether it was a duplicate.

    An event already stored, or met earlier in ``events``, is a duplicate (harmless: newer-wins).
    """
    ids = [ev["id"] for ev in events]
    with connect(db) as con, transaction(con):
        seen = {r[0] for r in con.execute("SELECT id FROM events WHERE id IN (SELECT unnest(?))", [ids]).fetchall()}
        summary = ingest_into(con, events)
        duplicate = []
        for eid in ids:
            duplicate.append(eid in seen)
            seen.add(eid)
        if summary.events_new:
            record(con, actor="sync", action="events.apply", entity="event",
                   entity_id=ids[0] if len(ids) == 1 else None,
                   after={"source": "webhook", "events_new": summary.events_new,
                          "events_duplicate": summary.events_duplicate, "tables": summary.tables})
    if summary.events_new:
        sync_refund_failures(db=db)  # a refund that failed after payops processed it turns its request FAILED
    return duplicate


def _apply_quietly(events: list[dict], db) -> list[bool | PayopsError]:
    """:func:`apply_deliveries` for the writer thread: every outcome is a value, never an exception."""
    try:
        return list(apply_deliveries(events, db=db))
    except TransientError as exc:
        return [exc] * len(events)
    except PayopsError as exc:
        if len(events) == 1:
            return [exc]
    except Exception as exc:  # noqa: BLE001 - a bug must become a 500 for Stripe, not kill the writer
        if len(events) == 1:
            return [PayopsError(f"internal error applying the event ({type(exc).__name__})")]
    # One bad event must not sink the batch: apply them one by one.
    out: list[bool | PayopsError] = []
    for ev in events:
        out += _apply_quietly([ev], db)
    return out


@tornado.web.stream_request_body
class WebhookHandler(tornado.web.RequestHandler):
    """POST a Stripe event here; GET says the endpoint is up. Mount with :func:`webhook_routes`."""

    receiver: WebhookReceiver

    def initialize(self, receiver: WebhookReceiver) -> None:
        self.receiver = receiver
        self._chunks: list[bytes] = []
        self._size = 0
        self._timer: asyncio.TimerHandle | None = None

    def check_xsrf_cookie(self) -> None:
        """Stripe posts without cookies; the signature is the authentication."""

    def set_default_headers(self) -> None:
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-store")

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """Every error is one JSON line; never a traceback."""
        self.finish(orjson.dumps({"error": self._reason or "error"}))

    def _refuse(self, status: int, message: str) -> None:
        if self._finished:
            return
        self._cancel_timer()
        self.set_status(status)
        self.set_header("Connection", "close")
        _log(self.receiver.log, f"{status} refused: {message}")
        self.finish(orjson.dumps({"error": message}))

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def prepare(self) -> None:
        if self.request.method != "POST":
            return
        limits = self.receiver.limits
        conn = self.request.connection
        raw = self.request.headers.get("Content-Length")
        if raw is not None:
            try:
                length = int(raw)
            except ValueError:
                length = -1
            if length < 0:
                return self._refuse(400, "Content-Length is not a number")
            if length > limits.max_body:
                # Answered before the body is read: the connection closes after this reply.
                return self._refuse(413, f"body of {length:,} bytes is over the {limits.max_body:,}-byte limit")
        if conn is not None:
            # A little more than the cap, so an over-long chunked body reaches data_received
            # (and gets our 413) instead of tornado's bare 400.
            conn.set_max_body_size(limits.max_body + 64 * 1024)  # type: ignore[attr-defined]
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(limits.body_timeout, self._too_slow)

    def _too_slow(self) -> None:
        self._timer = None
        self._refuse(408, f"the body did not arrive within {self.receiver.limits.body_timeout:g} s")

    def data_received(self, chunk: bytes) -> None:
        if self._finished:
            return
        self._size += len(chunk)
        if self._size > self.receiver.limits.max_body:
            self._refuse(413, f"body over the {self.receiver.limits.max_body:,}-byte limit")
            return
        self._chunks.append(chunk)

    def get(self) -> None:
        self.finish(orjson.dumps({"ok": True, "service": "payops webhooks"}))

    async def post(self) -> None:
        self._cancel_timer()
        if self._finished:
            return
        payload = b"".join(self._chunks)
        self._chunks = []
        signature = self.request.headers.get("Stripe-Signature") or ""
        status, body = await self.receiver.deliver(payload, signature)
        self.set_status(status)
        if status == 503:
            self.set_header("Retry-After", "5")
        self.finish(orjson.dumps(body))

    def on_connection_close(self) -> None:
        self._cancel_timer()


class _NotFound(tornado.web.RequestHandler):
    def set_default_headers(self) -> None:
        self.set_header("Content-Type", "application/json")

    def prepare(self) -> None:
        self.set_status(404)
        self.finish(orjson.dumps({"error": "not found; POST Stripe events to /webhooks"}))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        self.finish(orjson.dumps({"error": self._reason or "error"}))


def webhook_routes(receiver: WebhookReceiver, prefix: str = "/") -> list[tuple[str, type, dict]]:
    """The tornado routes of the receiver under ``prefix`` (``/`` and ``/webhooks``).

    ``payops serve`` mounts them under its service prefix, e.g. ``/services/payops/webhooks``.
    """
    base = "/" + prefix.strip("/") if prefix.strip("/") else ""
    return [(f"{base}/", WebhookHandler, {"receiver": receiver}),
            (f"{base}/webhooks/?", WebhookHandler, {"receiver": receiver})]


def http_server(app: tornado.web.Application, limits: WebhookLimits) -> tornado.httpserver.HTTPServer:
    """A tornado HTTP server with the receiver's limits on every connection."""
    return tornado.httpserver.HTTPServer(
        app, xheaders=False, max_body_size=limits.max_body + 64 * 1024, max_buffer_size=limits.max_body + 64 * 1024,
        idle_connection_timeout=limits.header_timeout, body_timeout=limits.body_timeout + 1,
    )


class WebhookServer:
    """The receiver on a port of its own, run by :meth:`serve_forever` in the calling thread.

    The socket is bound when the object is made, so clients may connect at once; call
    :meth:`shutdown` from another thread (or a signal) to stop, then :meth:`server_close`.
    """

    def __init__(self, host: str, port: int, secret: str, *, db: str | Path | None = None,
                 limits: WebhookLimits | None = None, log: Callable[[str], Any] | None = None):
        self.limits = limits or WebhookLimits()
        self.receiver = WebhookReceiver(secret, db=db, limits=self.limits, log=log)
        self.sockets = tornado.netutil.bind_sockets(port, host, family=socket.AF_INET)
        self.server_address = self.sockets[0].getsockname()[:2]
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._stopped = threading.Event()

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        """Serve until :meth:`shutdown` (``poll_interval`` is accepted for the stdlib's signature)."""
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        # Our own one line per delivery (the receiver's log) instead of tornado's access log.
        app = tornado.web.Application(webhook_routes(self.receiver), default_handler_class=_NotFound,
                                      log_function=lambda handler: None)
        server = http_server(app, self.limits)
        server.add_sockets(self.sockets)
        try:
            await self._stop.wait()
        finally:
            server.stop()
            await server.close_all_connections()
            self._stopped.set()

    def shutdown(self) -> None:
        """Stop serving (from any thread) and wait until the server has stopped."""
        if self._loop is not None and self._stop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._stop.set)
            self._stopped.wait(timeout=10)

    def server_close(self) -> None:
        """Close the listening socket and the writer thread."""
        for s in self.sockets:
            s.close()
        self.receiver.close()


def make_server(host: str, port: int, secret: str, *, db: str | Path | None = None, log=None,
                limits: WebhookLimits | None = None) -> WebhookServer:
    """A webhook server bound to ``host:port`` (not yet serving: call ``serve_forever``)."""
    return WebhookServer(host, port, secret, db=db, limits=limits, log=log)


def _log(log, line: str) -> None:
    if log is not None:
        log(line)


def serve(host: str = "127.0.0.1", port: int = 8787, secret: str | None = None, *,
          db: str | Path | None = None, log=print, limits: WebhookLimits | None = None) -> None:
    """Serve webhooks until interrupted (``secret`` default: ``STRIPE_WEBHOOK_SECRET``)."""
    if secret is None:
        from payops.config import get_settings
        from payops.errors import ConfigError

        s = get_settings().webhook_secret
        if not s:
            raise ConfigError("STRIPE_WEBHOOK_SECRET is not set (looked in the environment); "
                              "export the endpoint's signing secret (whsec_...)")
        secret = s.reveal()
    server = make_server(host, port, secret, db=db, log=log, limits=limits)
    try:
        server.serve_forever()
    finally:
        server.server_close()

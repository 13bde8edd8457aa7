"""The ``payops serve`` tornado service: the one writer of team mode.

JupyterHub starts it as a managed service (see ``hub/jupyterhub_config.py``) with
``JUPYTERHUB_API_TOKEN``, ``JUPYTERHUB_API_URL``, ``JUPYTERHUB_SERVICE_PREFIX`` and
``JUPYTERHUB_SERVICE_URL`` in its environment. Every API request must carry a hub token
(``Authorization: token ...``); :class:`jupyterhub.services.auth.HubAuth` asks the hub whose
it is, and that name (with the user's hub groups) is the only identity the service uses.
A header such as ``X-User`` or a body field naming a user is never read.

Routes under the prefix: ``api/whoami``, ``api/refunds/{request,import,approve,reject,
apply-policy,process,reconcile}``, ``api/bookings/set-status``, ``api/audit/verify`` and
``webhooks`` (Stripe's deliveries, authenticated by their signature). Every change runs on
one writer thread, so decisions and webhooks never race for the database.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import orjson
import tornado.httpserver
import tornado.web
from jupyterhub.services.auth import HubAuth

from payops.authority import Identity, acting, roles_for, team_mode
from payops.config import Settings, get_settings
from payops.errors import (
    ConfigError,
    InvalidInput,
    NotFound,
    PayopsError,
    PermissionDenied,
    RefundError,
    TransientError,
)
from payops.service import routes
from payops.webhooks import WebhookLimits, WebhookReceiver, webhook_routes

__all__ = ["ServiceContext", "SnapshotSchedule", "make_app", "publish_snapshots", "run", "DEFAULT_PREFIX",
           "DEFAULT_SNAPSHOT_MINUTES"]

DEFAULT_PREFIX = "/services/payops/"
DEFAULT_SNAPSHOT_MINUTES = 15.0
MAX_API_BODY = 4 * 1024 * 1024  # an import of some thousand CSV lines


@dataclass
class ServiceContext:
    """What every handler of one running service shares."""

    settings: Settings
    db: Path
    hub_auth: HubAuth
    writer: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(max_workers=1, thread_name_prefix="payops-writer"))
    log: Callable[[str], Any] = print

    async def write(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run one change on the writer thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.writer, lambda: fn(*args, **kwargs))


@dataclass(frozen=True)
class SnapshotSchedule:
    """Where and how often the writer publishes the analysts' snapshot (see :mod:`payops.snapshot`)."""

    path: Path
    every_minutes: float = DEFAULT_SNAPSHOT_MINUTES


async def publish_snapshots(ctx: ServiceContext, schedule: SnapshotSchedule, stop: asyncio.Event) -> None:
    """Take a snapshot now, then every ``schedule.every_minutes``, until ``stop`` is set.

    Each snapshot runs on the writer thread, between two changes, so it never races a decision;
    a decision arriving meanwhile waits for it (about 0.4 s on the demo database). A failure is
    logged in one line (no traceback, no secret) and the next run tries again: it never stops
    the service.
    """
    from payops.snapshot import snapshot

    while not stop.is_set():
        try:
            result = await ctx.write(snapshot, schedule.path, ctx.db, taken_by="payops serve")
            ctx.log(f"payops serve: {result.summary()}")
        except PayopsError as exc:
            ctx.log(f"payops serve: snapshot to {schedule.path} failed: {exc.message}")
        except Exception as exc:  # noqa: BLE001  # a publishing hiccup must not end the writer
            first = str(exc).splitlines()[0] if str(exc) else ""
            ctx.log(f"payops serve: snapshot to {schedule.path} failed: {type(exc).__name__}: {first}")
        try:
            await asyncio.wait_for(stop.wait(), timeout=schedule.every_minutes * 60)
        except TimeoutError:
            pass


def _status_of(exc: PayopsError) -> int:
    if isinstance(exc, PermissionDenied):
        return 403
    if isinstance(exc, NotFound):
        return 404
    if isinstance(exc, InvalidInput):
        return 400
    if isinstance(exc, RefundError):
        return 409
    if isinstance(exc, TransientError):
        return 503
    return 500


class APIHandler(tornado.web.RequestHandler):
    """A JSON API request authenticated by the hub; ``self.identity`` is who calls."""

    ctx: ServiceContext
    identity: Identity

    def initialize(self, ctx: ServiceContext, action: Callable[..., Awaitable[Any]] | None = None,
                   roles: tuple[str, ...] = (), method: str = "POST") -> None:
        self.ctx = ctx
        self.action = action
        self.required_roles = roles
        self.allowed_method = method
        self._started = time.perf_counter()

    def set_default_headers(self) -> None:
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-store")

    def check_xsrf_cookie(self) -> None:
        """Token-authenticated only (no cookies are read), so there is no ambient credential to forge."""

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """Every error is one JSON object; never a traceback."""
        message = self._reason or "error"
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, tornado.web.HTTPError) and exc.log_message:
            message = exc.log_message
        self.finish(orjson.dumps({"error": message}))

    def _fail(self, status: int, message: str) -> None:
        self.set_status(status)
        self.finish(orjson.dumps({"error": message}))

    async def prepare(self) -> None:
        if self.request.method != self.allowed_method:
            return self._fail(405, f"use {self.allowed_method}")
        # The hub token is the only identity: header tokens only (no ?token=, no cookie).
        model = await self.ctx.hub_auth.get_user(self, sync=False)
        if not model:
            return self._fail(401, "a JupyterHub token is required (Authorization: token ...)")
        if model.get("kind", "user") != "user":
            return self._fail(403, "only hub users act on refunds")
        if self.ctx.hub_auth.access_scopes and not self.ctx.hub_auth.check_scopes(
                self.ctx.hub_auth.access_scopes, model):
            return self._fail(403, f"the token of {model['name']} lacks access to this service "
                                   f"({', '.join(sorted(self.ctx.hub_auth.access_scopes))})")
        groups = tuple(model.get("groups") or ())
        name = str(model["name"])
        self.identity = Identity(name=name, groups=groups, roles=roles_for(name, groups, self.ctx.settings))
        if self.required_roles and not self.identity.has(*self.required_roles):
            return self._fail(403, f"{name} lacks the {' or '.join(self.required_roles)} role needed for this "
                                   f"(hub user {name}; roles come from [roles] in {self.ctx.settings.config_path})")

    async def act(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run one change on the writer thread as this request's hub user (groups included)."""
        identity = self.identity

        def run() -> Any:
            with acting(identity):
                return fn(*args, **kwargs)
        return await self.ctx.write(run)

    def body(self) -> dict:
        """The request's JSON object (400 if it is not one)."""
        if not self.request.body:
            return {}
        try:
            data = orjson.loads(self.request.body)
        except orjson.JSONDecodeError:
            raise InvalidInput("the request body is not JSON") from None
        if not isinstance(data, dict):
            raise InvalidInput("the request body must be a JSON object")
        return data

    async def _run(self) -> None:
        if self._finished:
            return
        assert self.action is not None
        try:
            reply = await self.action(self)
        except PayopsError as exc:
            self._fail(_status_of(exc), exc.message)
            return
        self.finish(orjson.dumps(reply, default=str))
        self.ctx.log(f"{self.request.method} {self.request.path} as {self.identity.name}: "
                     f"{(time.perf_counter() - self._started) * 1000:.0f} ms")

    async def get(self) -> None:
        await self._run()

    async def post(self) -> None:
        await self._run()


class InfoHandler(tornado.web.RequestHandler):
    """The prefix itself: says what this is (no data, no authentication needed)."""

    def get(self) -> None:
        self.set_header("Content-Type", "application/json")
        self.finish(orjson.dumps({"service": "payops", "api": self.request.path.rstrip("/") + "/api/",
                                  "mode": "team" if team_mode() else "single-user"}))


class _NotFound(tornado.web.RequestHandler):
    def prepare(self) -> None:
        self.set_header("Content-Type", "application/json")
        self.set_status(404)
        self.finish(orjson.dumps({"error": "not found"}))


def make_app(ctx: ServiceContext, prefix: str = DEFAULT_PREFIX,
             webhook_secret: str | None = None) -> tuple[tornado.web.Application, WebhookReceiver | None]:
    """The service's tornado application under ``prefix`` (and its webhook receiver, if any)."""
    base = "/" + prefix.strip("/") + "/" if prefix.strip("/") else "/"
    handlers: list[Any] = [(base, InfoHandler)]
    for path, (action, roles, method) in routes.ROUTES.items():
        handlers.append((f"{base}api/{path}", APIHandler,
                         {"ctx": ctx, "action": action, "roles": roles, "method": method}))
    receiver = None
    if webhook_secret:
        receiver = WebhookReceiver(webhook_secret, db=ctx.db, writer=ctx.writer, log=ctx.log,
                                   limits=WebhookLimits())
        handlers += webhook_routes(receiver, base)[1:]  # <prefix>webhooks only
    app = tornado.web.Application(handlers, default_handler_class=_NotFound, log_function=lambda h: None)
    return app, receiver


def _bind(host: str | None, port: int | None) -> tuple[str, int]:
    url = os.environ.get("JUPYTERHUB_SERVICE_URL")
    if url and (host is None or port is None):
        parsed = urlparse(url)
        return host or parsed.hostname or "127.0.0.1", port or parsed.port or 80
    return host or "127.0.0.1", port or 8791


def _hub_auth() -> HubAuth:
    for name in ("JUPYTERHUB_API_TOKEN", "JUPYTERHUB_API_URL"):
        if not os.environ.get(name):
            raise ConfigError(f"payops serve runs as a JupyterHub service: {name} is not set (JupyterHub sets it "
                              "for a managed service; see hub/jupyterhub_config.py, or `make hub`)")
    # Header tokens only: no ?token= in URLs (they end up in logs), and no cookies.
    return HubAuth(allow_token_in_url=False, cache_max_age=60)


def run(*, host: str | None = None, port: int | None = None, db: str | Path | None = None,
        log: Callable[[str], Any] = print, snapshot: SnapshotSchedule | None = None) -> None:
    """Serve until SIGINT or SIGTERM, then finish the change in progress and exit.

    With ``snapshot``, also publish the analysts' snapshot right after starting and then on
    its schedule (:func:`publish_snapshots`).

    Raises:
        ConfigError: not started by a hub, not in team mode, or without the audit key.
        InvalidInput: the snapshot's path is unusable (its folder is missing, or it is the database).
    """
    from payops.authority import require_audit_key

    settings = get_settings()
    if not team_mode(settings):
        raise ConfigError(f"payops serve is the writer of team mode, but {settings.config_path} has no [roles]; "
                          "name who reviews, approves and processes there (see the README, 'Modes')")
    require_audit_key()
    if snapshot is not None:  # a bad path is a start-up error, not a log line every few minutes
        from payops.db import require
        from payops.snapshot import check_destination

        check_destination(snapshot.path, require(db))
    _seal(Path(db) if db else settings.db_path)
    ctx = ServiceContext(settings=settings, db=Path(db) if db else settings.db_path, hub_auth=_hub_auth(), log=log)
    prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX", DEFAULT_PREFIX)
    hook = settings.webhook_secret.reveal() if settings.webhook_secret else None
    bind_host, bind_port = _bind(host, port)
    asyncio.run(_serve(ctx, prefix, hook, bind_host, bind_port, snapshot))


def _seal(db: Path) -> None:
    """Anchor the audit chain with the writer's key before serving (see :func:`payops.audit.seal`)."""
    from payops import audit
    from payops.db import connect, transaction

    with connect(db) as con, transaction(con):
        audit.seal(con, actor="payops serve", note="payops serve started: its key anchors every row before this one")


async def _serve(ctx: ServiceContext, prefix: str, hook: str | None, host: str, port: int,
                 snapshot: SnapshotSchedule | None = None) -> None:
    app, receiver = make_app(ctx, prefix, hook)
    limits = WebhookLimits()
    server = tornado.httpserver.HTTPServer(app, max_body_size=MAX_API_BODY, max_buffer_size=MAX_API_BODY,
                                           idle_connection_timeout=limits.header_timeout,
                                           body_timeout=limits.body_timeout + 1)
    server.listen(port, host)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    ctx.log(f"payops serve: {ctx.db} as the one writer, http://{host}:{port}{prefix} "
            f"(webhooks {'on' if hook else 'off'}); SIGINT/SIGTERM stops")
    publisher = asyncio.create_task(publish_snapshots(ctx, snapshot, stop)) if snapshot else None
    await stop.wait()
    ctx.log("payops serve: stopping (finishing the change in progress)")
    if publisher is not None:
        await publisher  # returns once a snapshot in progress is in place
    server.stop()
    await server.close_all_connections()
    ctx.writer.shutdown(wait=True)
    if receiver is not None:
        receiver.close()

"""What each API route of ``payops serve`` does: parse the body, call the library as the hub user.

Each action takes the authenticated handler (``h.identity`` is who the hub says calls) and
returns a JSON-able reply. Every rule (roles, four-eyes, eligibility, provenance) is the
library's: an action only passes the authenticated user explicitly and runs the change on the
writer thread. The ``roles`` of a route are checked before the body is even read, so a viewer
is turned away at the door (and the library would refuse him again).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from payops.errors import InvalidInput

if TYPE_CHECKING:
    from payops.service.app import APIHandler

__all__ = ["ROUTES"]

DECIDERS = ("reviewer", "senior")
REQUESTERS = ("reviewer", "senior", "processor")
MAX_IDS = 1000


def _ids(body: dict) -> list[int]:
    ids = body.get("ids")
    if isinstance(ids, int) and not isinstance(ids, bool):
        ids = [ids]
    if not isinstance(ids, list) or not ids or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
        raise InvalidInput("ids must be a non-empty list of request ids")
    if len(ids) > MAX_IDS:
        raise InvalidInput(f"at most {MAX_IDS} ids per call")
    return ids


def _text(body: dict, key: str, *, required: bool = False) -> str | None:
    value = body.get(key)
    if value is None or value == "":
        if required:
            raise InvalidInput(f"{key} is required")
        return None
    if not isinstance(value, str):
        raise InvalidInput(f"{key} must be text")
    return value


def _results(results: list) -> dict:
    return {"results": [r.as_dict() for r in results]}


async def whoami(h: APIHandler) -> dict:
    i = h.identity
    return {"user": i.name, "groups": list(i.groups), "roles": list(i.roles), "mode": "team"}


async def approve(h: APIHandler) -> dict:
    from payops import refunds

    body = h.body()
    ids, note = _ids(body), _text(body, "note")
    return _results(await h.act(refunds.approve, ids, user=h.identity.name, note=note, db=h.ctx.db))


async def reject(h: APIHandler) -> dict:
    from payops import refunds

    body = h.body()
    ids, note = _ids(body), _text(body, "note", required=True)
    return _results(await h.act(refunds.reject, ids, note=note or "", user=h.identity.name, db=h.ctx.db))


async def apply_policy(h: APIHandler) -> dict:
    from payops import refunds

    return _results(await h.act(refunds.apply_policy, user=h.identity.name, db=h.ctx.db))


async def process(h: APIHandler) -> dict:
    from payops import refunds

    body = h.body()
    limit, dry_run = body.get("limit"), bool(body.get("dry_run"))
    if limit is not None and (not isinstance(limit, int) or limit < 1):
        raise InvalidInput("limit must be a positive integer")
    ids = _ids(body) if body.get("ids") is not None else None
    return _results(await h.act(refunds.process, limit=limit, dry_run=dry_run, user=h.identity.name,
                                      db=h.ctx.db, ids=ids))


async def reconcile(h: APIHandler) -> dict:
    from payops import refunds

    minutes = h.body().get("older_than_minutes")
    if minutes is not None and (not isinstance(minutes, int) or minutes < 0):
        raise InvalidInput("older_than_minutes must be a whole number of minutes")
    older = None if minutes is None else timedelta(minutes=minutes)
    return _results(await h.act(refunds.reconcile, user=h.identity.name, db=h.ctx.db, older_than=older))


def _amount(value: Any) -> str | int | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise InvalidInput("amount must be text in major units (\"12.50\") or an integer in minor units")
    return value


async def request(h: APIHandler) -> dict:
    from payops.service.actions import LocalActions

    body = h.body()
    payment = _text(body, "payment", required=True) or ""
    reason = _text(body, "reason", required=True) or ""
    amount, note = _amount(body.get("amount")), _text(body, "note")
    local = LocalActions(h.identity.name, db=h.ctx.db)
    row = await h.act(local.request, payment, reason=reason, amount=amount, note=note)
    return {"request": row}


async def import_rows(h: APIHandler) -> dict:
    from payops.service.actions import LocalActions

    rows = h.body().get("rows")
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise InvalidInput("rows must be a list of objects (payment, reason, amount, note, requested_by)")
    # the hub user imports; a row's requested_by is only "on behalf of"
    local = LocalActions(h.identity.name, db=h.ctx.db)
    return {"results": await h.act(local.import_rows, rows)}


async def set_booking_status(h: APIHandler) -> dict:
    from payops.bookings import set_status

    body = h.body()
    booking_id = _text(body, "booking_id", required=True)
    status = _text(body, "status", required=True)
    booking = await h.act(set_status, booking_id, status, user=h.identity.name, note=_text(body, "note"),
                                db=h.ctx.db)
    return {"booking": booking}


async def verify(h: APIHandler) -> dict:
    from payops.service.actions import verify_all

    return await h.act(verify_all, db=h.ctx.db)


Action = Callable[["APIHandler"], Awaitable[Any]]
# path under <prefix>api/ -> (action, roles needed (any of), HTTP method)
ROUTES: dict[str, tuple[Action, tuple[str, ...], str]] = {
    "whoami": (whoami, (), "GET"),
    "refunds/request": (request, REQUESTERS, "POST"),
    "refunds/import": (import_rows, REQUESTERS, "POST"),
    "refunds/approve": (approve, DECIDERS, "POST"),
    "refunds/reject": (reject, DECIDERS, "POST"),
    "refunds/apply-policy": (apply_policy, DECIDERS, "POST"),
    "refunds/process": (process, ("processor",), "POST"),
    "refunds/reconcile": (reconcile, ("processor",), "POST"),
    "bookings/set-status": (set_booking_status, DECIDERS, "POST"),
    "audit/verify": (verify, (), "GET"),
}

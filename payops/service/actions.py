"""RefundActions: the one door through which the CLI and the review app change refunds.

:func:`refund_actions` gives :class:`LocalActions` in single-user mode (the library, as the
current user, as before) and :class:`RemoteActions` in team mode (``payops serve``, as the
user the hub token names; ``PAYOPS_USER`` is ignored). Both have the same methods and return
the same :class:`payops.refunds.ActionResult` lists, so a caller never branches on the mode.
``approve(ids, note)``, ``reject(ids, note)`` and ``process(ids)`` are also the three methods
the review app's ``payops.ui.actions.ReviewActions`` asks for.

Example::

    from payops.service import refund_actions
    acts = refund_actions()
    acts.user, acts.roles            # who the writer will record
    acts.approve([7], note="ok")     # -> [ActionResult(7, True, "APPROVED", "...")]
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from payops.authority import audit_key, roles_for, team_mode
from payops.config import get_settings
from payops.service.client import ServiceClient

__all__ = ["RefundActions", "LocalActions", "RemoteActions", "refund_actions", "ImportRow"]

# One CSV line of `refunds import`: payment, reason, and optionally amount (major units), note,
# requested_by (recorded as "on behalf of"; the importer is the actor). import_rows answers one
# dict per line: line, payment, ok, message, request.
ImportRow = dict[str, Any]


def _ids(ids: int | Iterable[int]) -> list[int]:
    return [int(ids)] if isinstance(ids, (int, str)) else [int(i) for i in ids]


@runtime_checkable
class RefundActions(Protocol):
    """What a person can do to refunds; every method returns what the workflow decided.

    Attributes:
        user: who acts, as the writer records it.
        roles: that user's roles.
        remote: True when the changes go through ``payops serve``.
    """

    user: str
    roles: tuple[str, ...]
    remote: bool

    def approve(self, ids: int | Iterable[int], note: str | None = None) -> list: ...

    def reject(self, ids: int | Iterable[int], note: str) -> list: ...

    def process(self, ids: Iterable[int] | None = None, *, limit: int | None = None, dry_run: bool = False) -> list: ...

    def reconcile(self, *, older_than_minutes: int | None = None) -> list: ...

    def apply_policy(self) -> list: ...

    def request(self, payment: str, *, reason: str, amount: str | int | None = None,
                note: str | None = None) -> Mapping[str, Any]: ...

    def import_rows(self, rows: Sequence[ImportRow]) -> list[dict]: ...

    def set_booking_status(self, booking_id: str, status: str, *, note: str | None = None) -> dict: ...


def _minor(payment: str, amount: str | int | None, db) -> int | None:
    """A major-unit amount typed by a person (``"12.50"``) -> minor units of the payment's currency."""
    if amount is None or isinstance(amount, int):
        return amount
    from payops.refunds import parse_amount

    return parse_amount(payment, amount, db=db)


def _line(line: Any) -> dict:
    return {"line": line.line, "payment": line.payment, "ok": line.ok, "message": line.message,
            "request": line.request.as_dict() if line.request is not None else None}


def verify_report(db: str | Path | None = None) -> dict:
    """:func:`verify_all` here where the audit key is (or nothing is keyed), else asked of payops serve.

    The same dict either way: ``ok``, ``chain`` (ok, rows, problem, row_id, message) and
    ``requests`` (id, message, problems) for every request whose state does not follow from
    its history.
    """
    if team_mode() and audit_key() is None:
        return ServiceClient.from_env(what="`payops audit verify`").call("GET", "audit/verify")
    return verify_all(db=db)


def verify_all(*, db: str | Path | None = None) -> dict:
    """The audit chain and every request whose state does not follow from its history (needs the key)."""
    from payops.audit import verify_chain
    from payops.authority import audit_key
    from payops.db import connect
    from payops.refunds.provenance import check_all

    key = audit_key()
    chain = verify_chain(db, key=key)
    with connect(db) as con:
        unproven = check_all(con, key=key)
    return {"ok": chain.ok and not unproven, "chain": {"ok": chain.ok, "rows": chain.rows, "problem": chain.problem,
                                                         "row_id": chain.row_id, "message": chain.message},
            "requests": [{"id": p.request_id, "message": p.message, "problems": p.problems} for p in unproven]}


class LocalActions:
    """Single-user mode: the library itself, as ``user`` (default ``PAYOPS_USER`` / the OS user)."""

    remote = False

    def __init__(self, user: str | None = None, *, db: str | Path | None = None):
        settings = get_settings()
        self.user = user or settings.user
        self.roles = roles_for(self.user, (), settings)
        self.db = db

    def __repr__(self) -> str:
        return f"LocalActions(user={self.user!r})"

    def approve(self, ids, note=None) -> list:
        from payops.refunds import approve

        return approve(_ids(ids), user=self.user, note=note, db=self.db)

    def reject(self, ids, note) -> list:
        from payops.refunds import reject

        return reject(_ids(ids), note=note, user=self.user, db=self.db)

    def process(self, ids=None, *, limit=None, dry_run=False) -> list:
        from payops.refunds import process

        return process(limit=limit, dry_run=dry_run, user=self.user, db=self.db,
                       ids=None if ids is None else _ids(ids))

    def reconcile(self, *, older_than_minutes=None) -> list:
        from datetime import timedelta

        from payops.refunds import reconcile

        older = None if older_than_minutes is None else timedelta(minutes=older_than_minutes)
        return reconcile(user=self.user, db=self.db, older_than=older)

    def apply_policy(self) -> list:
        from payops.refunds import apply_policy

        return apply_policy(user=self.user, db=self.db)

    def request(self, payment, *, reason, amount=None, note=None) -> Mapping[str, Any]:
        from payops.refunds import request

        return request(payment, reason=reason, amount=_minor(payment, amount, self.db), note=note,
                       requested_by=self.user, db=self.db)

    def import_rows(self, rows) -> list[dict]:
        from payops.refunds import import_records

        return [_line(line) for line in import_records(list(rows), user=self.user, db=self.db)]

    def set_booking_status(self, booking_id, status, *, note=None) -> dict:
        from payops.bookings import set_status

        return set_status(booking_id, status, user=self.user, note=note, db=self.db)


class RemoteActions:
    """Team mode: every change is a call to ``payops serve`` with the user's hub token.

    ``user`` and ``roles`` are what the service answers for the token (``whoami``), i.e. what
    the hub says; nothing in this process's environment can change them.
    """

    remote = True

    def __init__(self, client: ServiceClient):
        self.client = client
        me = client.whoami()
        self.user = str(me["user"])
        self.roles = tuple(me.get("roles") or ())
        self.groups = tuple(me.get("groups") or ())

    def __repr__(self) -> str:
        return f"RemoteActions(user={self.user!r}, service={self.client.url!r})"

    @staticmethod
    def _results(reply: dict) -> list:
        from payops.refunds import ActionResult

        return [ActionResult(**r) for r in reply["results"]]

    def approve(self, ids, note=None) -> list:
        return self._results(self.client.call("POST", "refunds/approve", {"ids": _ids(ids), "note": note}))

    def reject(self, ids, note) -> list:
        return self._results(self.client.call("POST", "refunds/reject", {"ids": _ids(ids), "note": note}))

    def process(self, ids=None, *, limit=None, dry_run=False) -> list:
        body = {"limit": limit, "dry_run": dry_run, "ids": None if ids is None else _ids(ids)}
        return self._results(self.client.call("POST", "refunds/process", body))

    def reconcile(self, *, older_than_minutes=None) -> list:
        return self._results(self.client.call("POST", "refunds/reconcile", {"older_than_minutes": older_than_minutes}))

    def apply_policy(self) -> list:
        return self._results(self.client.call("POST", "refunds/apply-policy", {}))

    def request(self, payment, *, reason, amount=None, note=None) -> Mapping[str, Any]:
        body = {"payment": payment, "reason": reason, "amount": amount, "note": note}
        return self.client.call("POST", "refunds/request", body)["request"]

    def import_rows(self, rows) -> list[dict]:
        return self.client.call("POST", "refunds/import", {"rows": list(rows)})["results"]

    def set_booking_status(self, booking_id, status, *, note=None) -> dict:
        body = {"booking_id": booking_id, "status": status, "note": note}
        return self.client.call("POST", "bookings/set-status", body)["booking"]


def refund_actions(user: str | None = None, *, db: str | Path | None = None,
                   what: str = "this change") -> RefundActions:
    """The actions for this process's user: local in single-user mode, the service in team mode.

    Args:
        user: single-user mode only: who acts (default ``PAYOPS_USER``). Ignored in team mode,
            where the hub token says who acts.
        db: single-user mode only: the database file.
        what: names the change in the one-line refusal when team mode lacks a token.

    In team mode a process holding the audit key is the writer (payops serve, or its
    operator's jobs) and acts locally; everyone else goes through the service.

    Raises:
        ServiceRequired: team mode without ``PAYOPS_SERVICE_URL`` / ``JUPYTERHUB_API_TOKEN``.
        PermissionDenied: the hub refused the token.
        ServiceUnavailable: the service cannot be reached.
    """
    if team_mode() and audit_key() is None:
        return RemoteActions(ServiceClient.from_env(what=what))
    # single-user mode, or the writer itself (it holds the audit key): the library, here
    return LocalActions(user, db=db)

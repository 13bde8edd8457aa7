"""Provenance before money moves: a request's state must follow from its audit history.

Before the writer sends a request to Stripe it replays the request's audit rows and checks
that (1) the row as stored equals the state that history produces (status, amount,
currency, payment, approvers, requester), and (2) the history holds the approvals the
amount requires, given by people who held the roles at that moment: one by a reviewer or a
senior (or the session rule run by one), and for a LARGE request (by the cumulative amount
on the payment) two by distinct people, neither the requester, one of them a senior.

In team mode the rows that count must carry the writer's MAC (:mod:`payops.audit`): an
approval written by anyone without the audit key does not exist. A request changed outside
the workflow (``UPDATE refund_requests SET status = 'APPROVED', amount = 2500``) fails
(1); a forged approval row fails (2). :func:`check_all` lists every such request for
``payops audit verify``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import duckdb
import orjson

from payops import audit
from payops.authority import roles_for, team_mode
from payops.config import Settings, get_settings
from payops.refunds.model import ENTITY, RefundRequest, load
from payops.refunds.rules import is_large_cumulative

__all__ = ["Provenance", "check", "check_all", "TRACKED", "APPROVERS"]

# The columns whose value must follow from the history.
TRACKED = ("status", "amount", "currency", "payment_intent", "charge", "first_approver", "second_approver",
           "requested_by")
APPROVERS = ("reviewer", "senior")
POLICY = "policy"


@dataclass
class Provenance:
    """What replaying one request's audit history found.

    Attributes:
        request_id: the request.
        ok: its row follows from its history and the history holds the approvals it needs.
        problems: one sentence per problem (empty when ok).
        expected: the state the history produces (the :data:`TRACKED` columns).
        approvals: ``(approver, roles at that moment)`` in order; the session rule counts
            as its runner's.
    """

    request_id: int
    ok: bool
    problems: list[str] = field(default_factory=list)
    expected: dict[str, Any] = field(default_factory=dict)
    approvals: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)

    @property
    def message(self) -> str:
        return f"request {self.request_id}: " + ("follows from its audit history" if self.ok
                                                 else "; ".join(self.problems))


def _json(text: Any) -> dict:
    if text is None:
        return {}
    if isinstance(text, dict):
        return text
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def _history(con: duckdb.DuckDBPyConnection, request_id: int) -> list[tuple]:
    return con.execute(audit.ROW_SQL + " WHERE entity = ? AND entity_id = ? ORDER BY id",
                       [ENTITY, str(int(request_id))]).fetchall()


def _replay(rows: Sequence[tuple], settings: Settings, problems: list[str]) -> tuple[dict, list]:
    state: dict[str, Any] = {}
    approvals: list[tuple[str, tuple[str, ...]]] = []
    for rid, _at, actor, action, _e, _eid, _before, after_text, _note, _prev, _hash in rows:
        after = _json(after_text)
        if action == f"{ENTITY}.create":
            if state:
                problems.append(f"audit row {rid} creates it a second time")
            state = {k: after.get(k) for k in TRACKED}
            state["status"] = after.get("status", "PENDING")
            state["requested_by"] = actor
            continue
        if not state:
            problems.append(f"audit row {rid} ({action}) comes before its creation")
            continue
        if action == f"{ENTITY}.approve" and after.get("status") in ("PENDING", "APPROVED"):
            # who approved is the row's actor (what the writer authenticated), not a field it wrote
            slot = "first_approver" if state.get("first_approver") is None else "second_approver"
            state[slot] = actor
            state["status"] = after["status"]
        else:
            for k in TRACKED:
                if k in after and k not in ("requested_by", "first_approver", "second_approver"):
                    state[k] = after[k]
        if action == f"{ENTITY}.approve" and after.get("status") in ("PENDING", "APPROVED"):
            who = str(after.get("ran_by") or actor) if actor == POLICY else actor
            recorded = after.get("ran_by_roles" if actor == POLICY else "roles")
            roles = tuple(recorded) if isinstance(recorded, list) else roles_for(who, (), settings)
            approvals.append((f"{POLICY} (run by {who})" if actor == POLICY else who, roles))
    return state, approvals


def _needs(large: bool, requester: str | None, approvals: list[tuple[str, tuple[str, ...]]],
           single_user: bool) -> str | None:
    """Why the approvals are not enough (None: they are)."""
    def holder(name: str) -> str:
        return name.split(" (run by ", 1)[1].rstrip(")") if name.startswith(POLICY) else name

    valid = [(n, r) for n, r in approvals if any(x in r for x in APPROVERS)
             and (single_user or holder(n) != requester)]
    if not large:
        return None if valid else "no approval by a reviewer or senior (other than the requester) in its history"
    people = {holder(n) for n, r in valid if not n.startswith(POLICY)}
    seniors = {holder(n) for n, r in valid if not n.startswith(POLICY) and "senior" in r}
    if len(people) >= 2 and seniors:
        return None
    return (f"it is LARGE and its history holds approvals by {', '.join(sorted(people)) or 'nobody'}; "
            "four-eyes needs two different people, neither the requester, one of them a senior")


def check(con: duckdb.DuckDBPyConnection, req: RefundRequest, *, settings: Settings | None = None,
          key: bytes | None = None) -> Provenance:
    """Replay ``req``'s audit history on ``con`` and say whether its current row follows from it.

    Args:
        con: an open connection.
        req: the request as stored now.
        settings: the settings (default: read now).
        key: the audit key; in team mode every row that counts must carry its MAC.
    """
    settings = settings or get_settings()
    problems: list[str] = []
    rows = _history(con, req.id)
    if not rows:
        return Provenance(req.id, False, [f"request {req.id} has no audit history"])
    team = team_mode(settings)
    if team:
        problems += audit.row_problems(con, rows, key)
    state, approvals = _replay(rows, settings, problems)
    stored = {k: getattr(req, k) for k in TRACKED}
    for k in TRACKED:
        if stored[k] != state.get(k):
            problems.append(f"its {k} is {stored[k]!r} but its history says {state.get(k)!r}")
    if req.status in ("APPROVED", "PROCESSING", "PROCESSED"):
        large = is_large_cumulative(con, req, settings.refund_policy)
        missing = _needs(large, state.get("requested_by"), approvals, settings.single_user)
        if missing:
            problems.append(missing)
    return Provenance(req.id, not problems, problems, state, approvals)


def check_all(con: duckdb.DuckDBPyConnection, *, statuses: Iterable[str] | None = None,
              settings: Settings | None = None, key: bytes | None = None) -> list[Provenance]:
    """Every request (of ``statuses``) whose state does not follow from its history."""
    settings = settings or get_settings()
    sql = "SELECT id FROM refund_requests"
    params: list[Any] = []
    if statuses is not None:
        wanted = list(statuses)
        sql += f" WHERE status IN ({', '.join('?' for _ in wanted)})"
        params = wanted
    out = []
    for (rid,) in con.execute(sql + " ORDER BY id", params).fetchall():
        req = load(con, rid)
        if req is None:
            continue
        p = check(con, req, settings=settings, key=key)
        if not p.ok:
            out.append(p)
    return out

"""The append-only audit trail.

Every change payops makes (a refund decision, a booking status, a repair) writes one
``audit_log`` row in the same transaction as the change. No code path updates or deletes
audit rows. Each row carries ``hash`` = SHA-256 over the previous row's hash and this
row's content, so ``payops audit verify`` can name the first row that was altered,
inserted or removed by hand.

Where the writer's audit key is set (:func:`payops.authority.audit_key`; always in team
mode, where only ``payops serve`` has it) the hash is keyed: ``h1:`` + HMAC-SHA256 with that
key. Someone who can write the database but lacks the key can neither recompute a keyed row
after editing it nor write a row that passes as the writer's: once the chain holds a keyed
row, every later row must be keyed. In team mode a process without the key writes no audit
row at all (:class:`~payops.authority.ServiceRequired`), so its change is rolled back.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import duckdb
import orjson
import pyarrow as pa

from payops.db import insert_frame

__all__ = ["Entry", "record", "rows", "row_hash", "list_rows", "verify_chain", "VerifyResult", "GENESIS", "KEYED",
           "seal", "row_problems", "writer_key"]

GENESIS = "0" * 64
KEYED = "h1:"  # prefix of a keyed hash: HMAC-SHA256 with the writer's audit key
_COLUMNS = ("id", "at", "actor", "action", "entity", "entity_id", "before", "after", "note", "prev_hash", "hash")


def _canon(value: Any) -> str | None:
    if value is None:
        return None
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS, default=str).decode()


def row_hash(prev_hash: str, id: int, at: datetime, actor: str, action: str, entity: str,
             entity_id: str | None, before: str | None, after: str | None, note: str | None,
             *, key: bytes | None = None) -> str:
    """The chained hash of one audit row (``before``/``after`` as stored JSON text).

    With ``key`` (the writer's audit key): ``h1:`` + HMAC-SHA256, which nobody without the
    key can recompute; without: plain SHA-256 (single-user mode without a key).
    """
    at_utc = at.astimezone(UTC).isoformat(timespec="microseconds")
    payload = orjson.dumps([prev_hash, id, at_utc, actor, action, entity, entity_id, before, after, note])
    if key is not None:
        return KEYED + hmac.new(key, payload, hashlib.sha256).hexdigest()
    return hashlib.sha256(payload).hexdigest()


def writer_key() -> bytes | None:
    """The key this process writes audit rows with; refuses to write in team mode without one."""
    from payops.authority import ServiceRequired, audit_key, team_mode

    key = audit_key()
    if key is None and team_mode():
        raise ServiceRequired("team mode: only payops serve changes the database (it holds the audit key); "
                              "send the change through it (PAYOPS_SERVICE_URL and your hub token)")
    return key


@dataclass(frozen=True)
class Entry:
    """One audit row to append (see :func:`record` for the fields' meaning)."""

    actor: str
    action: str
    entity: str
    entity_id: str | int | None = None
    before: Any = None
    after: Any = None
    note: str | None = None
    at: datetime | None = None


def _chain(con: duckdb.DuckDBPyConnection, entries: Sequence[Entry]) -> list[tuple]:
    """The stored form of ``entries`` (ids, JSON text, hashes), chained to the newest row."""
    ids = sorted(r[0] for r in con.execute("SELECT nextval('audit_log_ids') FROM range(?)",
                                           [len(entries)]).fetchall())
    prev = con.execute("SELECT hash FROM audit_log ORDER BY id DESC LIMIT 1").fetchone()
    prev_hash = prev[0] if prev and prev[0] else GENESIS
    key = writer_key()
    now = datetime.now(UTC)
    out = []
    for new_id, e in zip(ids, entries, strict=True):
        at = (e.at or now).astimezone(UTC)
        b, a = _canon(e.before), _canon(e.after)
        eid = None if e.entity_id is None else str(e.entity_id)
        h = row_hash(prev_hash, new_id, at, e.actor, e.action, e.entity, eid, b, a, e.note, key=key)
        out.append((new_id, at, e.actor, e.action, e.entity, eid, b, a, e.note, prev_hash, h))
        prev_hash = h
    return out


def rows(con: duckdb.DuckDBPyConnection, entries: Iterable[Entry]) -> list[int]:
    """Append many audit rows on ``con`` (inside the caller's transaction), in the given order.

    The batch form of :func:`record`: one hash chain, one INSERT, so a generator of a
    million payments (the demo) does not pay two queries per row. Returns the new ids.
    """
    batch = list(entries)
    if not batch:
        writer_key()  # a writer without rows to add must still be the writer
        return []
    stored = _chain(con, batch)
    if len(stored) == 1:
        names = ", ".join(f'"{c}"' for c in _COLUMNS)
        con.execute(f"INSERT INTO audit_log ({names}) VALUES ({', '.join('?' for _ in _COLUMNS)})", list(stored[0]))
        return [stored[0][0]]
    cols = list(zip(*stored, strict=True))
    arrays = [pa.array(cols[0], pa.int64()), pa.array(cols[1], pa.timestamp("us", tz="UTC"))]
    arrays += [pa.array(c, pa.string()) for c in cols[2:]]
    insert_frame(con, "audit_log", pa.Table.from_arrays(arrays, names=list(_COLUMNS)))
    return list(cols[0])


def record(
    con: duckdb.DuckDBPyConnection,
    *,
    actor: str,
    action: str,
    entity: str,
    entity_id: str | int | None = None,
    before: Any = None,
    after: Any = None,
    note: str | None = None,
    at: datetime | None = None,
) -> int:
    """Append one audit row on ``con`` (inside the caller's transaction); returns its id.

    Args:
        actor: who did it (a user name, ``policy``, ``sync``, ``system``).
        action: what was done, e.g. ``refund_request.approve``.
        entity: the kind of thing changed, e.g. ``refund_request``.
        entity_id: which one.
        before: its state before (any JSON-able value), or None.
        after: its state after, or None.
        note: free text from the person acting.
        at: when; default now (UTC).
    """
    return rows(con, [Entry(actor, action, entity, entity_id, before, after, note, at)])[0]


def list_rows(
    *,
    entity: str | None = None,
    entity_id: str | None = None,
    since: datetime | None = None,
    actor: str | None = None,
    limit: int | None = 200,
    db=None,
):
    """Audit rows, newest first, as a DataFrame (filters are optional).

    Args:
        entity: only this kind of entity (``refund_request``, ``booking``, ...).
        entity_id: only this entity.
        since: only rows at or after this moment.
        actor: only rows by this actor.
        limit: at most this many rows (None: all).
    """
    from payops.db import query

    where: list[str] = []
    params: list[Any] = []
    for column, value in (("entity", entity), ("entity_id", entity_id), ("actor", actor)):
        if value is not None:
            where.append(f"{column} = ?")
            params.append(str(value))
    if since is not None:
        where.append('"at" >= ?')
        params.append(since)
    sql = 'SELECT id, "at", actor, action, entity, entity_id, "before", after, note FROM audit_log'
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY id DESC"
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    return query(sql, params or None, db=db)


@dataclass
class VerifyResult:
    """What :func:`verify_chain` found.

    Attributes:
        ok: the chain is intact.
        rows: audit rows checked.
        problem: ``None``, ``"altered"``, ``"inserted"`` or ``"removed"``.
        row_id: the row named by the problem (for ``"removed"``: the first missing id).
        message: one line for a person.
    """

    ok: bool
    rows: int
    problem: str | None = None
    row_id: int | None = None
    message: str = ""


class KeyNeeded(Exception):
    """A keyed row cannot be checked without the writer's audit key."""


def _content_ok(row: tuple, key: bytes | None, keyed_before: bool) -> bool:
    """Whether the row's hash matches its content; once the chain is keyed, only a keyed hash does."""
    rid, at, actor, action, entity, eid, before, after, note, prev_hash, h = row
    if not h or prev_hash is None:
        return False
    if h.startswith(KEYED):
        if key is None:
            raise KeyNeeded(rid)
        expected = row_hash(prev_hash, rid, at, actor, action, entity, eid, before, after, note, key=key)
        return hmac.compare_digest(expected, h)
    if keyed_before:
        return False  # written without the writer's key after the writer took over
    return row_hash(prev_hash, rid, at, actor, action, entity, eid, before, after, note) == h


ROW_SQL = ('SELECT id, "at", actor, action, entity, entity_id, CAST("before" AS VARCHAR), '
            "CAST(after AS VARCHAR), note, prev_hash, hash FROM audit_log")


def seal(con: duckdb.DuckDBPyConnection, *, actor: str = "system", note: str | None = None) -> int | None:
    """Anchor the chain with a keyed row if its newest row is not keyed (the writer taking over).

    Every row before a keyed row is then covered by the writer's MAC, so none can be added,
    edited or removed without breaking it; a chain that is already keyed is left as it is.
    Returns the new row's id, or None. Needs the audit key.
    """
    from payops.authority import require_audit_key

    require_audit_key()
    newest = con.execute("SELECT hash FROM audit_log ORDER BY id DESC LIMIT 1").fetchone()
    if newest and newest[0] and str(newest[0]).startswith(KEYED):
        return None
    return record(con, actor=actor, action="audit.seal", entity="audit_log",
                  note=note or "the writer's key anchors every row before this one")


def row_problems(con: duckdb.DuckDBPyConnection, rows: Iterable[tuple], key: bytes | None) -> list[str]:
    """Why some of ``rows`` (as :data:`ROW_SQL` selects them) cannot count as the writer's.

    A keyed row must carry a valid MAC; a plain row counts only if it comes before the
    chain's first keyed row (anchored by it). Without a key nothing keyed can be checked.
    """
    found = con.execute(f"SELECT min(id) FROM audit_log WHERE hash LIKE '{KEYED}%'").fetchone()
    first = found[0] if found else None
    out = []
    for row in rows:
        rid, h = row[0], row[10] or ""
        if h.startswith(KEYED):
            if key is None:
                out.append(f"audit row {rid} cannot be checked without the writer's audit key")
            elif not _content_ok(row, key, True):
                out.append(f"audit row {rid} does not carry the writer's MAC (written or edited by hand)")
        elif first is None:
            out.append(f"audit row {rid} is not anchored by the writer's key (payops serve has not sealed the chain)")
        elif rid > first:
            out.append(f"audit row {rid} was not written by the writer (it has no MAC)")
    return out


def verify_chain(db=None, *, key: bytes | None = None, con: duckdb.DuckDBPyConnection | None = None) -> VerifyResult:
    """Recompute the audit hash chain in id order and name the first row that breaks it.

    A row whose stored hash does not match its content was *altered*; a row that does not
    link to its predecessor while the row after it links past it was *inserted*; a missing
    link across a gap in ids means rows were *removed*. Removing the newest rows leaves no
    trace in a hash chain (nothing follows them); every other edit is found. Keyed rows are
    checked with the writer's key (default: this process's, :func:`payops.authority.audit_key`);
    after the first keyed row, a row without a valid MAC counts as altered or inserted.

    Args:
        db: database path (default ``PAYOPS_DB``).
        key: the audit key (default: the one this process has, if any).
        con: an open connection to use instead of opening ``db``.

    Returns:
        The result; ``problem == "key needed"`` when keyed rows exist and no key is at hand.
    """
    from payops.authority import audit_key
    from payops.db import connect

    key = key if key is not None else audit_key()
    if con is None:
        with connect(db) as c:
            rows = c.execute(ROW_SQL + " ORDER BY id").fetchall()
    else:
        rows = con.execute(ROW_SQL + " ORDER BY id").fetchall()
    try:
        return _verify_rows(rows, key)
    except KeyNeeded as exc:
        return VerifyResult(False, len(rows), "key needed", int(str(exc.args[0])),
                            "the chain holds rows keyed by the writer: verify it where its audit key is "
                            "(payops serve; `payops audit verify` asks the service in team mode)")


def _verify_rows(rows: list[tuple], key: bytes | None) -> VerifyResult:
    n = len(rows)
    keyed_before = False
    for i, row in enumerate(rows):
        rid, prev_hash, h = row[0], row[9], row[10]
        expected_prev = rows[i - 1][10] if i else GENESIS
        linked = prev_hash == expected_prev
        content = _content_ok(row, key, keyed_before)
        keyed_before = keyed_before or (bool(h) and str(h).startswith(KEYED) and content)
        if linked and content:
            continue
        nxt = rows[i + 1] if i + 1 < n else None
        if not content:
            # A forged row: the next row still links to what came before it, or it is the last.
            if nxt is not None and nxt[9] == expected_prev and nxt[9] != h:
                return VerifyResult(False, n, "inserted", rid,
                                    f"audit row {rid} was inserted by hand (the chain links past it)")
            if nxt is None and not linked:
                return VerifyResult(False, n, "inserted", rid,
                                    f"audit row {rid} was inserted by hand (it does not link to row "
                                    f"{rows[i - 1][0] if i else 'genesis'})")
            return VerifyResult(False, n, "altered", rid,
                                f"audit row {rid} was altered (its hash does not match its content)")
        # The row is self-consistent but does not link to the row before it.
        if i >= 2 and prev_hash == rows[i - 2][10]:
            bad = rows[i - 1][0]
            return VerifyResult(False, n, "inserted", bad,
                                f"audit row {bad} was inserted by hand (row {rid} links past it)")
        if i == 1 and prev_hash == GENESIS:
            bad = rows[0][0]
            return VerifyResult(False, n, "inserted", bad,
                                f"audit row {bad} was inserted by hand (row {rid} links past it)")
        prev_id = rows[i - 1][0] if i else 0
        if rid - prev_id > 1:
            missing = prev_id + 1
            span = f"{missing}" if rid - prev_id == 2 else f"{missing}-{rid - 1}"
            return VerifyResult(False, n, "removed", missing,
                                f"audit row {span} was removed (row {rid} links to a row that is gone)")
        bad = rows[i - 1][0] if i else rid
        return VerifyResult(False, n, "altered", bad,
                            f"audit row {bad} was altered (row {rid} no longer links to it)")
    return VerifyResult(True, n, message=f"audit chain intact: {n:,} rows verified")


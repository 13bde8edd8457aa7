"""Sync checkpoints in ``sync_state``: the only module that reads or writes that table.

Per stream, key ``plan`` is the current backfill (bounds; mode, kind and start time in
``extra``; done when all its windows are), keys ``w-...`` are its windows (bounds, cursor,
done, objects; ``extra.plain`` when the server refused ``created`` filters), and key
``events`` is the incremental cursor (epoch seconds in ``cursor``).
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import duckdb
import orjson

from payops.db import connect
from payops.sync.plan import OVERLAP, Checkpoint, StreamPlan

__all__ = ["load", "upsert", "new_window_key", "begin_plan", "probed", "open_windows", "save_windows",
           "complete_plan", "finish_done_plans", "move_event_cursors", "progress"]

Db = str | Path | None


def new_window_key() -> str:
    return "w-" + uuid.uuid4().hex[:12]


def load(db: Db) -> dict[str, dict[str, Checkpoint]]:
    """Every checkpoint: stream -> key -> :class:`Checkpoint`."""
    state: dict[str, dict[str, Checkpoint]] = {}
    with connect(db) as con:
        rows = con.execute(
            'SELECT stream, "key", window_start, window_end, cursor, done, objects, extra '
            "FROM sync_state").fetchall()
    for stream, key, ws, we, cur, done, objects, extra in rows:
        state.setdefault(stream, {})[key] = Checkpoint(
            ws, we, cur, bool(done), objects or 0, orjson.loads(extra) if extra else {})
    return state


def upsert(con: duckdb.DuckDBPyConnection, stream: str, key: str, *, start: int | None = None,
           end: int | None = None, cursor: str | None = None, done: bool = False, objects: int = 0,
           extra: dict[str, Any] | None = None) -> None:
    """Write one checkpoint row (inside the caller's transaction)."""
    con.execute(
        'INSERT INTO sync_state (stream, "key", window_start, window_end, cursor, done, objects, '
        "extra, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, now()) "
        'ON CONFLICT (stream, "key") DO UPDATE SET window_start = excluded.window_start, '
        "window_end = excluded.window_end, cursor = excluded.cursor, done = excluded.done, "
        "objects = excluded.objects, extra = excluded.extra, updated_at = excluded.updated_at",
        [stream, key, start, end, cursor, done, objects,
         None if extra is None else orjson.dumps(extra).decode()])


def begin_plan(con: duckdb.DuckDBPyConnection, plan: StreamPlan, key: str) -> None:
    """Replace a stream's plan and windows by a new plan of one window, ``key``.

    The window is marked ``probe``: its first request learns whether the server serves
    the filtered list, and :func:`probed` records the answer with that page.
    """
    con.execute("DELETE FROM sync_state WHERE stream = ? AND (\"key\" = 'plan' OR \"key\" LIKE 'w-%')",
                [plan.stream])
    upsert(con, plan.stream, "plan", start=plan.start, end=plan.end,
           extra={"started": plan.started, "kind": plan.kind, "mode": "windowed"})
    upsert(con, plan.stream, key, start=plan.start, end=plan.end, extra={"probe": True})


def probed(con: duckdb.DuckDBPyConnection, plan: StreamPlan, key: str, verdict: str, note: str) -> None:
    """Record what a plan's first request learnt: ``ok`` (windows), ``refused`` (the server
    refused the created filter: the window becomes the whole list) or ``missing`` (no such
    list: the window goes and the plan is done, without an event cursor)."""
    mode = {"ok": "windowed", "refused": "plain", "missing": "missing"}[verdict]
    if verdict == "ok":
        con.execute('UPDATE sync_state SET extra = NULL WHERE stream = ? AND "key" = ?', [plan.stream, key])
    elif verdict == "refused":
        con.execute("UPDATE sync_state SET extra = ?, window_start = NULL, window_end = NULL "
                    'WHERE stream = ? AND "key" = ?', ['{"plain": true}', plan.stream, key])
    else:
        con.execute('DELETE FROM sync_state WHERE stream = ? AND "key" = ?', [plan.stream, key])
    extra: dict[str, Any] = {"started": plan.started, "kind": plan.kind, "mode": mode}
    if note:
        extra["note"] = note
    con.execute("UPDATE sync_state SET extra = ?, done = ?, updated_at = now() WHERE stream = ? AND \"key\" = 'plan'",
                [orjson.dumps(extra).decode(), verdict == "missing", plan.stream])


def open_windows(rows: dict[str, Checkpoint]) -> list[tuple[str, Checkpoint]]:
    """The unfinished windows among one stream's checkpoints, as ``(key, checkpoint)``."""
    return [(k, r) for k, r in rows.items() if k.startswith("w-") and not r.done]


# (stream, key, cursor, start, end, done, objects) of one page's window
WindowPage = tuple[str, str, str | None, int | None, int | None, bool, int]


def save_windows(con: duckdb.DuckDBPyConnection, pages: list[WindowPage],
                 children: list[tuple[str, str, int, int]]) -> None:
    """Checkpoint windows after their pages, with the windows split off them, in 2 statements.

    Args:
        pages: ``(stream, key, cursor, start, end, done, objects)`` per page, in the order
            fetched; a window's last page gives its checkpoint, ``objects`` add up.
        children: ``(stream, key, start, end)`` of new windows (inserted first: their own
            pages may be in ``pages`` too).
    """
    if children:
        con.execute(
            'INSERT INTO sync_state (stream, "key", window_start, window_end, done, objects, updated_at) VALUES '
            + ", ".join(["(?, ?, ?, ?, false, 0, now())"] * len(children)),
            [x for c in children for x in c])
    latest: dict[tuple[str, str], list[Any]] = {}
    for stream, key, cursor, start, end, done, objects in pages:
        prev = latest.get((stream, key))
        latest[(stream, key)] = [stream, key, cursor, start, end, done, objects + (prev[6] if prev else 0)]
    if not latest:
        return
    con.execute(
        "UPDATE sync_state SET cursor = u.cursor, window_start = u.ws, window_end = u.we, done = u.done, "
        "objects = sync_state.objects + u.n, updated_at = now() FROM (VALUES "
        + ", ".join(["(?, ?, ?, ?::BIGINT, ?::BIGINT, ?::BOOLEAN, ?::BIGINT)"] * len(latest))
        + ') AS u(stream, "key", cursor, ws, we, done, n) '
        'WHERE sync_state.stream = u.stream AND sync_state."key" = u."key"',
        [x for row in latest.values() for x in row])


def complete_plan(con: duckdb.DuckDBPyConnection, stream: str, started: int, kind: str) -> None:
    """Mark the stream's backfill done and start its event cursor where the backfill began."""
    con.execute("UPDATE sync_state SET done = true, updated_at = now() "
                "WHERE stream = ? AND \"key\" = 'plan'", [stream])
    cursor = int(started) - OVERLAP
    row = con.execute("SELECT objects FROM sync_state WHERE stream = ? AND \"key\" = 'events'",
                      [stream]).fetchone()
    upsert(con, stream, "events", end=cursor, cursor=str(cursor), done=True,
           objects=row[0] if row else 0, extra={"set_by": kind})


def finish_done_plans(con: duckdb.DuckDBPyConnection, plans: list[StreamPlan]) -> list[str]:
    """:func:`complete_plan` for each plan none of whose windows is open; returns their streams."""
    if not plans:
        return []
    rows = con.execute(
        "SELECT stream FROM sync_state WHERE \"key\" LIKE 'w-%' AND stream IN ("
        + ", ".join("?" * len(plans)) + ") GROUP BY stream HAVING bool_and(done)",
        [p.stream for p in plans]).fetchall()
    finished = {r[0] for r in rows}
    for plan in plans:
        if plan.stream in finished:
            complete_plan(con, plan.stream, plan.started, plan.kind)
    return sorted(finished)


def move_event_cursors(con: duckdb.DuckDBPyConnection, since: dict[str, int], target: int,
                       applied: dict[str, int]) -> None:
    """After an events pass: each stream's cursor to ``target`` (never backwards).

    Args:
        since: stream -> where its events were read from (its cursor when it has none).
        target: the new cursor (the newest event, capped and moved back by the caller).
        applied: stream -> events applied in this pass, added to the row's ``objects``.
    """
    for stream, start in since.items():
        row = con.execute("SELECT objects, cursor FROM sync_state WHERE stream = ? AND \"key\" = 'events'",
                          [stream]).fetchone()
        old = int(row[1]) if row and row[1] else start
        cursor = max(old, target)
        upsert(con, stream, "events", end=cursor, cursor=str(cursor), done=True,
               objects=(row[0] if row else 0) + applied.get(stream, 0), extra={"set_by": "events"})


def progress(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """Per stream: windows, windows done, objects fetched, last update (for ``payops status``)."""
    rows = con.execute(
        "SELECT stream, count(*) FILTER (WHERE key LIKE 'w-%'), "
        "count(*) FILTER (WHERE key LIKE 'w-%' AND done), sum(objects), max(updated_at) "
        "FROM sync_state GROUP BY stream ORDER BY stream").fetchall()
    return [dict(zip(("stream", "windows", "done", "objects", "updated_at"), r, strict=True)) for r in rows]

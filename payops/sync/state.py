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

__all__ = ["load", "upsert", "new_window_key", "begin_plan", "open_windows", "save_window",
           "complete_plan", "finish_if_done", "move_event_cursors", "progress"]

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


def begin_plan(con: duckdb.DuckDBPyConnection, plan: StreamPlan, mode: str,
               note: str = "") -> str | None:
    """Replace a stream's plan and windows by a new plan; returns its first window's key.

    ``mode`` is what the probe learnt: ``windowed`` (one window of the plan's range),
    ``plain`` (one window over the whole list) or ``missing`` (no window: the plan is done).
    """
    con.execute("DELETE FROM sync_state WHERE stream = ? AND (\"key\" = 'plan' OR \"key\" LIKE 'w-%')",
                [plan.stream])
    extra: dict[str, Any] = {"started": plan.started, "kind": plan.kind, "mode": mode}
    if mode == "missing":
        upsert(con, plan.stream, "plan", start=plan.start, end=plan.end, done=True,
               extra={**extra, "note": note})
        return None
    upsert(con, plan.stream, "plan", start=plan.start, end=plan.end, extra=extra)
    key = new_window_key()
    if mode == "plain":
        upsert(con, plan.stream, key, extra={"plain": True})
    else:
        upsert(con, plan.stream, key, start=plan.start, end=plan.end)
    return key


def open_windows(rows: dict[str, Checkpoint]) -> list[tuple[str, Checkpoint]]:
    """The unfinished windows among one stream's checkpoints, as ``(key, checkpoint)``."""
    return [(k, r) for k, r in rows.items() if k.startswith("w-") and not r.done]


def save_window(con: duckdb.DuckDBPyConnection, stream: str, key: str, *, cursor: str | None,
                start: int | None, end: int | None, done: bool, objects: int,
                children: list[tuple[str, int, int]]) -> None:
    """Checkpoint a window after a page (``objects`` more), with the windows split off it."""
    con.execute(
        'UPDATE sync_state SET cursor = ?, window_start = ?, window_end = ?, done = ?, '
        'objects = objects + ?, updated_at = now() WHERE stream = ? AND "key" = ?',
        [cursor, start, end, done, objects, stream, key])
    for child, lo, hi in children:
        upsert(con, stream, child, start=lo, end=hi)


def complete_plan(con: duckdb.DuckDBPyConnection, stream: str, started: int, kind: str) -> None:
    """Mark the stream's backfill done and start its event cursor where the backfill began."""
    con.execute("UPDATE sync_state SET done = true, updated_at = now() "
                "WHERE stream = ? AND \"key\" = 'plan'", [stream])
    cursor = int(started) - OVERLAP
    row = con.execute("SELECT objects FROM sync_state WHERE stream = ? AND \"key\" = 'events'",
                      [stream]).fetchone()
    upsert(con, stream, "events", end=cursor, cursor=str(cursor), done=True,
           objects=row[0] if row else 0, extra={"set_by": kind})


def finish_if_done(con: duckdb.DuckDBPyConnection, plan: StreamPlan) -> bool:
    """:func:`complete_plan` when none of the stream's windows is open; says whether it did."""
    (n_open,) = con.execute(
        "SELECT count(*) FROM sync_state WHERE stream = ? AND \"key\" LIKE 'w-%' AND NOT done",
        [plan.stream]).fetchone() or (0,)
    if n_open:
        return False
    complete_plan(con, plan.stream, plan.started, plan.kind)
    return True


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

"""What a sync does, decided without I/O: the per-stream plan and the window-split policy.

:func:`plan_streams` turns the selected streams, their checkpoints, ``--full``/``--since``
and the clock into a :class:`SyncPlan`: which streams are backfilled (or re-listed, or
resumed) and which read events since which moment. :func:`split_window` decides how a
window of ``created`` that showed more objects splits, so idle workers get work without
knowing the account's size in advance. Both are pure functions of their arguments.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from payops.errors import InvalidInput
from payops.streams import EVENT_TYPES, MAX_TYPES

__all__ = ["Checkpoint", "StreamPlan", "SyncPlan", "plan_streams", "split_window", "pieces",
           "page_order", "type_chunks", "parse_since", "default_workers", "EPOCH0", "RETENTION", "LAG", "OVERLAP",
           "BT_LOOKBACK"]

EPOCH0 = 1_262_304_000          # 2010-01-01: nothing in Stripe is older
RETENTION = 30 * 86400          # Stripe keeps events 30 days
RETENTION_MARGIN = 3600         # treat a cursor this close to the edge as already lost
LAG = 180                       # the cursor never passes now - LAG (events appear late)
OVERLAP = 300                   # ... and is moved back by OVERLAP (re-read, deduplicated)
BT_LOOKBACK = 7 * 86400         # balance transactions re-listed per incremental run
PAGES_PER_PIECE = 32            # target size of the window next to a split point, in pages
MAX_PIECES = 8
GROWTH = 4                      # each piece further from the split point is 4x wider
MIN_SPAN = 60                   # seconds: no window is cut narrower
SLOW_REQUEST = 0.5              # seconds a list page may take (Stripe: 0.2-0.5 s for 100 objects)


@dataclass(frozen=True)
class Checkpoint:
    """One ``sync_state`` row: a stream's plan, one of its windows, or its event cursor."""

    start: int | None = None
    end: int | None = None
    cursor: str | None = None
    done: bool = False
    objects: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class StreamPlan:
    """The backfill (or re-list) of one stream: its ``created`` range and where it stands."""

    stream: str
    kind: str                   # "backfill" or "relist"
    start: int | None
    end: int | None
    started: int                # when it began: its event cursor starts there
    resume: bool = False        # an unfinished plan from an earlier run: continue its windows


@dataclass
class SyncPlan:
    """Everything one run does, per stream."""

    mode: str
    backfills: dict[str, StreamPlan] = field(default_factory=dict)
    incremental: dict[str, int] = field(default_factory=dict)  # stream -> events since (epoch)
    how: dict[str, str] = field(default_factory=dict)          # stream -> what the summary says
    notes: list[str] = field(default_factory=list)


def parse_since(value: Any) -> int | None:
    """``--since``: a date, datetime, ``YYYY-MM-DD[THH:MM]`` string or epoch seconds -> epoch."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise InvalidInput(f"--since must be a date, got {value!r}")
    if isinstance(value, (int, float)):
        return int(value)
    if isinstance(value, datetime):
        dt = value if value.tzinfo else value.replace(tzinfo=UTC)
        return int(dt.timestamp())
    if isinstance(value, date):
        return int(datetime(value.year, value.month, value.day, tzinfo=UTC).timestamp())
    try:
        return parse_since(datetime.fromisoformat(str(value)))
    except ValueError:
        raise InvalidInput(f"--since must be a date like 2026-01-31, got {value!r}") from None


def _event_cursor(rows: dict[str, Checkpoint]) -> int | None:
    cur = rows.get("events")
    return int(cur.cursor) if cur is not None and cur.cursor else None


def _interrupted_runs(state: dict[str, dict[str, Checkpoint]], selected: list[str]) -> set[Any]:
    """When the unfinished backfills among ``selected`` began: the runs being resumed."""
    return {r.extra.get("started") for s in selected
            if (r := state.get(s, {}).get("plan")) is not None and not r.done}


def _plan_one(plan: SyncPlan, stream: str, rows: dict[str, Checkpoint], *, full: bool,
              since: int | None, now: int, resuming: Collection[Any] = ()) -> None:
    unfinished = rows.get("plan")
    if unfinished is not None and not unfinished.done:
        kind = unfinished.extra.get("kind", "backfill")
        plan.backfills[stream] = StreamPlan(stream, kind, unfinished.start, unfinished.end,
                                            unfinished.extra.get("started", now), resume=True)
        plan.how[stream] = f"{kind} (resumed)"
        plan.notes.append(f"{stream}: resumed an unfinished {kind}")
        return
    if full and unfinished is not None and unfinished.extra.get("started") in resuming:
        # finished by the interrupted run this one resumes: finishing that run does not
        # list it again (its events since then are read by the next incremental run)
        plan.how[stream] = f"{unfinished.extra.get('kind', 'backfill')} (done before the interruption)"
        return
    cursor = _event_cursor(rows)
    if full or cursor is None:
        plan.backfills[stream] = StreamPlan(stream, "backfill", since or EPOCH0, now + 1, now)
        plan.how[stream] = "backfill"
        return
    if not EVENT_TYPES[stream]:
        start = min(cursor, since or cursor) - BT_LOOKBACK
        plan.backfills[stream] = StreamPlan(stream, "relist", start, now + 1, now)
        plan.how[stream] = "relist (no events)"
        return
    start_from = since if since is not None else cursor
    if now - start_from > RETENTION - RETENTION_MARGIN:
        plan.notes.append(
            f"{stream}: the event cursor is {(now - start_from) / 86400:.0f} days old, beyond "
            f"Stripe's 30-day event retention; re-listing the stream "
            f"{'since --since' if since else 'in full'} instead of reading events")
        plan.backfills[stream] = StreamPlan(stream, "relist", since or EPOCH0, now + 1, now)
        plan.how[stream] = "relist (cursor too old)"
        return
    plan.incremental[stream] = start_from


def plan_streams(selected: list[str], state: dict[str, dict[str, Checkpoint]], *, full: bool,
                 since: int | None, now: int) -> SyncPlan:
    """Decide, per stream, between resuming, backfilling, re-listing and reading events.

    - An unfinished plan (a killed backfill) is resumed, whatever else was asked.
    - ``full`` while resuming: a stream whose backfill the interrupted run already finished
      (its plan began at the same moment as an unfinished one) is not listed again.
    - ``full``, or a stream never synced: a backfill of ``[since or 2010, now]``.
    - Balance transactions (no events): re-listed since their cursor minus 7 days.
    - An event cursor older than Stripe's 30-day retention (less a margin): the stream is
      re-listed, in full or since ``since``, never silently skipped.
    - Otherwise: events since ``since`` or the cursor.

    Args:
        selected: the streams of this run.
        state: the ``sync_state`` rows, stream -> key -> :class:`Checkpoint`.
        full: re-list every selected stream.
        since: only objects (or events) created since this epoch.
        now: the current time, epoch seconds.
    """
    plan = SyncPlan(mode="backfill" if full else "incremental")
    resuming = _interrupted_runs(state, selected) if full else set()
    for stream in selected:
        _plan_one(plan, stream, state.get(stream, {}), full=full, since=since, now=now, resuming=resuming)
    if any(p.kind == "backfill" for p in plan.backfills.values()):
        plan.mode = "backfill" if not plan.incremental else "mixed"
    return plan


def default_workers(rate: float) -> int:
    """Enough concurrent requests to use a rate limit of ``rate``/s when each takes up to
    half a second (Little's law: in flight = rate x time), at least 8 and at most 64.

    With fewer, every slow response leaves the limit unused: 8 workers at 25 requests/s
    have 28% to spare at 250 ms a request, and none at 320 ms.
    """
    return max(8, min(64, math.ceil(rate * SLOW_REQUEST)))


def type_chunks(streams: list[str]) -> list[list[str]]:
    """The event types of ``streams``, sorted, in chunks Stripe accepts in one ``types[]``."""
    types = sorted({t for s in streams for t in EVENT_TYPES[s]})
    return [types[i:i + MAX_TYPES] for i in range(0, len(types), MAX_TYPES)]


# --------------------------------------------------------------------------- window split


def page_order(data: list[dict]) -> str | None:
    """``desc`` / ``asc`` when the page itself shows it, else None (never assumed)."""
    created = [c for c in (o.get("created") for o in data) if type(c) is int]
    if len(created) < 2 or len(created) != len(data):
        return None
    if created[0] > created[-1] and all(a >= b for a, b in zip(created, created[1:], strict=False)):
        return "desc"
    if created[0] < created[-1] and all(a <= b for a, b in zip(created, created[1:], strict=False)):
        return "asc"
    return None


def pieces(a: int, b: int, edge: str, span: int, most: int = MAX_PIECES) -> list[tuple[int, int]]:
    """Split ``[a, b)``: pieces of ``span`` next to ``edge`` ("high": b, "low": a), then 4x
    wider at each step away from it; at most ``most`` (the last takes the rest, and a
    rest under half a step joins the piece before it: a sliver would cost a request for
    next to nothing). Pieces are listed from the edge outwards and cover ``[a, b)`` exactly."""
    out: list[tuple[int, int]] = []
    step = max(MIN_SPAN, span)
    most = max(1, most)
    if edge == "high":
        hi = b
        while hi > a:
            lo = a if len(out) == most - 1 or hi - step - a < step // 2 else hi - step
            out.append((lo, hi))
            hi = lo
            if len(out) >= 2:
                step *= GROWTH
    else:
        lo = a
        while lo < b:
            hi = b if len(out) == most - 1 or b - (lo + step) < step // 2 else lo + step
            out.append((lo, hi))
            lo = hi
            if len(out) >= 2:
                step *= GROWTH
    return out


def split_window(start: int | None, end: int | None, data: list[dict], *,
                 pages_per_piece: int = PAGES_PER_PIECE,
                 most: int = MAX_PIECES) -> tuple[int, int, list[tuple[int, int]]] | None:
    """Where a window ``[start, end)`` splits after a page ``data`` that showed more.

    The page shows the list's order and how much time a page covers. What the page (and
    the ones before it) has not covered yet is cut into at most ``most`` :func:`pieces`,
    the one next to the page ``pages_per_piece`` pages wide (as far as this page tells):
    that piece stays with the window, which keeps its cursor and pages on without a wasted
    request; the others become new windows. Asking for no more pieces than windows are
    wanted keeps windows few, and each window costs one partial page at its end.

    Returns:
        ``(new_start, new_end, children)``, or None when the page does not show its order,
        the window is unbounded on the side to split, or what is left is one piece.
    """
    order = page_order(data)
    if order is None:
        return None
    first, last = data[0]["created"], data[-1]["created"]
    span = pages_per_piece * (abs(first - last) + 1)
    if order == "desc":
        # everything created after `last` has been read; ties at `last` follow the cursor
        if start is None or last <= start:
            return None
        cut = pieces(start, last + 1, "high", span, most)
        if len(cut) < 2:
            return None
        return cut[0][0], last + 1, cut[1:]
    if end is None or last + 1 >= end:
        return None
    cut = pieces(last, end, "low", span, most)
    if len(cut) < 2:
        return None
    return last, cut[0][1], cut[1:]

"""Stripe -> DuckDB sync: a parallel, resumable backfill and an incremental pass over events.

**Backfill** (``run(full=True)``, or the first run of a stream): each stream's ``created``
range is one window at first; worker threads fetch pages under the shared rate limiter of
:mod:`payops.stripe_api`. When a page shows that a window holds more, and there are fewer
open windows than ``workers + 4``, the part of the window the page has not covered yet is
split into new windows (small next to the page, 4x wider each step away from it), so
all workers stay busy without knowing the account's size in advance. The list order is
read from each page (newest or oldest first), never assumed; a page of unknown order
just keeps paging. One writer thread owns the database: it commits each page's rows
together with its window's checkpoint (cursor, bounds, new windows) in one transaction, so
a sync killed at any moment resumes from ``sync_state`` with no gap and no duplicate. The
queue between workers and writer is bounded: memory stays flat whatever the account size.

**Incremental** (``run()``): ``/v1/events`` since the stream's cursor, with ``types[]`` for
the streams' event types; each event is stored once (``events`` primary key) and its
object applied newer-wins by :mod:`payops.ingest`. The cursor moves to the newest event
seen, never later than ``now - LAG``, minus ``OVERLAP`` so late-visible events are read
again (harmlessly). A cursor older than Stripe's 30-day event retention cannot be served
by events: the stream is re-listed **in full** (objects created before the gap may have
changed in it, e.g. a charge refunded weeks later, and only a full list sees that), and
the run says so. Balance transactions have no events: each incremental run re-lists the
ones created since ``cursor - BT_LOOKBACK`` (7 days; covers pending -> available).

**Servers that refuse filters** (localstripe): the first request of a stream tells.
A refused ``created`` filter -> that stream is paged whole, with a guard against servers
that answer an unknown ``starting_after`` with the first page again; refused ``types[]``
-> the events list is read unfiltered and filtered here; a missing endpoint -> the stream
is skipped. Each fallback is listed in the summary.

State (``sync_state``), per stream: key ``plan`` (the current backfill: bounds, mode,
start time in ``extra``; done when all its windows are), keys ``w-...`` (one row per
window: bounds, cursor, done, objects) and key ``events`` (the incremental cursor, epoch
seconds in ``cursor``).
"""

from __future__ import annotations

import queue
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import orjson

from payops.audit import record
from payops.db import connect, transaction
from payops.errors import InvalidInput
from payops.ingest import IngestSummary, ingest_into
from payops.refunds import sync_refund_failures
from payops.stripe_api import StripeAPI, get_client, window_params

__all__ = ["run", "SyncSummary", "STREAMS", "STREAM_OBJECTS", "EVENT_TYPES", "parse_since"]

STREAMS = ("customers", "payment_intents", "charges", "refunds", "balance_transactions",
           "disputes", "payouts")
STREAM_OBJECTS = {
    "customers": "customer", "payment_intents": "payment_intent", "charges": "charge",
    "refunds": "refund", "balance_transactions": "balance_transaction", "disputes": "dispute",
    "payouts": "payout",
}
# Event types whose data.object belongs to each stream (balance transactions have none).
EVENT_TYPES: dict[str, tuple[str, ...]] = {
    "customers": ("customer.created", "customer.updated", "customer.deleted"),
    "payment_intents": tuple(f"payment_intent.{t}" for t in (
        "created", "succeeded", "payment_failed", "canceled", "processing", "requires_action",
        "amount_capturable_updated", "partially_funded")),
    "charges": tuple(f"charge.{t}" for t in (
        "succeeded", "failed", "refunded", "captured", "updated", "expired", "pending")),
    "refunds": ("refund.created", "refund.updated", "refund.failed", "charge.refund.updated"),
    "balance_transactions": (),
    "disputes": tuple(f"charge.dispute.{t}" for t in (
        "created", "updated", "closed", "funds_withdrawn", "funds_reinstated")),
    "payouts": tuple(f"payout.{t}" for t in (
        "created", "updated", "paid", "failed", "canceled", "reconciliation_completed")),
}

EPOCH0 = 1_262_304_000          # 2010-01-01: nothing in Stripe is older
RETENTION = 30 * 86400          # Stripe keeps events 30 days
RETENTION_MARGIN = 3600         # treat a cursor this close to the edge as already lost
LAG = 180                       # the cursor never passes now - LAG (events appear late)
OVERLAP = 300                   # ... and is moved back by OVERLAP (re-read, deduplicated)
BT_LOOKBACK = 7 * 86400         # balance transactions re-listed per incremental run
MAX_TYPES = 20                  # Stripe accepts at most 20 types[] per request
PAGES_PER_PIECE = 8             # target size of the window next to a split point
MAX_PIECES = 8
GROWTH = 4                      # each piece further from the split point is 4x wider
MIN_SPAN = 60
BATCH_SECONDS = 0.5             # the writer commits at most every half second ...
BATCH_PAGES = 40                # ... or every 40 pages


# --------------------------------------------------------------------------- summary


@dataclass
class SyncSummary:
    """What one sync did. ``print(summary)`` shows the table; ``as_dict()`` for JSON."""

    mode: str = "incremental"
    streams: dict[str, dict[str, Any]] = field(default_factory=dict)
    events_new: int = 0
    events_duplicate: int = 0
    requests: int = 0
    rate_limited: int = 0
    retries: int = 0
    elapsed: float = 0.0
    fallbacks: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def stream(self, name: str) -> dict[str, Any]:
        return self.streams.setdefault(name, {"new": 0, "updated": 0, "unchanged": 0,
                                              "pages": 0, "how": ""})

    def add_ingest(self, s: IngestSummary) -> None:
        for table, counts in s.tables.items():
            row = self.stream(table)
            for k in ("new", "updated", "unchanged"):
                row[k] += counts.get(k, 0)
        self.events_new += s.events_new
        self.events_duplicate += s.events_duplicate

    @property
    def new(self) -> int:
        return sum(r["new"] for r in self.streams.values())

    @property
    def updated(self) -> int:
        return sum(r["updated"] for r in self.streams.values())

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in (
            "mode", "streams", "events_new", "events_duplicate", "requests", "rate_limited",
            "retries", "elapsed", "fallbacks", "notes")}

    def table(self) -> str:
        """The summary as a plain-text table."""
        lines = [f"{'stream':<22}{'new':>9}{'updated':>9}{'unchanged':>11}{'pages':>7}  how"]
        for name in STREAMS:
            if name not in self.streams:
                continue
            r = self.streams[name]
            lines.append(f"{name:<22}{r['new']:>9,}{r['updated']:>9,}{r['unchanged']:>11,}"
                         f"{r['pages']:>7,}  {r['how']}")
        lines.append(f"events: {self.events_new:,} new, {self.events_duplicate:,} already seen")
        lines.append(f"requests {self.requests:,}, 429s {self.rate_limited:,}, retries "
                     f"{self.retries:,}, elapsed {self.elapsed:.1f} s")
        for f in self.fallbacks:
            lines.append(f"fallback: {f}")
        for n in self.notes:
            lines.append(f"note: {n}")
        return "\n".join(lines)

    __str__ = table

    def _repr_html_(self) -> str:  # notebooks
        import html
        return f"<pre>{html.escape(self.table())}</pre>"


# --------------------------------------------------------------------------- helpers


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


def _check_streams(streams: Any) -> list[str]:
    if streams is None:
        return list(STREAMS)
    if isinstance(streams, str):
        streams = [s for s in streams.split(",") if s.strip()]
    out = []
    for s in streams:
        s = s.strip()
        if s not in STREAMS:
            raise InvalidInput(f"unknown stream {s!r} (streams: {', '.join(STREAMS)})")
        if s not in out:
            out.append(s)
    if not out:
        raise InvalidInput(f"no stream given (streams: {', '.join(STREAMS)})")
    return out


def _order(data: list[dict]) -> str | None:
    """``desc`` / ``asc`` when the page itself shows it, else None."""
    created = [o.get("created") for o in data]
    if len(created) < 2 or not all(type(c) is int for c in created):
        return None
    if created[0] > created[-1] and all(a >= b for a, b in zip(created, created[1:], strict=False)):
        return "desc"
    if created[0] < created[-1] and all(a <= b for a, b in zip(created, created[1:], strict=False)):
        return "asc"
    return None


def _pieces(a: int, b: int, edge: str, span: int) -> list[tuple[int, int]]:
    """Split ``[a, b)``: pieces of ``span`` next to ``edge`` ("high": b, "low": a), doubling
    away from it, at most MAX_PIECES (the last takes the rest)."""
    out: list[tuple[int, int]] = []
    step = max(MIN_SPAN, span)
    if edge == "high":
        hi = b
        while hi > a:
            lo = a if len(out) == MAX_PIECES - 1 else max(a, hi - step)
            out.append((lo, hi))
            hi = lo
            if len(out) >= 2:
                step *= GROWTH
    else:
        lo = a
        while lo < b:
            hi = b if len(out) == MAX_PIECES - 1 else min(b, lo + step)
            out.append((lo, hi))
            lo = hi
            if len(out) >= 2:
                step *= GROWTH
    return out


def _new_key() -> str:
    return "w-" + uuid.uuid4().hex[:12]


@dataclass
class _Window:
    stream: str
    key: str
    start: int | None
    end: int | None
    cursor: str | None = None
    plain: bool = False
    seen: set | None = None


@dataclass
class _Page:
    stream: str
    key: str
    data: list[dict]
    fetched_at: float
    cursor: str | None
    start: int | None
    end: int | None
    done: bool
    children: list[_Window]


def _load_state(db) -> dict[str, dict[str, dict]]:
    state: dict[str, dict[str, dict]] = {}
    with connect(db) as con:
        rows = con.execute(
            'SELECT stream, "key", window_start, window_end, cursor, done, objects, extra '
            "FROM sync_state").fetchall()
    for stream, key, ws, we, cur, done, objects, extra in rows:
        state.setdefault(stream, {})[key] = {
            "start": ws, "end": we, "cursor": cur, "done": done, "objects": objects,
            "extra": orjson.loads(extra) if extra else {}}
    return state


def _upsert_state(con, stream: str, key: str, *, start=None, end=None, cursor=None,
                  done=False, objects=0, extra=None) -> None:
    con.execute(
        'INSERT INTO sync_state (stream, "key", window_start, window_end, cursor, done, objects, '
        "extra, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, now()) "
        'ON CONFLICT (stream, "key") DO UPDATE SET window_start = excluded.window_start, '
        "window_end = excluded.window_end, cursor = excluded.cursor, done = excluded.done, "
        "objects = excluded.objects, extra = excluded.extra, updated_at = excluded.updated_at",
        [stream, key, start, end, cursor, done, objects,
         None if extra is None else orjson.dumps(extra).decode()])


# --------------------------------------------------------------------------- backfill engine


class _Backfill:
    """Workers fetch pages of open windows; one writer commits pages with checkpoints."""

    def __init__(self, api: StripeAPI, db, workers: int, summary: SyncSummary,
                 plans: dict[str, dict], bars: dict[str, Any]):
        self.api, self.db, self.workers, self.summary = api, db, max(1, workers), summary
        self.plans = plans  # stream -> {"started": int, ...}
        self.bars = bars
        self.windows: queue.Queue = queue.Queue()
        self.pages: queue.Queue = queue.Queue(maxsize=max(64, 6 * self.workers))
        self.lock = threading.Lock()
        self.open = 0
        self.stop = threading.Event()
        self.error: BaseException | None = None

    def run(self, windows: list[_Window]) -> None:
        if not windows:
            return
        self.open = len(windows)
        for w in windows:
            self.windows.put(w)
        writer = threading.Thread(target=self._writer, name="payops-sync-writer", daemon=True)
        writer.start()
        threads = [threading.Thread(target=self._worker, name=f"payops-sync-{i}", daemon=True)
                   for i in range(self.workers)]
        for t in threads:
            t.start()
        try:
            for t in threads:
                while t.is_alive():
                    t.join(0.2)
        except KeyboardInterrupt:
            self.stop.set()
            for t in threads:
                t.join()
            raise
        finally:
            while writer.is_alive():
                try:
                    self.pages.put(None, timeout=0.2)
                    break
                except queue.Full:
                    continue
            while writer.is_alive():
                writer.join(0.2)
        if self.error is not None:
            raise self.error

    def _fail(self, exc: BaseException) -> None:
        with self.lock:
            if self.error is None:
                self.error = exc
        self.stop.set()

    def _worker(self) -> None:
        otypes = STREAM_OBJECTS
        while not self.stop.is_set():
            try:
                w = self.windows.get(timeout=0.1)
            except queue.Empty:
                continue
            if w is None:
                return
            try:
                # versioned by when the request left: an event created after that may be
                # newer than what the page shows, and must win
                asked_at = time.time()
                page = self.api.list_window_page(
                    otypes[w.stream], None if w.plain else w.start, None if w.plain else w.end,
                    w.cursor)
                result = self._advance(w, page, asked_at)
            except BaseException as exc:  # noqa: BLE001 - handed to the main thread
                self._fail(exc)
                return
            while not self.stop.is_set():
                try:
                    self.pages.put(result, timeout=0.2)
                    break
                except queue.Full:
                    continue
            else:
                return
            with self.lock:
                self.open += len(result.children) - (1 if result.done else 0)
                finished = self.open == 0
            if not result.done:
                self.windows.put(w)
            for c in result.children:
                self.windows.put(c)
            if finished:
                for _ in range(self.workers):
                    self.windows.put(None)

    def _advance(self, w: _Window, page: dict, fetched_at: float) -> _Page:
        data, has_more = page["data"], page["has_more"]
        children: list[_Window] = []
        if w.plain:
            # Guard: a server that ignores an unknown starting_after repeats a page forever.
            fresh = [o for o in data if o.get("id") not in w.seen]
            w.seen.update(o.get("id") for o in data)
            done = not has_more or not fresh
            if data:
                w.cursor = data[-1]["id"]
            data = fresh
        else:
            done = not has_more or not data
            if data:
                w.cursor = data[-1]["id"]
            if not done and self._want_split():
                order = _order(data)
                first, last = (data[0]["created"], data[-1]["created"]) if order else (0, 0)
                span = PAGES_PER_PIECE * (abs(first - last) + 1)
                if order == "desc" and w.start is not None and last > w.start:
                    # The page covered [last, end): what is older than `last` becomes new
                    # windows; this one keeps only the ties at `last` after its cursor.
                    children = [_Window(w.stream, _new_key(), a, b)
                                for a, b in _pieces(w.start, last, "high", span)]
                    w.start = last
                elif order == "asc" and w.end is not None and last + 1 < w.end:
                    children = [_Window(w.stream, _new_key(), a, b)
                                for a, b in _pieces(last + 1, w.end, "low", span)]
                    w.end = last + 1
        return _Page(w.stream, w.key, data, fetched_at, w.cursor, w.start, w.end, done, children)

    def _want_split(self) -> bool:
        with self.lock:
            # Enough open windows keep every worker busy; more would only add partial pages.
            return self.open < self.workers + 4

    def _writer(self) -> None:
        stopping = False
        while not stopping:
            item = self.pages.get()
            if item is None:
                return
            batch = [item]
            # Group commit: pages arriving within BATCH_SECONDS go in one transaction (each
            # page's rows still commit with its own checkpoint, never apart from it). An
            # upsert costs about the same for 100 rows as for 3,000, so fewer, larger ones
            # keep the single writer ahead of the workers.
            deadline = time.monotonic() + BATCH_SECONDS
            while len(batch) < BATCH_PAGES:
                try:
                    nxt = self.pages.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if nxt is None:
                    stopping = True
                    break
                batch.append(nxt)
            try:
                self._write(batch)
            except BaseException as exc:  # noqa: BLE001 - workers see `stop` and exit
                self._fail(exc)
                return

    def _write(self, batch: list[_Page]) -> None:
        touched: set[str] = set()
        objects = [o for p in batch for o in p.data]
        with connect(self.db) as con, transaction(con):
            # One upsert for the batch, versioned by its earliest fetch: any event created
            # after that moment still wins, so nothing newer is ever masked.
            ing = ingest_into(con, objects, version=min(p.fetched_at for p in batch)) \
                if objects else None
            for p in batch:
                con.execute(
                    'UPDATE sync_state SET cursor = ?, window_start = ?, window_end = ?, done = ?, '
                    'objects = objects + ?, updated_at = now() WHERE stream = ? AND "key" = ?',
                    [p.cursor, p.start, p.end, p.done, len(p.data), p.stream, p.key])
                for c in p.children:
                    _upsert_state(con, c.stream, c.key, start=c.start, end=c.end)
                touched.add(p.stream)
            for stream in touched:
                (n_open,) = con.execute(
                    "SELECT count(*) FROM sync_state WHERE stream = ? AND \"key\" LIKE 'w-%' "
                    "AND NOT done", [stream]).fetchone()
                if n_open == 0:
                    _complete_plan(con, stream, self.plans[stream])
        # counted only once committed
        if ing is not None:
            self.summary.add_ingest(ing)
        for p in batch:
            self.summary.stream(p.stream)["pages"] += 1
            bar = self.bars.get(p.stream)
            if bar is not None:
                bar.update(len(p.data))


def _complete_plan(con, stream: str, plan: dict) -> None:
    """Mark the stream's backfill done and start its event cursor where the backfill began."""
    con.execute("UPDATE sync_state SET done = true, updated_at = now() "
                "WHERE stream = ? AND \"key\" = 'plan'", [stream])
    cursor = int(plan["started"]) - OVERLAP
    row = con.execute("SELECT objects FROM sync_state WHERE stream = ? AND \"key\" = 'events'",
                      [stream]).fetchone()
    _upsert_state(con, stream, "events", end=cursor, cursor=str(cursor), done=True,
                  objects=row[0] if row else 0, extra={"set_by": plan.get("kind", "backfill")})


# --------------------------------------------------------------------------- run


def _bar(stream: str, position: int, enabled: bool, desc: str | None = None):
    from tqdm.auto import tqdm

    return tqdm(desc=desc or stream, unit=" obj", position=position, leave=True,
                disable=not enabled, dynamic_ncols=True)


def _plan_streams(api: StripeAPI, db, plans: dict[str, dict], state: dict, summary: SyncSummary,
                  workers: int) -> list[_Window]:
    """Create (or resume) each stream's backfill plan; returns the open windows."""
    windows: list[_Window] = []
    new = [s for s, p in plans.items() if not p.get("resume")]
    probes: dict[str, tuple[str, Any, str]] = {}
    if new:
        def probe(stream: str):
            p = plans[stream]
            return api.probe_list(STREAM_OBJECTS[stream],
                                  {"limit": 1, **window_params(p["start"], p["end"])})
        with ThreadPoolExecutor(max_workers=min(len(new), max(1, workers))) as pool:
            for stream, res in zip(new, pool.map(probe, new), strict=False):
                probes[stream] = res
    with connect(db) as con, transaction(con):
        for stream, p in plans.items():
            if p.get("resume"):
                rows = state.get(stream, {})
                found = 0
                for key, r in rows.items():
                    if key.startswith("w-") and not r["done"]:
                        plain = bool(r["extra"].get("plain"))
                        windows.append(_Window(stream, key, r["start"], r["end"], r["cursor"],
                                               plain, set() if plain else None))
                        found += 1
                if not found:  # nothing left to fetch: only the completion was not recorded
                    _complete_plan(con, stream, p)
                continue
            verdict, _, message = probes[stream]
            con.execute("DELETE FROM sync_state WHERE stream = ? AND (\"key\" = 'plan' OR \"key\" LIKE 'w-%')",
                        [stream])
            p["mode"] = {"ok": "windowed", "refused": "plain", "missing": "missing"}[verdict]
            extra = {"started": p["started"], "kind": p["kind"], "mode": p["mode"]}
            if verdict == "missing":
                _upsert_state(con, stream, "plan", start=p["start"], end=p["end"], done=True,
                              extra={**extra, "note": message})
                continue
            _upsert_state(con, stream, "plan", start=p["start"], end=p["end"], extra=extra)
            key = _new_key()
            if verdict == "ok":
                w = _Window(stream, key, p["start"], p["end"])
                _upsert_state(con, stream, key, start=w.start, end=w.end)
            else:
                w = _Window(stream, key, None, None, plain=True, seen=set())
                _upsert_state(con, stream, key, extra={"plain": True})
            windows.append(w)
    for stream, (verdict, _, message) in probes.items():
        if verdict == "refused":
            summary.fallbacks.append(
                f"{stream}: the server refused the created filter ({message}); "
                "paged the whole list instead")
            summary.stream(stream)["how"] = plans[stream]["kind"] + " (whole list)"
        elif verdict == "missing":
            summary.fallbacks.append(f"{stream}: skipped, the server has no such list ({message})")
            summary.stream(stream)["how"] = "skipped"
    return windows


def _events_pass(api: StripeAPI, db, streams: list[str], since: dict[str, int], now: int,
                 summary: SyncSummary, progress: bool) -> None:
    """Read events since the oldest cursor for ``streams`` and apply them; move cursors."""
    start = min(since[s] for s in streams)
    wanted = {t: s for s in streams for t in EVENT_TYPES[s]}
    types = sorted(wanted)
    chunks = [types[i:i + MAX_TYPES] for i in range(0, len(types), MAX_TYPES)]
    created = {"created": {"gte": start}}
    queries: list[dict] = []
    client_filter_created = False
    verdict, _, msg = api.probe_list("event", {"limit": 1, "types": chunks[0], **created})
    if verdict == "ok":
        queries = [{"types": c, **created} for c in chunks]
    else:
        verdict2, _, msg2 = api.probe_list("event", {"limit": 1, **created})
        if verdict2 == "ok":
            queries = [created]
            summary.fallbacks.append(f"events: the server refused types[] ({msg}); read the "
                                     "unfiltered events list and kept the wanted types here")
        elif verdict2 == "refused":
            queries = [{}]
            client_filter_created = True
            summary.fallbacks.append(f"events: the server refused types[] and created filters "
                                     f"({msg}; {msg2}); read the whole events list")
        else:
            summary.fallbacks.append(f"events: skipped, the server has no events list ({msg2})")
            return
    max_seen: int | None = None
    applied = 0
    per_stream: dict[str, int] = {}
    bar = _bar("events", 0, progress, desc="events")
    try:
        for q in queries:
            params: dict[str, Any] = {"limit": 100, **q}
            seen: set[str] = set()
            while True:
                page = api.list_page("event", params)
                data = page["data"]
                fresh = [e for e in data if e.get("id") not in seen]
                seen.update(e.get("id") for e in data)
                keep = [e for e in fresh if e.get("type") in wanted
                        and (not client_filter_created or e.get("created", 0) >= start)]
                if keep:
                    with connect(db) as con, transaction(con):
                        summary.add_ingest(ingest_into(con, keep))
                    applied += len(keep)
                    top = max(e["created"] for e in keep)
                    max_seen = top if max_seen is None else max(max_seen, top)
                    for e in keep:
                        per_stream[wanted[e["type"]]] = per_stream.get(wanted[e["type"]], 0) + 1
                bar.update(len(keep))
                if not page["has_more"] or not data or not fresh:
                    break
                params = {**params, "starting_after": data[-1]["id"]}
    finally:
        bar.close()
    newest = max_seen if max_seen is not None else now
    target = min(newest, now - LAG) - OVERLAP
    with connect(db) as con, transaction(con):
        for s in streams:
            row = con.execute("SELECT objects, cursor FROM sync_state WHERE stream = ? AND \"key\" = 'events'",
                              [s]).fetchone()
            old = int(row[1]) if row and row[1] else since[s]
            cursor = max(old, target)
            _upsert_state(con, s, "events", end=cursor, cursor=str(cursor), done=True,
                          objects=(row[0] if row else 0) + per_stream.get(s, 0),
                          extra={"set_by": "events"})
    for s in streams:
        summary.stream(s)["how"] = summary.stream(s)["how"] or "events"
    summary.notes.append(f"applied {applied:,} events created since "
                         f"{datetime.fromtimestamp(start, UTC):%Y-%m-%d %H:%M} UTC")


def run(full: bool = False, streams: list[str] | str | None = None, workers: int = 8,
        since: Any = None, *, db: str | Path | None = None, api: StripeAPI | None = None,
        progress: bool = True, now: int | None = None) -> SyncSummary:
    """Sync Stripe into the database: backfill what was never synced, then events.

    Args:
        full: re-list every selected stream (resumes an interrupted backfill first).
        streams: the streams to sync (default all of :data:`STREAMS`); a list or "a,b".
        workers: concurrent HTTP workers for the backfill (all share one rate limiter).
        since: only objects created since this date (backfill) / events since it.
        db: database path (default ``PAYOPS_DB``).
        api: a :class:`~payops.stripe_api.StripeAPI` (default from the settings).
        progress: show a progress bar per stream (``tqdm.auto``: terminal or notebook).
        now: the current time in epoch seconds (tests); default the clock.

    Returns:
        A :class:`SyncSummary` (``print()`` it for the table).

    Raises:
        StripeAuthError: the key was rejected ("Stripe rejected the API key ending in ...").
        InvalidInput: an unknown stream or a bad ``since``.
    """
    t0 = time.monotonic()
    selected = _check_streams(streams)
    since_ts = parse_since(since)
    if workers < 1:
        raise InvalidInput("--workers must be at least 1")
    api = api or get_client()
    stats0 = dict(api.stats)
    api.check_key()
    now = int(now if now is not None else time.time())
    summary = SyncSummary(mode="backfill" if full else "incremental")
    state = _load_state(db)

    plans: dict[str, dict] = {}
    incremental: dict[str, int] = {}
    for s in selected:
        rows = state.get(s, {})
        plan, cur = rows.get("plan"), rows.get("events")
        cursor = int(cur["cursor"]) if cur and cur.get("cursor") else None
        if plan is not None and not plan["done"]:
            ex = plan["extra"]
            plans[s] = {"resume": True, "started": ex.get("started", now), "kind": ex.get("kind", "backfill"),
                        "start": plan["start"], "end": plan["end"]}
            summary.stream(s)["how"] = f"{plans[s]['kind']} (resumed)"
            summary.notes.append(f"{s}: resumed an unfinished {plans[s]['kind']}")
            continue
        fresh = {"started": now, "end": now + 1}
        if full or cursor is None:
            plans[s] = {**fresh, "kind": "backfill", "start": since_ts or EPOCH0}
            summary.stream(s)["how"] = "backfill"
            continue
        if not EVENT_TYPES[s]:
            start = min(cursor, since_ts or cursor) - BT_LOOKBACK
            plans[s] = {**fresh, "kind": "relist", "start": start}
            summary.stream(s)["how"] = "relist (no events)"
            continue
        start_from = since_ts if since_ts is not None else cursor
        if now - start_from > RETENTION - RETENTION_MARGIN:
            days = (now - start_from) / 86400
            summary.notes.append(
                f"{s}: the event cursor is {days:.0f} days old, beyond Stripe's 30-day event "
                f"retention; re-listing the stream {'since --since' if since_ts else 'in full'} "
                "instead of reading events")
            plans[s] = {**fresh, "kind": "relist", "start": since_ts or EPOCH0}
            summary.stream(s)["how"] = "relist (cursor too old)"
            continue
        incremental[s] = start_from
    if any(p["kind"] == "backfill" for p in plans.values()):
        summary.mode = "backfill" if not incremental else "mixed"

    bars: dict[str, Any] = {}
    try:
        if plans:
            for i, s in enumerate(plans):
                bars[s] = _bar(s, i, progress)
            windows = _plan_streams(api, db, plans, state, summary, workers)
            _Backfill(api, db, workers, summary, plans, bars).run(windows)
    finally:
        for b in bars.values():
            b.close()
    if incremental:
        _events_pass(api, db, list(incremental), incremental, now, summary, progress)

    # a refund that failed after payops processed it turns its request FAILED
    for res in sync_refund_failures(db=db):
        if res.ok:
            summary.notes.append(res.message)

    summary.requests = api.stats["requests"] - stats0.get("requests", 0)
    summary.rate_limited = api.stats["rate_limited"] - stats0.get("rate_limited", 0)
    summary.retries = api.stats["retries"] - stats0.get("retries", 0)
    summary.elapsed = time.monotonic() - t0
    with connect(db) as con, transaction(con):
        record(con, actor="sync", action="sync.run", entity="sync", entity_id=summary.mode,
               after={"streams": {k: {x: v[x] for x in ("new", "updated")}
                                  for k, v in summary.streams.items()},
                      "events_new": summary.events_new, "requests": summary.requests,
                      "fallbacks": summary.fallbacks, "notes": summary.notes})
    return summary

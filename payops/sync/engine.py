"""The concurrent list reader: worker threads page windows, one writer commits.

Each :class:`Window` is a list (a stream's objects, or events) with its ``created`` bounds
and a :class:`~payops.stripe_api.Pager`. Workers fetch one page of a window at a time
under the shared rate limiter, then hand the window back to the queue, so every open
window has one request in flight. When a page shows that a window holds more, and fewer
than ``workers + 4`` windows are open, :func:`~payops.sync.plan.split_window` cuts off the
part not covered yet as new windows (the window itself keeps the piece next to its
cursor), so all workers stay busy whatever the account's size.

One writer thread owns the database: it commits each page's objects together with its
window's checkpoint (cursor, bounds, windows split off) in one transaction, so a sync
killed at any moment resumes with no gap and no duplicate. Windows without a checkpoint
key (the events pass) are only ingested. The queue between workers and writer is bounded:
memory stays flat whatever the account size.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from payops.db import connect, transaction
from payops.ingest import ingest_into
from payops.stripe_api import Pager, StripeAPI, window_params
from payops.sync import state
from payops.sync.plan import PAGES_PER_PIECE, StreamPlan, split_window
from payops.sync.summary import SyncSummary

__all__ = ["Window", "Page", "Engine"]

BATCH_SECONDS = 1.0             # the writer commits at most every second ...
BATCH_PAGES = 15                # ... or every 15 pages (memory: a batch is staged whole)
QUEUE_PAGES = 16                # pages fetched and not yet committed, at most
BACKLOG_PAGES = 8               # pages waiting after a commit that count as falling behind
HOLD_SECONDS = 2.0              # ... and then the writer keeps its connection, this long at most
EXTRA_WINDOWS = 4               # open windows beyond one per worker, so none waits for work
TAIL_PAGES_PER_PIECE = 2        # piece width, in pages, once fewer windows than workers are open


@dataclass
class Window:
    """One list being paged: a stream's ``created`` window, or an events query.

    ``key`` is its ``sync_state`` key (None: not checkpointed). ``plain`` windows have no
    ``created`` filter (the server refused it) and are never split. ``probe`` (a new
    backfill's first request) learns whether the server serves the filtered list: if not,
    the window is paged whole (``plain``) or dropped (no such list). ``keep`` picks what to
    apply from a page (the events pass keeps its types); ``on_commit`` sees what was kept,
    once committed. ``first_page`` is a page fetched already (a probe's), taken first.
    """

    stream: str
    key: str | None
    object_type: str
    start: int | None
    end: int | None
    pager: Pager
    plain: bool = False
    base: dict[str, Any] = field(default_factory=dict)
    keep: Callable[[list[dict]], list[dict]] | None = None
    on_commit: Callable[[list[dict]], None] | None = None
    first_page: tuple[float, dict] | None = None
    probe: Callable[[dict[str, Any]], tuple[str, dict | None, str]] | None = None

    @classmethod
    def make(cls, api: StripeAPI, stream: str, key: str | None, object_type: str,
             start: int | None, end: int | None, *, cursor: str | None = None, plain: bool = False,
             base: dict[str, Any] | None = None, probe: bool = False, **hooks: Any) -> Window:
        """A window with its pager; ``hooks`` are ``keep``, ``on_commit``, ``first_page``."""
        pager = api.pager(object_type, {**(base or {}), **({} if plain else window_params(start, end))},
                          cursor=cursor)
        w = cls(stream, key, object_type, start, end, pager, plain, dict(base or {}), **hooks)
        if probe:
            w.probe = lambda params: api.probe_list(object_type, params)
        return w

    def narrow(self, start: int | None, end: int | None) -> None:
        self.start, self.end = start, end
        self.pager.params = {"limit": self.pager.params["limit"], **self.base, **window_params(start, end)}

    def child(self, start: int, end: int) -> Window:
        """A window split off this one: same list and hooks, its own bounds and pager."""
        pager = Pager(self.pager.fetch, {**self.base, **window_params(start, end)},
                      limit=self.pager.params["limit"])
        return Window(self.stream, state.new_window_key() if self.key else None, self.object_type,
                      start, end, pager, False, self.base, self.keep, self.on_commit)


@dataclass
class Page:
    """A fetched page on its way to the writer: objects and the window's new checkpoint."""

    window: Window
    data: list[dict]
    fetched_at: float
    cursor: str | None
    start: int | None
    end: int | None
    done: bool
    children: list[Window]
    probed: tuple[str, str] | None = None  # (verdict, message) when this was the window's probe


class Engine:
    """Workers fetch pages of open windows; one writer commits pages with checkpoints."""

    def __init__(self, db: str | Path | None, workers: int, summary: SyncSummary,
                 plans: dict[str, StreamPlan], bars: dict[str, Any],
                 setup: Callable[[duckdb.DuckDBPyConnection], None] | None = None):
        self.db, self.workers, self.summary = db, max(1, workers), summary
        self.plans = plans  # stream -> its backfill plan (completed when no window is open)
        self.bars = bars
        # the writer commits it first, before any page, while the workers send their first
        # requests: they need not wait for it (a run killed before it has recorded nothing)
        self.setup = setup
        self.probes: list[tuple[str, str, str]] = []  # (stream, verdict, message), once committed
        self.windows: queue.Queue[Window | None] = queue.Queue()
        # bounded: memory stays flat whatever the account size (a page of events holds 100
        # full objects, ~2 MB as dicts); a batch's worth is enough to cover a commit
        self.pages: queue.Queue[Page | None] = queue.Queue(maxsize=max(QUEUE_PAGES, 2 * self.workers))
        self.lock = threading.Lock()
        self.open = 0
        self.stop = threading.Event()
        self.error: BaseException | None = None

    def run(self, windows: list[Window]) -> None:
        """Page every window to its end (and the windows split off them); commit everything."""
        if not windows:
            self._setup()
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
            self._stop_writer(writer)
        if self.error is not None:
            raise self.error

    def _stop_writer(self, writer: threading.Thread) -> None:
        while writer.is_alive():
            try:
                self.pages.put(None, timeout=0.2)
                break
            except queue.Full:
                continue
        while writer.is_alive():
            writer.join(0.2)

    def _fail(self, exc: BaseException) -> None:
        with self.lock:
            if self.error is None:
                self.error = exc
        self.stop.set()

    # --- workers ----------------------------------------------------------------------
    def _worker(self) -> None:
        while not self.stop.is_set():
            try:
                w = self.windows.get(timeout=0.1)
            except queue.Empty:
                continue
            if w is None:
                return
            try:
                page = self._fetch(w)
            except BaseException as exc:  # noqa: BLE001 - handed to the main thread
                self._fail(exc)
                return
            if not self._hand_over(page):
                return
            self._requeue(w, page)

    def _fetch(self, w: Window) -> Page:
        # versioned by when the request left: an event created after that may be newer
        # than what the page shows, and must win
        fetched_at = time.time()
        probed: tuple[str, str] | None = None
        if w.first_page is not None:
            (fetched_at, raw), w.first_page = w.first_page, None
        elif w.probe is not None:
            probe, w.probe = w.probe, None
            verdict, page, message = probe(w.pager.request())
            if page is None:
                return self._refused(w, verdict, message, fetched_at)
            raw = page
            probed = (verdict, message)
        else:
            raw = w.pager.fetch(w.pager.request()) if w.pager.fetch else {"data": []}
        data = w.pager.take(raw)
        children = self._split(w, data) if not w.pager.done and not w.plain else []
        if w.keep is not None:
            data = w.keep(data)
        return Page(w, data, fetched_at, w.pager.cursor, w.start, w.end, w.pager.done, children, probed)

    def _refused(self, w: Window, verdict: str, message: str, fetched_at: float) -> Page:
        """The probe's answer when the filtered list was refused: page it whole, or drop it."""
        if verdict == "refused":
            w.plain = True
            w.narrow(None, None)
            return Page(w, [], fetched_at, None, None, None, False, [], (verdict, message))
        return Page(w, [], fetched_at, None, w.start, w.end, True, [], (verdict, message))

    def _hand_over(self, page: Page) -> bool:
        while not self.stop.is_set():
            try:
                self.pages.put(page, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def _requeue(self, w: Window, page: Page) -> None:
        with self.lock:
            self.open -= 1 if page.done else 0  # children were counted when split off
            finished = self.open == 0
        # children first: the window itself already has the piece next to its cursor
        for c in page.children:
            self.windows.put(c)
        if not page.done:
            self.windows.put(w)
        if finished:
            for _ in range(self.workers):
                self.windows.put(None)

    def _split(self, w: Window, data: list[dict]) -> list[Window]:
        """Split ``w`` when windows are wanted: as many pieces as wanted, no more."""
        with self.lock:
            # Enough open windows keep every worker busy; more would only add partial pages.
            wanted = self.workers + EXTRA_WINDOWS - self.open
            if wanted <= 0:
                return []
            # Few windows left (the end of the run): cut small, so the last pages of the
            # run are fetched side by side instead of as one window's page chain.
            per = PAGES_PER_PIECE if self.open >= self.workers else TAIL_PAGES_PER_PIECE
            cut = split_window(w.start, w.end, data, pages_per_piece=per, most=wanted + 1)
            if cut is None:
                return []
            lo, hi, rest = cut
            w.narrow(lo, hi)
            self.open += len(rest)
        return [w.child(a, b) for a, b in rest]

    # --- writer -----------------------------------------------------------------------
    def _setup(self) -> None:
        if self.setup is not None:
            with connect(self.db, migrate_schema=False) as con, transaction(con):
                self.setup(con)
            self.setup = None

    def _writer(self) -> None:
        with contextlib.ExitStack() as held:
            try:
                self._setup()
                self._write_pages(held)
            except BaseException as exc:  # noqa: BLE001 - workers see `stop` and exit
                self._fail(exc)

    def _batch(self, wait: float) -> tuple[list[Page], bool]:
        """The next pages to commit (blocks for the first), and whether the run is over.

        Group commit: pages arriving within ``wait`` seconds go in one transaction (each
        page's rows still commit with its own checkpoint, never apart from it). An upsert
        costs about the same for 100 rows as for 3,000, and each connection closed is a
        checkpoint of the file, so fewer, larger commits keep the single writer ahead.
        """
        item = self.pages.get()
        if item is None:
            return [], True
        batch = [item]
        deadline = time.monotonic() + wait
        while len(batch) < BATCH_PAGES:
            try:
                nxt = self.pages.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if nxt is None:
                return batch, True
            batch.append(nxt)
        return batch, False

    def _write_pages(self, held: contextlib.ExitStack) -> None:
        con: duckdb.DuckDBPyConnection | None = None
        opened = 0.0
        while True:
            # holding the connection, take what waits: never hold it while waiting for pages
            batch, stopping = self._batch(0.0 if con is not None else BATCH_SECONDS)
            if batch:
                if con is None:
                    # the schema was brought up to date when the run began
                    con = held.enter_context(connect(self.db, migrate_schema=False))
                    opened = time.monotonic()
                self._write(con, batch)
            if stopping:
                return
            # Closing checkpoints the file, which costs about as much as a batch: a writer
            # that fell behind keeps its connection to catch up, up to HOLD_SECONDS; else it
            # closes and gathers the next batch with the file free for other processes.
            behind = self.pages.qsize() >= BACKLOG_PAGES
            if con is not None and (not behind or time.monotonic() - opened > HOLD_SECONDS):
                held.close()
                con = None

    def _write(self, con: duckdb.DuckDBPyConnection, batch: list[Page]) -> None:
        objects = [o for p in batch for o in p.data]
        missing = {(p.window.stream, p.window.key) for p in batch if p.probed and p.probed[0] == "missing"}
        checkpoints: list[state.WindowPage] = [
            (p.window.stream, p.window.key, p.cursor, p.start, p.end, p.done, len(p.data))
            for p in batch if p.window.key is not None and (p.window.stream, p.window.key) not in missing]
        children = [(c.stream, c.key, c.start, c.end) for p in batch for c in p.children
                    if c.key is not None and c.start is not None and c.end is not None]
        with transaction(con):
            # One upsert for the batch, versioned by its earliest fetch: any event created
            # after that moment still wins, so nothing newer is ever masked. (Objects inside
            # events carry their event's time instead.)
            ing = ingest_into(con, objects, version=min(p.fetched_at for p in batch)) if objects else None
            for p in batch:
                if p.probed is not None and p.window.key is not None:
                    state.probed(con, self.plans[p.window.stream], p.window.key, *p.probed)
            state.save_windows(con, checkpoints, children)
            state.finish_done_plans(con, [self.plans[s] for s in dict.fromkeys(c[0] for c in checkpoints)])
        # counted only once committed
        if ing is not None:
            self.summary.add_ingest(ing)
        for p in batch:
            w = p.window
            if p.probed is not None:
                self.probes.append((w.stream, *p.probed))
            if w.key is not None and (p.probed is None or p.probed[0] == "ok"):
                self.summary.stream(w.stream)["pages"] += 1
            if w.on_commit is not None:
                w.on_commit(p.data)
            bar = self.bars.get(w.stream)
            if bar is not None:
                bar.update(len(p.data))

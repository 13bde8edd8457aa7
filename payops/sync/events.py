"""The incremental pass: ``/v1/events`` since the streams' cursors, applied newer-wins.

Events are read with ``types[]`` (at most 20 a request, so several queries) and
``created[gte]`` the oldest cursor of the pass's streams. Each query is a
:class:`~payops.sync.engine.Window` paged by the engine like a backfill window, so a busy
day's events are split by ``created`` and read concurrently instead of as one page chain.
Each event is stored once (``events`` primary key) and its object applied newer-wins by
:mod:`payops.ingest`, so overlaps and pages read twice are harmless. When every window is
done, each stream's cursor moves to the newest event seen, never later than
``now - LAG``, minus ``OVERLAP`` so late-visible events are read again.

Servers that refuse filters (localstripe): refused ``types[]`` -> the unfiltered list,
filtered here; refused ``created`` too -> the whole list, filtered here; no events list ->
skipped. Each fallback is reported.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

from payops.db import connect, transaction
from payops.streams import EVENT_TYPES
from payops.stripe_api import StripeAPI
from payops.sync import state
from payops.sync.engine import Window
from payops.sync.plan import LAG, OVERLAP, type_chunks

__all__ = ["EventsPass"]


class EventsPass:
    """Events since ``since[stream]`` for each stream; see the module docstring.

    Args:
        since: stream -> epoch seconds its events are read from.
    """

    def __init__(self, since: dict[str, int]):
        self.since = dict(since)
        self.start = min(self.since.values())
        self.wanted = {t: s for s in self.since for t in EVENT_TYPES[s]}
        self.client_filters_created = False
        self.fallbacks: list[str] = []
        self.applied = 0
        self.per_stream: dict[str, int] = {}
        self.newest: int | None = None

    def open(self, api: StripeAPI) -> list[Window]:
        """Probe what the server accepts; the windows to page (the probe's page is their first)."""
        created = {"created": {"gte": self.start}}
        chunks = type_chunks(list(self.since))
        asked = time.time()
        verdict, page, msg = api.probe_list("event", {"types": chunks[0], **created})
        if verdict == "ok" and page is not None:
            return [self._window(api, {"types": c}, (asked, page) if i == 0 else None)
                    for i, c in enumerate(chunks)]
        asked = time.time()
        verdict2, page2, msg2 = api.probe_list("event", created)
        if verdict2 == "ok" and page2 is not None:
            self.fallbacks.append(f"events: the server refused types[] ({msg}); read the "
                                  "unfiltered events list and kept the wanted types here")
            return [self._window(api, {}, (asked, page2))]
        if verdict2 == "refused":
            self.client_filters_created = True
            self.fallbacks.append(f"events: the server refused types[] and created filters "
                                  f"({msg}; {msg2}); read the whole events list")
            return [Window.make(api, "events", None, "event", None, None, plain=True,
                                keep=self.keep, on_commit=self.committed)]
        self.fallbacks.append(f"events: skipped, the server has no events list ({msg2})")
        return []

    def _window(self, api: StripeAPI, base: dict, first: tuple[float, dict] | None) -> Window:
        return Window.make(api, "events", None, "event", self.start, None, base=base,
                           keep=self.keep, on_commit=self.committed, first_page=first)

    def keep(self, data: list[dict]) -> list[dict]:
        """The events of this pass's streams (and, when the server could not filter, since)."""
        start, wanted, check_created = self.start, self.wanted, self.client_filters_created
        return [e for e in data if e.get("type") in wanted
                and (not check_created or (e.get("created") or 0) >= start)]

    def committed(self, kept: list[dict]) -> None:
        """Count events once the writer committed them (called from the writer thread only)."""
        if not kept:
            return
        self.applied += len(kept)
        top = max(e["created"] for e in kept)
        self.newest = top if self.newest is None else max(self.newest, top)
        for e in kept:
            stream = self.wanted[e["type"]]
            self.per_stream[stream] = self.per_stream.get(stream, 0) + 1

    def finish(self, db: str | Path | None, now: int) -> str:
        """Move the cursors (after every window is done); returns the summary's note."""
        newest = self.newest if self.newest is not None else now
        target = min(newest, now - LAG) - OVERLAP
        with connect(db) as con, transaction(con):
            state.move_event_cursors(con, self.since, target, self.per_stream)
        return (f"applied {self.applied:,} events created since "
                f"{datetime.fromtimestamp(self.start, UTC):%Y-%m-%d %H:%M} UTC")

"""Stripe -> DuckDB sync: a parallel, resumable backfill and a concurrent pass over events.

**Backfill** (``run(full=True)``, or the first run of a stream): each stream's ``created``
range starts as one window; worker threads page windows under the shared rate limiter of
:mod:`payops.stripe_api`, and a window that shows it holds more is split while workers
would otherwise wait (:func:`~payops.sync.plan.split_window`). The list order is read from
each page, never assumed. One writer thread commits each page's rows with its window's
checkpoint in one transaction, so a killed sync resumes from ``sync_state`` with no gap
and no duplicate (:mod:`payops.sync.engine`, :mod:`payops.sync.state`).

**Incremental** (``run()``): ``/v1/events`` since each stream's cursor, split by ``created``
and paged concurrently like a backfill; events are stored once and applied newer-wins
(:mod:`payops.sync.events`). A cursor older than Stripe's 30-day event retention cannot be
served by events: the stream is re-listed **in full** (objects created before the gap may
have changed in it, e.g. a charge refunded weeks later), and the run says so. Balance
transactions have no events: each incremental run re-lists the ones created in the last
7 days before the cursor (covers pending -> available). The decisions are
:func:`~payops.sync.plan.plan_streams`, a pure function.

**Servers that refuse filters** (localstripe): the first request of a list tells. A refused
``created`` filter -> the stream is paged whole; refused ``types[]`` -> the events list is
read unfiltered and filtered here; a missing endpoint -> the stream is skipped. Every list
is paged by :class:`~payops.stripe_api.Pager`, guarded against servers that answer an
unknown ``starting_after`` with the first page again. Each fallback is in the summary.
"""

from payops.streams import EVENT_TYPES, STREAM_OBJECTS, STREAMS
from payops.sync.plan import parse_since
from payops.sync.runner import run
from payops.sync.summary import SyncSummary

__all__ = ["run", "SyncSummary", "STREAMS", "STREAM_OBJECTS", "EVENT_TYPES", "parse_since"]

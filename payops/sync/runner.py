"""``run()``: one sync, from the plan to the audit row.

The steps: plan each stream (:mod:`payops.sync.plan`, pure), probe what the server serves
(every new backfill and the events list at once, each probe's page kept as the first page
of its list), record the plans (:mod:`payops.sync.state`), then page every backfill window
and every events query together in one :class:`~payops.sync.engine.Engine` (no phase waits
for another), move the event cursors, and write the audit row.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from payops.audit import record
from payops.db import connect, transaction
from payops.errors import InvalidInput
from payops.refunds import sync_refund_failures
from payops.streams import STREAM_OBJECTS, select_streams
from payops.stripe_api import StripeAPI, get_client, window_params
from payops.sync import state
from payops.sync.engine import Engine, Window
from payops.sync.events import EventsPass
from payops.sync.plan import Checkpoint, StreamPlan, SyncPlan, parse_since, plan_streams
from payops.sync.summary import SyncSummary

__all__ = ["run"]

Probe = tuple[str, dict | None, str, float]  # verdict, first page, message, when asked


def _probe(api: StripeAPI, plan: StreamPlan) -> Probe:
    asked = time.time()
    verdict, page, message = api.probe_list(STREAM_OBJECTS[plan.stream], window_params(plan.start, plan.end))
    return verdict, page, message, asked


def _probe_all(api: StripeAPI, new: list[StreamPlan], events: EventsPass | None,
               workers: int) -> tuple[dict[str, Probe], list[Window]]:
    """Probe every new backfill and the events list concurrently."""
    if not new and events is None:
        return {}, []
    with ThreadPoolExecutor(max_workers=max(1, min(len(new) + 1, workers))) as pool:
        event_windows = pool.submit(events.open, api) if events is not None else None
        probes = dict(zip((p.stream for p in new), pool.map(lambda p: _probe(api, p), new), strict=True))
        return probes, event_windows.result() if event_windows is not None else []


def _resumed(api: StripeAPI, db: str | Path | None, plan: StreamPlan,
             rows: dict[str, Checkpoint]) -> list[Window]:
    windows = [Window.make(api, plan.stream, key, STREAM_OBJECTS[plan.stream], r.start, r.end,
                           cursor=r.cursor, plain=bool(r.extra.get("plain")))
               for key, r in state.open_windows(rows)]
    if not windows:  # nothing left to fetch: only the completion was not recorded
        with connect(db) as con, transaction(con):
            state.complete_plan(con, plan.stream, plan.started, plan.kind)
    return windows


def _begin(api: StripeAPI, db: str | Path | None, plans: list[StreamPlan], probes: dict[str, Probe],
           summary: SyncSummary) -> list[Window]:
    """Record the new plans as the probes found the server; their first windows."""
    windows: list[Window] = []
    modes = {"ok": "windowed", "refused": "plain", "missing": "missing"}
    with connect(db) as con, transaction(con):
        for plan in plans:
            verdict, page, message, asked = probes[plan.stream]
            key = state.begin_plan(con, plan, modes[verdict], message)
            if key is None:
                continue
            otype = STREAM_OBJECTS[plan.stream]
            if verdict == "ok":
                windows.append(Window.make(api, plan.stream, key, otype, plan.start, plan.end,
                                           first_page=(asked, page) if page is not None else None))
            else:
                windows.append(Window.make(api, plan.stream, key, otype, None, None, plain=True))
    for plan in plans:
        verdict, _, message, _ = probes[plan.stream]
        if verdict == "refused":
            summary.fallbacks.append(f"{plan.stream}: the server refused the created filter ({message}); "
                                     "paged the whole list instead")
            summary.stream(plan.stream)["how"] = plan.kind + " (whole list)"
        elif verdict == "missing":
            summary.fallbacks.append(f"{plan.stream}: skipped, the server has no such list ({message})")
            summary.stream(plan.stream)["how"] = "skipped"
    return windows


def _bar(name: str, position: int, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(desc=name, unit=" obj", position=position, leave=True, disable=not enabled,
                dynamic_ncols=True)


def _execute(api: StripeAPI, db: str | Path | None, plan: SyncPlan, existing: dict[str, dict[str, Checkpoint]],
             summary: SyncSummary, workers: int, progress: bool, now: int) -> None:
    """Probe, record the plans, page every list in one engine, move the event cursors."""
    events = EventsPass(plan.incremental) if plan.incremental else None
    new = [p for p in plan.backfills.values() if not p.resume]
    if not new and events is None:
        api.check_key()  # otherwise the probes, sent first, tell a rejected key
    probes, windows = _probe_all(api, new, events, workers)
    if events is not None:
        summary.fallbacks.extend(events.fallbacks)
    for p in plan.backfills.values():
        if p.resume:
            windows += _resumed(api, db, p, existing.get(p.stream, {}))
    windows += _begin(api, db, new, probes, summary)
    names = list(plan.backfills) + (["events"] if events is not None else [])
    bars = {name: _bar(name, i, progress) for i, name in enumerate(names)}
    try:
        Engine(db, workers, summary, plan.backfills, bars).run(windows)
    finally:
        for b in bars.values():
            b.close()
    if events is not None:
        summary.notes.append(events.finish(db, now))
        for s in plan.incremental:
            summary.stream(s)["how"] = summary.stream(s)["how"] or "events"


def run(full: bool = False, streams: list[str] | str | None = None, workers: int = 8,
        since: Any = None, *, db: str | Path | None = None, api: StripeAPI | None = None,
        progress: bool = True, now: int | None = None) -> SyncSummary:
    """Sync Stripe into the database: backfill what was never synced, then events.

    Args:
        full: re-list every selected stream (resumes an interrupted backfill first).
        streams: the streams to sync (default all of :data:`~payops.streams.STREAMS`); a list or "a,b".
        workers: concurrent HTTP workers (all share one rate limiter).
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
    selected = select_streams(streams)
    since_ts = parse_since(since)
    if workers < 1:
        raise InvalidInput("--workers must be at least 1")
    api = api or get_client()
    stats0 = dict(api.stats)
    now = int(now if now is not None else time.time())
    existing = state.load(db)
    plan = plan_streams(selected, existing, full=full, since=since_ts, now=now)
    summary = SyncSummary(mode=plan.mode, notes=list(plan.notes))
    for s, how in plan.how.items():
        summary.stream(s)["how"] = how
    _execute(api, db, plan, existing, summary, workers, progress, now)

    # a refund that failed after payops processed it turns its request FAILED
    for res in sync_refund_failures(db=db):
        if res.ok:
            summary.notes.append(res.message)
    for name in ("requests", "rate_limited", "retries"):
        setattr(summary, name, api.stats[name] - stats0.get(name, 0))
    summary.elapsed = time.monotonic() - t0
    with connect(db) as con, transaction(con):
        record(con, actor="sync", action="sync.run", entity="sync", entity_id=summary.mode,
               after={"streams": {k: {x: v[x] for x in ("new", "updated")}
                                  for k, v in summary.streams.items()},
                      "events_new": summary.events_new, "requests": summary.requests,
                      "fallbacks": summary.fallbacks, "notes": summary.notes})
    return summary

"""``run()``: one sync, from the plan to the audit row.

The steps: plan each stream (:mod:`payops.sync.plan`, pure), probe the events list if the
run reads events, then page every backfill window and every events query together in one
:class:`~payops.sync.engine.Engine` (no phase waits for another: a new backfill's first
request is its probe, and its plan is recorded in the writer's first transaction), move
the event cursors, and write the audit row.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from payops.audit import record
from payops.db import connect, transaction
from payops.errors import InvalidInput
from payops.refunds import sync_refund_failures
from payops.streams import STREAM_OBJECTS, select_streams
from payops.stripe_api import StripeAPI, get_client
from payops.sync import state
from payops.sync.engine import Engine, Window
from payops.sync.events import EventsPass
from payops.sync.plan import Checkpoint, StreamPlan, SyncPlan, default_workers, parse_since, plan_streams
from payops.sync.summary import SyncSummary

__all__ = ["run"]

def _resumed(api: StripeAPI, db: str | Path | None, plan: StreamPlan,
             rows: dict[str, Checkpoint]) -> list[Window]:
    windows = [Window.make(api, plan.stream, key, STREAM_OBJECTS[plan.stream], r.start, r.end,
                           cursor=r.cursor, plain=bool(r.extra.get("plain")), probe=bool(r.extra.get("probe")))
               for key, r in state.open_windows(rows)]
    if not windows:  # nothing left to fetch: only the completion was not recorded
        with connect(db) as con, transaction(con):
            state.complete_plan(con, plan.stream, plan.started, plan.kind)
    return windows


def _new_plans(api: StripeAPI, plans: list[StreamPlan]) -> tuple[list[Window], Callable[[Any], None] | None]:
    """One probing window per new plan, and the setup that records the plans (in the
    writer's first transaction)."""
    keys = {p.stream: state.new_window_key() for p in plans}
    windows = [Window.make(api, p.stream, keys[p.stream], STREAM_OBJECTS[p.stream], p.start, p.end, probe=True)
               for p in plans]

    def setup(con: Any) -> None:
        for p in plans:
            state.begin_plan(con, p, keys[p.stream])

    return windows, setup if plans else None


def _report_probes(probes: list[tuple[str, str, str]], plans: dict[str, StreamPlan], summary: SyncSummary) -> None:
    for stream, verdict, message in probes:
        if verdict == "refused":
            summary.fallbacks.append(f"{stream}: the server refused the created filter ({message}); "
                                     "paged the whole list instead")
            summary.stream(stream)["how"] = plans[stream].kind + " (whole list)"
        elif verdict == "missing":
            summary.fallbacks.append(f"{stream}: skipped, the server has no such list ({message})")
            summary.stream(stream)["how"] = "skipped"


def _bar(name: str, position: int, enabled: bool) -> Any:
    from payops.progress import bar

    return bar(desc=name, unit=" obj", position=position, leave=True, enabled=enabled,
                dynamic_ncols=True)


def _execute(api: StripeAPI, db: str | Path | None, plan: SyncPlan, existing: dict[str, dict[str, Checkpoint]],
             summary: SyncSummary, workers: int, progress: bool, now: int) -> None:
    """Open every list (backfill windows, events queries) and page them in one engine."""
    events = EventsPass(plan.incremental) if plan.incremental else None
    new = [p for p in plan.backfills.values() if not p.resume]
    windows, setup = _new_plans(api, new)
    if events is not None:
        windows += events.open(api)  # its probes also tell a rejected key
        summary.fallbacks.extend(events.fallbacks)
    elif not new:
        api.check_key()  # otherwise the first requests, probes, tell a rejected key
    for p in plan.backfills.values():
        if p.resume:
            windows += _resumed(api, db, p, existing.get(p.stream, {}))
    names = list(plan.backfills) + (["events"] if events is not None else [])
    bars = {name: _bar(name, i, progress) for i, name in enumerate(names)}
    engine = Engine(db, workers, summary, plan.backfills, bars, setup=setup)
    try:
        engine.run(windows)
    finally:
        for b in bars.values():
            b.close()
    _report_probes(engine.probes, plan.backfills, summary)
    if events is not None:
        summary.notes.append(events.finish(db, now))
        for s in plan.incremental:
            summary.stream(s)["how"] = summary.stream(s)["how"] or "events"


def run(full: bool = False, streams: list[str] | str | None = None, workers: int | None = None,
        since: Any = None, *, db: str | Path | None = None, api: StripeAPI | None = None,
        progress: bool = True, now: int | None = None, link_payouts: bool = True) -> SyncSummary:
    """Sync Stripe into the database: backfill what was never synced, then events.

    Args:
        full: re-list every selected stream (resumes an interrupted backfill first).
        streams: the streams to sync (default all of :data:`~payops.streams.STREAMS`); a list or "a,b".
        workers: concurrent HTTP workers (all share one rate limiter); default
            :func:`~payops.sync.plan.default_workers` of the rate (8 up to 16/s, then rate/2).
        since: only objects created since this date (backfill) / events since it.
        db: database path (default ``PAYOPS_DB``).
        api: a :class:`~payops.stripe_api.StripeAPI` (default from the settings).
        progress: show a progress bar per stream (``tqdm.auto``: terminal or notebook).
        now: the current time in epoch seconds (tests); default the clock.
        link_payouts: after the streams, store which balance transactions each settled payout
            paid out (one ``?payout=`` list per payout not linked yet; see :mod:`payops.payouts`).

    Returns:
        A :class:`SyncSummary` (``print()`` it for the table).

    Raises:
        StripeAuthError: the key was rejected ("Stripe rejected the API key ending in ...").
        InvalidInput: an unknown stream or a bad ``since``.
    """
    t0 = time.monotonic()
    selected = select_streams(streams)
    since_ts = parse_since(since)
    if workers is not None and workers < 1:
        raise InvalidInput("--workers must be at least 1")
    api = api or get_client()
    workers = workers or default_workers(api.rate)
    stats0 = dict(api.stats)
    now = int(now if now is not None else time.time())
    existing = state.load(db)
    plan = plan_streams(selected, existing, full=full, since=since_ts, now=now)
    summary = SyncSummary(mode=plan.mode, notes=list(plan.notes))
    for s, how in plan.how.items():
        summary.stream(s)["how"] = how
    _execute(api, db, plan, existing, summary, workers, progress, now)
    if link_payouts and "payouts" in selected:
        # which balance transactions each settled payout paid out (issue 12: payouts reconciled)
        from payops.payouts import sync_links

        linked, notes = sync_links(api, db=db, workers=workers)
        summary.notes.extend(notes)
        if linked:
            summary.notes.append(f"payouts: the balance transactions of {linked} payout(s) stored")

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

""":func:`build_demo`: plan the marketplace, build its Stripe objects, ingest them, add payops's rows."""

from __future__ import annotations

import gc
import queue
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import duckdb

from payops.config import get_settings
from payops.db import connect, database_path, transaction
from payops.demo import records
from payops.demo.catalog import PRICES
from payops.demo.lifecycles import lifecycle_objects, lifecycle_requests
from payops.demo.plan import demo_end, plan_marketplace
from payops.demo.stripe_objects import StripeBuilder
from payops.errors import InvalidInput
from payops.ingest import ingest_into
from payops.payouts import store_links
from payops.streams import STREAMS

__all__ = ["CHUNK", "TABLES", "DemoSummary", "build_demo", "not_made_by_demo"]

CHUNK = 50_000  # payments per ingest transaction
CHECKPOINT_THRESHOLD = "64GB"

TABLES = (*STREAMS, "events", "bookings", "refund_requests", "audit_log")


@dataclass
class DemoSummary:
    """What :func:`build_demo` produced."""

    path: Path
    seed: int
    as_of: date
    counts: dict[str, int] = field(default_factory=dict)
    elapsed: float = 0.0

    def __str__(self) -> str:
        c = self.counts
        main = ", ".join(
            f"{c.get(t, 0):,} {label}" for t, label in (
                ("customers", "customers"), ("payment_intents", "payments"), ("charges", "charges"),
                ("refunds", "refunds"), ("disputes", "disputes"), ("payouts", "payouts"),
                ("refund_requests", "refund requests"),
            )
        )
        return (
            f"Demo marketplace in {self.path} (seed {self.seed}, as of {self.as_of.isoformat()}): "
            f"{main}; built in {self.elapsed:.1f} s."
        )


class _Writer(threading.Thread):
    """Ingests chunk N on its own while the main thread generates chunk N+1.

    DuckDB releases the GIL while it works, so the two overlap. The connection is used by
    this thread only until it finishes.
    """

    def __init__(self, con: duckdb.DuckDBPyConnection, moment: datetime, bar: Any) -> None:
        super().__init__(name="payops-demo-writer", daemon=True)
        self.con, self.moment, self.bar = con, moment, bar
        self.queue: queue.Queue = queue.Queue(maxsize=2)
        self.error: BaseException | None = None

    def run(self) -> None:
        while True:
            item = self.queue.get()
            if item is None:
                return
            if self.error is not None:
                continue  # drain, so the producer never blocks
            objects, bookings, n = item
            try:
                with transaction(self.con):
                    ingest_into(self.con, objects, version=self.moment, synced_at=self.moment)
                    records.insert_bookings(self.con, bookings)
                self.bar.update(n)
            except BaseException as exc:  # reported by the main thread
                self.error = exc

    def put(self, objects: list[dict], bookings: list[tuple], n: int) -> None:
        if self.error is not None:
            raise self.error
        self.queue.put((objects, bookings, n))


def _remove(path: Path) -> None:
    for p in (path, Path(f"{path}.wal")):
        if p.exists():
            p.unlink()


def _rows(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None) -> int:
    row = con.execute(sql, params).fetchone()
    return int(row[0] or 0) if row else 0


def not_made_by_demo(con: duckdb.DuckDBPyConnection) -> list[str]:
    """What the database holds that no demo build made: synced data, decisions, audit rows.

    A database without a ``demo_builds`` row was never a demo, so all of its rows count.
    Derived tables (``daily_metrics``) do not: they are recomputed from the rest.

    Returns:
        One phrase per kind of such data (``"12 sync_state rows (payops sync)"``); empty when
        the database holds nothing but what the demo made.
    """
    build = con.execute("SELECT demo_now, audit_rows, refund_requests, events FROM demo_builds "
                        "ORDER BY demo_now DESC LIMIT 1").fetchone()
    found: list[str] = []
    n = _rows(con, "SELECT count(*) FROM sync_state")
    if n:
        found.append(f"{n:,} sync_state rows (payops sync)")
    if build is None:
        for table in TABLES:
            n = _rows(con, f"SELECT count(*) FROM {table}")
            if n:
                found.append(f"{n:,} {table} rows")
        return found
    demo_now, audit_rows, requests, events = build
    con.execute("SET TimeZone = 'UTC'")
    for table in STREAMS:
        n = _rows(con, f"SELECT count(*) FROM {table} WHERE synced_at > ?", [demo_now])
        if n:
            found.append(f"{n:,} {table} rows synced after the demo was built")
    for table, made, what in (("audit_log", audit_rows, "audit rows"), ("refund_requests", requests,
                              "refund requests"), ("events", events, "events")):
        n = _rows(con, f"SELECT count(*) FROM {table}") - made
        if n > 0:
            found.append(f"{n:,} {what} added after the demo was built")
    n = _rows(con, "SELECT count(*) FROM audit_log WHERE \"at\" > ?", [demo_now])
    if n and not any(f.endswith("audit rows added after the demo was built") for f in found):
        found.append(f"{n:,} audit rows written after the demo was built")
    return found


def _check_replaceable(path: Path) -> None:
    """Refuse to delete ``path`` when it holds anything a user synced, decided or audited."""
    if not path.exists():
        return
    with connect(path) as con:
        found = not_made_by_demo(con)
    if found:
        raise InvalidInput(
            f"refusing to replace {path}: it holds data the demo did not make ({'; '.join(found)}); nothing "
            "was deleted. Build the demo in its own file (make demo uses data/demo.duckdb, or --db FILE), "
            "or remove this one yourself if you mean it.")


def build_demo(
    db: str | Path | None = None,
    *,
    seed: int = 42,
    days: int = 90,
    customers: int = 400,
    as_of: date | None = None,
    replace: bool = False,
    progress: bool = True,
    now: datetime | None = None,
) -> DemoSummary:
    """Build a deterministic demo marketplace (a tutoring platform) in the database.

    Students (Stripe customers) book tutoring sessions of 30 to 90 minutes priced 25.00 to
    120.00 (3,000 to 12,000 yen); each customer books about 0.08 sessions a day, mostly
    on weekday afternoons and evenings (UTC), so the defaults (400 customers over 90 days)
    give about 2,900 payments, and the volume scales with ``customers * days``:
    ``customers=140_000`` gives about 1,000,000 payments over 90 days (under 3 minutes on
    two cores). The data includes about 4.4% declined charges (real decline codes; half
    retried successfully), refunds on about 4% of payments, disputes on 0.3%, daily payouts,
    3% of payments in EUR, GBP and JPY, a booking per payment intent, refund requests in
    every status and priority with their audit trail, the other lifecycle statuses a
    marketplace sees (:mod:`payops.demo.lifecycles`: payment intents in flight or canceled,
    pending refunds, a refund waiting for the customer (``requires_action``, its request
    PROCESSING), inquiries, a failed payout and its money sent again (``pending``)), and the
    events of the last day.

    The demo's "now" is 12:00 UTC of ``as_of``, or ``now`` when that is earlier (without
    ``as_of``: ``now`` itself), so nothing it creates lies in the future of the real clock.

    Every object goes through :func:`payops.ingest.ingest_into`. The same ``seed`` and a past
    ``as_of`` always give byte-identical tables; nothing else depends on the wall clock.

    Args:
        db: the database file; default the ``PAYOPS_DB`` setting.
        seed: the random seed.
        days: how many days of history before ``as_of`` (12:00 UTC).
        customers: how many customers (students).
        as_of: the day the demo is "now" at 12:00 UTC (or ``now``, if earlier); default today (UTC).
        replace: delete an existing database file first, but only one that holds nothing but
            a demo's rows (see :func:`not_made_by_demo`).
        progress: show a progress bar.
        now: the real clock (default: the clock; tests pass one).

    Returns:
        A :class:`DemoSummary` with the path, row counts per table and the time taken.

    Raises:
        InvalidInput: bad sizes, ``as_of`` in the future, the database already has data and
            ``replace`` is false, or ``replace`` would delete data the demo did not make.
    """
    if days < 1 or customers < 1:
        raise InvalidInput(f"days and customers must be at least 1 (got days={days}, customers={customers})")
    started = time.perf_counter()
    now = now or datetime.now(UTC)
    end = demo_end(as_of, now)
    as_of = as_of or datetime.fromtimestamp(end, UTC).date()
    path = database_path(db)
    if replace:
        _check_replaceable(path)
        _remove(path)
    gc_was_enabled = gc.isenabled()
    # Millions of small dicts: the cyclic GC would rescan them all, again and again, for nothing.
    gc.disable()
    try:
        with connect(path) as con:
            (has,) = con.execute("SELECT count(*) FROM charges").fetchone() or (0,)
            if has:
                raise InvalidInput(f"database {path} already has data ({has:,} charges); use --replace")
            # One checkpoint at the end instead of one per commit (each rewrites the indexes).
            con.execute(f"SET checkpoint_threshold = '{CHECKPOINT_THRESHOLD}'")
            counts = _build(con, seed, days, customers, as_of, end, progress)
    finally:
        if gc_was_enabled:
            gc.enable()
    return DemoSummary(path=path, seed=seed, as_of=as_of, counts=counts,
                       elapsed=time.perf_counter() - started)


def _build(con: duckdb.DuckDBPyConnection, seed: int, days: int, customers: int, as_of: date, end: int,
           progress: bool) -> dict[str, int]:
    from payops.progress import bar as progress_bar

    policy = get_settings().refund_policy
    plan = plan_marketplace(seed, days, customers, as_of, large={c: policy.large_threshold(c) for c in PRICES},
                            request_ids=lambda n: records.new_request_ids(con, n), end=end)

    n = len(plan.payments)
    # the lifecycle refunds' requests take their ids now, while the connection is free (the writer owns it next)
    extra_ids = records.new_request_ids(con, lifecycle_requests(n))
    moment = datetime.fromtimestamp(plan.end, UTC)
    builder = StripeBuilder(plan)
    bar = progress_bar(total=n, unit=" payments", desc="demo", enabled=progress, unit_scale=True)
    writer = _Writer(con, moment, bar)
    writer.start()
    try:
        first = builder.customers()
        for lo in range(0, n, CHUNK):
            objs, bookings = builder.payments(lo, min(n, lo + CHUNK))
            if first:
                objs, first = first + objs, []
            writer.put(objs, bookings, min(n, lo + CHUNK) - lo)
        payouts = builder.payouts()
        # after everything else: changes nothing
        extras, extra_bookings = lifecycle_objects(builder, payouts, extra_ids)
        writer.put(first + payouts, [], 0)
        writer.put(extras, extra_bookings, 0)
        links = builder.links
    finally:
        writer.queue.put(None)
        writer.join()
        if writer.error is not None:
            bar.close()
    if writer.error is not None:
        raise writer.error
    with transaction(con):
        store_links(con, links, at=moment)  # which balance transactions each payout settled
        records.insert_refund_requests(con, plan.requests)
        records.append_audit_rows(con, records.audit_rows(plan.requests, plan.audit))
        con.execute("INSERT INTO demo_builds SELECT ?, ?, ?, (SELECT count(*) FROM audit_log), "
                    "(SELECT count(*) FROM refund_requests), (SELECT count(*) FROM events)", [seed, as_of, moment])
    bar.set_postfix_str("writing the database file")
    con.execute("CHECKPOINT")
    bar.close()
    return {t: _count(con, t) for t in TABLES}


def _count(con: duckdb.DuckDBPyConnection, table: str) -> int:
    row = con.execute(f"SELECT count(*) FROM {table}").fetchone()
    return row[0] if row else 0

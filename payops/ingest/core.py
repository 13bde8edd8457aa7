"""Stripe objects (dicts) into typed DuckDB rows, newer-wins.

:func:`ingest_objects` takes any mix of customers, payment intents, charges, refunds,
balance transactions, disputes, payouts, transfers, application fees and events (whose ``data.object`` is one of
those) and upserts them in one transaction: a malformed object rejects the whole batch
with a message naming it, and nothing is half-written.

Newer-wins: every row carries ``version`` (epoch microseconds). An object fetched from
the API has the version of the moment it was fetched; an object carried by an event has
the event's ``created`` time. A row is only replaced by a version at least as new, so an
old event replayed after a fresh fetch never rolls a row back.

Expansion: wherever Stripe allows an ID or an expanded object (``customer``,
``latest_charge``, ``balance_transaction``, ``charge``, ``payment_intent``, ``source``),
both are accepted; an expanded object is stored as a row of its own too.

Speed: each batch is turned into one Arrow table per Stripe type (:mod:`payops.ingest.stage`)
and written with one delete of the rows it replaces and one insert, never row by row.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pyarrow as pa

from payops.db import connect, transaction
from payops.errors import IngestError
from payops.ingest.schema import EVENT_COLUMNS, OBJECT_TABLES, STR, TS
from payops.ingest.stage import stage_rows

__all__ = ["ingest_objects", "ingest_into", "IngestSummary", "TableCounts", "to_version"]


class TableCounts:
    """Rows new / updated / unchanged per table, in ``self.tables`` (a mixin for results)."""

    tables: dict[str, dict[str, int]]

    def count(self, table: str, what: str, n: int) -> None:
        row = self.tables.setdefault(table, {"new": 0, "updated": 0, "unchanged": 0})
        row[what] += n

    @property
    def new(self) -> int:
        return sum(t["new"] for t in self.tables.values())

    @property
    def updated(self) -> int:
        return sum(t["updated"] for t in self.tables.values())


@dataclass
class IngestSummary(TableCounts):
    """What one ingest did: rows new / updated / unchanged (older or same) per table."""

    tables: dict[str, dict[str, int]] = field(default_factory=dict)
    events_new: int = 0
    events_duplicate: int = 0
    ignored: int = 0

    @property
    def total(self) -> int:
        return sum(sum(t.values()) for t in self.tables.values())

    def merge(self, other: IngestSummary) -> IngestSummary:
        for table, counts in other.tables.items():
            for what, n in counts.items():
                self.count(table, what, n)
        self.events_new += other.events_new
        self.events_duplicate += other.events_duplicate
        self.ignored += other.ignored
        return self

    def as_dict(self) -> dict[str, Any]:
        return {
            "tables": self.tables,
            "events_new": self.events_new,
            "events_duplicate": self.events_duplicate,
            "ignored": self.ignored,
        }


def to_version(value: datetime | int | float | None) -> int:
    """A version in epoch microseconds from a datetime, epoch seconds, or now."""
    if value is None:
        return time.time_ns() // 1000
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return int(value.timestamp() * 1_000_000)
    return int(value * 1_000_000)


def _name(obj: Any) -> str:
    if isinstance(obj, dict):
        return f"{obj.get('object', 'object')} {obj.get('id', '(no id)')}"
    return repr(obj)[:60]


def _check(obj: Any, where: str) -> tuple[str, str]:
    if not isinstance(obj, dict):
        raise IngestError(f"{where}: expected a Stripe object (a dict), got {type(obj).__name__}")
    oid, otype = obj.get("id"), obj.get("object")
    if not isinstance(oid, str) or not oid:
        raise IngestError(f"{where}: {_name(obj)} has no string 'id'")
    if not isinstance(otype, str) or not otype:
        raise IngestError(f"{where}: object {oid} has no string 'object'")
    return oid, otype


def _where(where: str | int) -> str:
    return f"object #{where + 1}" if isinstance(where, int) else where


_EXPANDABLE = {otype: spec[2] for otype, spec in OBJECT_TABLES.items()}


class _Batch:
    """Objects of one ingest, grouped by type, deduplicated keeping the newest version."""

    def __init__(self) -> None:
        # two parallel dicts per type (id -> object, id -> version), in the same key order:
        # no tuple per object, so a large batch adds no garbage-collected containers
        self.best: dict[str, dict[str, dict]] = {t: {} for t in OBJECT_TABLES}
        self.versions: dict[str, dict[str, int]] = {t: {} for t in OBJECT_TABLES}
        self.events: dict[str, tuple] = {}
        self.ignored = 0

    def add(self, obj: dict, version: int, where: str | int) -> None:
        """``where`` names the object in errors; an int i stands for ``object #{i + 1}``."""
        # the common case (a plain dict with string id and object) without building names
        if type(obj) is dict:
            oid, otype = obj.get("id"), obj.get("object")
            if type(oid) is not str or not oid or type(otype) is not str or not otype:
                oid, otype = _check(obj, _where(where))
        else:
            oid, otype = _check(obj, _where(where))
        group = self.best.get(otype)
        if group is None:
            if otype == "event":
                self._event(obj, oid, _where(where))
            else:
                self.ignored += 1
            return
        versions = self.versions[otype]
        prev = versions.get(oid)
        if prev is None or version >= prev:
            group[oid] = obj
            versions[oid] = version
        for key in _EXPANDABLE[otype]:
            nested = obj.get(key)
            if type(nested) is dict and nested.get("object") in OBJECT_TABLES:
                self.add(nested, version, f"{_where(where)} -> {key}")

    def _event(self, ev: dict, eid: str, where: str) -> None:
        created, etype = ev.get("created"), ev.get("type")
        if type(created) is not int:
            raise IngestError(f"{where}: event {eid} has no integer 'created'")
        if not isinstance(etype, str):
            raise IngestError(f"{where}: event {eid} has no string 'type'")
        data = ev.get("data")
        inner = data.get("object") if isinstance(data, dict) else None
        if not isinstance(inner, dict):
            raise IngestError(f"{where}: event {eid} has no data.object")
        oid, otype = _check(inner, f"{where} (event {eid})")
        if etype.endswith(".deleted") and otype == "customer":
            inner = {**inner, "deleted": True}
        self.events[eid] = (eid, etype, created, ev.get("api_version"), oid, otype, orjson.dumps(ev).decode())
        self.add(inner, created * 1_000_000, f"{where} (event {eid})")


def _count(con: duckdb.DuckDBPyConnection, sql: str) -> int:
    row = con.execute(sql).fetchone()
    return int(row[0]) if row else 0


def _upsert(con: duckdb.DuckDBPyConnection, table: str, data: pa.Table, summary: IngestSummary) -> None:
    view = f"_stage_{table}"
    con.register(view, data)
    try:
        # Only the id column is read to find rows that exist: a backfill or the demo mostly
        # inserts new objects, and then no stored `raw` needs to be read at all.
        matched = _count(con, f"SELECT count(*) FROM {table} WHERE id IN (SELECT id FROM {view})")
        select = f"SELECT *, hash(raw) AS fingerprint FROM {view}"
        if matched == 0:
            con.execute(f"INSERT INTO {table} BY NAME {select}")
            newer = 0
        else:
            # fingerprint = hash(raw), so no stored raw text is read to find real changes
            newer = _count(
                con,
                f"SELECT count(*) FROM {view} s JOIN {table} t ON t.id = s.id "
                f"WHERE s.version >= t.version AND hash(s.raw) IS DISTINCT FROM t.fingerprint",
            )
            # Newer-wins as a delete of the rows at least as old, then an insert of what is
            # not stored: ``ON CONFLICT DO UPDATE`` costs ~4 ms a row once the table is on
            # disk (15 s for a batch of 4,000 events), this ~0.1 ms. The row is the object:
            # every column comes from the staged row, so nothing else is lost with it.
            con.execute(
                f"DELETE FROM {table} WHERE id IN (SELECT s.id FROM {view} s JOIN {table} t ON t.id = s.id "
                f"WHERE s.version >= t.version)"
            )
            con.execute(
                f"INSERT INTO {table} BY NAME {select} s "
                f"WHERE NOT EXISTS (SELECT 1 FROM {table} t WHERE t.id = s.id)"
            )
    finally:
        con.unregister(view)
    new = data.num_rows - matched
    summary.count(table, "new", new)
    summary.count(table, "updated", newer)
    summary.count(table, "unchanged", matched - newer)


def ingest_into(
    con: duckdb.DuckDBPyConnection,
    objects: Iterable[dict],
    *,
    version: datetime | int | float | None = None,
    synced_at: datetime | None = None,
) -> IngestSummary:
    """Upsert ``objects`` on an open connection, inside the caller's transaction.

    Args:
        con: an open connection (the caller owns the transaction).
        objects: Stripe objects as dicts, or events carrying them.
        version: when these objects were fetched (datetime or epoch seconds); default now.
            Objects inside events use the event's ``created`` instead.
        synced_at: the ``synced_at`` to record; default now.

    Raises:
        IngestError: an object is malformed; nothing has been written.
    """
    ver = to_version(version)
    synced = synced_at or datetime.now(UTC)
    batch = _Batch()
    add = batch.add
    for i, obj in enumerate(objects):
        add(obj, ver, i)

    # Build every Arrow table first: a type error rejects the batch before any write.
    staged = []
    for otype, (table, columns, _) in OBJECT_TABLES.items():
        group = batch.best[otype]
        if group:
            staged.append((table, stage_rows(con, otype, table, columns, group, batch.versions[otype], synced)))

    summary = IngestSummary(ignored=batch.ignored)
    if batch.events:
        events = list(batch.events.values())
        ev = pa.Table.from_arrays(
            [
                pa.array([e[0] for e in events], STR),
                pa.array([e[1] for e in events], STR),
                pa.array([e[2] for e in events], TS),
                pa.array([e[3] for e in events], STR),
                pa.array([e[4] for e in events], STR),
                pa.array([e[5] for e in events], STR),
                pa.array([synced] * len(events), pa.timestamp("us", tz="UTC")),
                pa.array([e[6] for e in events], STR),
            ],
            names=list(EVENT_COLUMNS),
        )
        con.register("_stage_events", ev)
        try:
            dupes = _count(con, "SELECT count(*) FROM _stage_events s JOIN events e ON e.id = s.id")
            con.execute("INSERT INTO events BY NAME SELECT * FROM _stage_events ON CONFLICT (id) DO NOTHING")
        finally:
            con.unregister("_stage_events")
        summary.events_duplicate += dupes
        summary.events_new += len(events) - dupes
    for table, data in staged:
        _upsert(con, table, data, summary)
    return summary


def ingest_objects(
    objects: Iterable[dict],
    *,
    version: datetime | int | float | None = None,
    synced_at: datetime | None = None,
    db: str | Path | None = None,
) -> IngestSummary:
    """Upsert Stripe objects (and events) into the database in one transaction.

    Example::

        from payops.ingest import ingest_objects
        summary = ingest_objects([charge.to_dict() for charge in client.charges.list().data])

    Returns:
        An :class:`IngestSummary` with new / updated / unchanged rows per table.

    Raises:
        IngestError: a malformed object, named in the message; nothing was written.
    """
    objects = list(objects)
    with connect(db) as con, transaction(con):
        return ingest_into(con, objects, version=version, synced_at=synced_at)

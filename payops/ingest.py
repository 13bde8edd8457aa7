"""Stripe objects (dicts) into typed DuckDB rows, newer-wins.

:func:`ingest_objects` takes any mix of customers, payment intents, charges, refunds,
balance transactions, disputes, payouts and events (whose ``data.object`` is one of
those) and upserts them in one transaction: a malformed object rejects the whole batch
with a message naming it, and nothing is half-written.

Newer-wins: every row carries ``version`` (epoch microseconds). An object fetched from
the API has the version of the moment it was fetched; an object carried by an event has
the event's ``created`` time. A row is only replaced by a version at least as new, so an
old event replayed after a fresh fetch never rolls a row back.

Expansion: wherever Stripe allows an ID or an expanded object (``customer``,
``latest_charge``, ``balance_transaction``, ``charge``, ``payment_intent``, ``source``),
both are accepted; an expanded object is stored as a row of its own too.

Speed: each batch is turned into one Arrow table per Stripe type with column-wise list
comprehensions and inserted with one ``INSERT ... ON CONFLICT`` statement, never row by row.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pyarrow as pa

from payops.db import connect, transaction
from payops.errors import IngestError

__all__ = ["ingest_objects", "ingest_into", "IngestSummary", "OBJECT_TABLES", "to_version"]

I64, STR, BOOL, F64 = pa.int64(), pa.string(), pa.bool_(), pa.float64()
TS = pa.timestamp("s", tz="UTC")

Extract = Callable[[list[dict]], list]


def _get(key: str) -> Extract:
    return lambda objs: [o.get(key) for o in objs]


def _ref(key: str) -> Extract:
    """An expandable field: the id whether Stripe sent an id string or an expanded object."""

    def f(objs: list[dict]) -> list:
        out = []
        for o in objs:
            v = o.get(key)
            out.append(v.get("id") if type(v) is dict else v)
        return out

    return f


def _json(key: str) -> Extract:
    def f(objs: list[dict]) -> list:
        out = []
        for o in objs:
            v = o.get(key)
            out.append(None if v is None else orjson.dumps(v).decode())
        return out

    return f


def _meta(key: str) -> Extract:
    def f(objs: list[dict]) -> list:
        out = []
        for o in objs:
            m = o.get("metadata")
            v = m.get(key) if type(m) is dict else None
            out.append(None if v is None else str(v))
        return out

    return f


def _request_id(objs: list[dict]) -> list:
    out = []
    for o in objs:
        m = o.get("metadata")
        v = m.get("payops_request_id") if type(m) is dict else None
        out.append(int(v) if isinstance(v, str) and v.isdigit() else (v if type(v) is int else None))
    return out


def _pm_type(objs: list[dict]) -> list:
    out = []
    for o in objs:
        d = o.get("payment_method_details")
        out.append(d.get("type") if type(d) is dict else None)
    return out


def _card_brand(objs: list[dict]) -> list:
    out = []
    for o in objs:
        d = o.get("payment_method_details")
        c = d.get("card") if type(d) is dict else None
        out.append(c.get("brand") if type(c) is dict else None)
    return out


def _deleted(objs: list[dict]) -> list:
    return [bool(o.get("deleted")) for o in objs]


@dataclass(frozen=True)
class Column:
    name: str
    type: pa.DataType
    extract: Extract
    field: str  # the Stripe field it comes from, for error messages


def _cols(*specs: tuple) -> list[Column]:
    out = []
    for spec in specs:
        name, typ = spec[0], spec[1]
        how = spec[2] if len(spec) > 2 else _get(name)
        src = spec[3] if len(spec) > 3 else name
        out.append(Column(name, typ, how, src))
    return out


# Stripe object type -> (table, columns in table order, expandable fields holding objects)
OBJECT_TABLES: dict[str, tuple[str, list[Column], tuple[str, ...]]] = {
    "customer": (
        "customers",
        _cols(
            ("id", STR), ("email", STR), ("name", STR), ("phone", STR), ("created", TS),
            ("deleted", BOOL, _deleted), ("livemode", BOOL), ("metadata", STR, _json("metadata")),
        ),
        (),
    ),
    "payment_intent": (
        "payment_intents",
        _cols(
            ("id", STR), ("customer", STR, _ref("customer")), ("amount", I64),
            ("amount_received", I64), ("currency", STR), ("status", STR), ("created", TS),
            ("latest_charge", STR, _ref("latest_charge")), ("application_fee_amount", I64),
            ("booking_id", STR, _meta("booking_id"), "metadata.booking_id"),
            ("tutor_id", STR, _meta("tutor_id"), "metadata.tutor_id"),
            ("livemode", BOOL), ("metadata", STR, _json("metadata")),
        ),
        ("customer", "latest_charge"),
    ),
    "charge": (
        "charges",
        _cols(
            ("id", STR), ("payment_intent", STR, _ref("payment_intent")),
            ("customer", STR, _ref("customer")), ("amount", I64), ("amount_captured", I64),
            ("amount_refunded", I64), ("currency", STR), ("status", STR), ("paid", BOOL),
            ("refunded", BOOL), ("disputed", BOOL), ("captured", BOOL), ("failure_code", STR),
            ("failure_message", STR), ("balance_transaction", STR, _ref("balance_transaction")),
            ("payment_method_type", STR, _pm_type, "payment_method_details.type"),
            ("card_brand", STR, _card_brand, "payment_method_details.card.brand"),
            ("application_fee_amount", I64), ("livemode", BOOL),
            ("metadata", STR, _json("metadata")), ("created", TS),
        ),
        ("customer", "payment_intent", "balance_transaction"),
    ),
    "refund": (
        "refunds",
        _cols(
            ("id", STR), ("charge", STR, _ref("charge")), ("payment_intent", STR, _ref("payment_intent")),
            ("amount", I64), ("currency", STR), ("status", STR), ("reason", STR),
            ("failure_reason", STR), ("balance_transaction", STR, _ref("balance_transaction")),
            ("payops_request_id", I64, _request_id, "metadata.payops_request_id"),
            ("created", TS), ("metadata", STR, _json("metadata")),
        ),
        ("charge", "payment_intent", "balance_transaction"),
    ),
    "balance_transaction": (
        "balance_transactions",
        _cols(
            ("id", STR), ("source", STR, _ref("source")), ("type", STR), ("reporting_category", STR),
            ("amount", I64), ("fee", I64), ("net", I64), ("currency", STR), ("status", STR),
            ("created", TS), ("available_on", TS), ("exchange_rate", F64),
            ("fee_details", STR, _json("fee_details")),
        ),
        ("source",),
    ),
    "dispute": (
        "disputes",
        _cols(
            ("id", STR), ("charge", STR, _ref("charge")), ("payment_intent", STR, _ref("payment_intent")),
            ("amount", I64), ("currency", STR), ("status", STR), ("reason", STR), ("created", TS),
        ),
        ("charge", "payment_intent"),
    ),
    "payout": (
        "payouts",
        _cols(
            ("id", STR), ("amount", I64), ("currency", STR), ("status", STR),
            ("arrival_date", TS), ("created", TS),
        ),
        (),
    ),
}

EVENT_COLUMNS = ("id", "type", "created", "api_version", "object_id", "object_type", "applied_at", "raw")

_TYPE_WORDS = {I64: "an integer", STR: "a string", BOOL: "true or false", F64: "a number", TS: "a Unix timestamp"}


@dataclass
class IngestSummary:
    """What one ingest did: rows new / updated / unchanged (older or same) per table."""

    tables: dict[str, dict[str, int]] = field(default_factory=dict)
    events_new: int = 0
    events_duplicate: int = 0
    ignored: int = 0

    def count(self, table: str, what: str, n: int) -> None:
        row = self.tables.setdefault(table, {"new": 0, "updated": 0, "unchanged": 0})
        row[what] += n

    @property
    def new(self) -> int:
        return sum(t["new"] for t in self.tables.values())

    @property
    def updated(self) -> int:
        return sum(t["updated"] for t in self.tables.values())

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
            value = value.replace(tzinfo=timezone.utc)
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


class _Batch:
    """Objects of one ingest, grouped by type, deduplicated keeping the newest version."""

    def __init__(self) -> None:
        self.best: dict[str, dict[str, tuple[int, dict]]] = {t: {} for t in OBJECT_TABLES}
        self.events: dict[str, tuple] = {}
        self.ignored = 0

    def add(self, obj: dict, version: int, where: str) -> None:
        oid, otype = _check(obj, where)
        if otype == "event":
            self._event(obj, oid, where)
            return
        group = self.best.get(otype)
        if group is None:
            self.ignored += 1
            return
        prev = group.get(oid)
        if prev is None or version >= prev[0]:
            group[oid] = (version, obj)
        for key in OBJECT_TABLES[otype][2]:
            nested = obj.get(key)
            if type(nested) is dict and nested.get("object") in OBJECT_TABLES:
                self.add(nested, version, f"{where} -> {key}")

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


def _arrow(otype: str, columns: list[Column], rows: list[tuple[int, dict]], synced_at: datetime) -> pa.Table:
    objs = [o for _, o in rows]
    arrays, names = [], []
    for col in columns:
        values = col.extract(objs)
        try:
            arrays.append(pa.array(values, type=col.type))
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, TypeError, ValueError):
            for obj, value in zip(objs, values):
                try:
                    pa.array([value], type=col.type)
                except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, TypeError, ValueError):
                    raise IngestError(
                        f"{otype} {obj.get('id')}: field '{col.field}' must be "
                        f"{_TYPE_WORDS.get(col.type, col.type)}, got {value!r}"
                    ) from None
            raise
        names.append(col.name)
    arrays.append(pa.array([orjson.dumps(o).decode() for o in objs], type=STR))
    arrays.append(pa.array([v for v, _ in rows], type=I64))
    arrays.append(pa.array([synced_at] * len(rows), type=pa.timestamp("us", tz="UTC")))
    names += ["raw", "version", "synced_at"]
    return pa.Table.from_arrays(arrays, names=names)


def _upsert(con: duckdb.DuckDBPyConnection, table: str, data: pa.Table, summary: IngestSummary) -> None:
    view = f"_stage_{table}"
    con.register(view, data)
    try:
        # Only the id column is read to find rows that exist: a backfill or the demo mostly
        # inserts new objects, and then no stored `raw` needs to be read at all.
        (matched,) = con.execute(
            f"SELECT count(*) FROM {table} WHERE id IN (SELECT id FROM {view})"
        ).fetchone()
        select = f"SELECT *, hash(raw) AS fingerprint FROM {view}"
        if matched == 0:
            con.execute(f"INSERT INTO {table} BY NAME {select}")
            newer = 0
        else:
            # fingerprint = hash(raw), so no stored raw text is read to find real changes
            (newer,) = con.execute(
                f"SELECT count(*) FROM {view} s JOIN {table} t ON t.id = s.id "
                f"WHERE s.version >= t.version AND hash(s.raw) IS DISTINCT FROM t.fingerprint"
            ).fetchone()
            cols = [c for c in data.column_names if c != "id"] + ["fingerprint"]
            sets = ", ".join(f'"{c}" = excluded."{c}"' for c in cols)
            con.execute(
                f"INSERT INTO {table} BY NAME {select} "
                f"ON CONFLICT (id) DO UPDATE SET {sets} WHERE excluded.version >= {table}.version"
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
    synced = synced_at or datetime.now(timezone.utc)
    batch = _Batch()
    for i, obj in enumerate(objects):
        batch.add(obj, ver, f"object #{i + 1}")

    # Build every Arrow table first: a type error rejects the batch before any write.
    staged = []
    for otype, (table, columns, _) in OBJECT_TABLES.items():
        rows = list(batch.best[otype].values())
        if rows:
            staged.append((table, _arrow(otype, columns, rows, synced)))

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
            (dupes,) = con.execute(
                "SELECT count(*) FROM _stage_events s JOIN events e ON e.id = s.id"
            ).fetchone()
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

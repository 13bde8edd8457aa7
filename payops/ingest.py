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

Speed: each batch is turned into one Arrow table per Stripe type with column-wise list
comprehensions and inserted with one ``INSERT ... ON CONFLICT`` statement, never row by row.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from payops.db import connect, transaction
from payops.errors import IngestError
from payops.streams import STREAM_OBJECTS

__all__ = ["ingest_objects", "ingest_into", "IngestSummary", "TableCounts", "OBJECT_TABLES", "to_version"]

I64, STR, BOOL, F64 = pa.int64(), pa.string(), pa.bool_(), pa.float64()
TS = pa.timestamp("s", tz="UTC")

Extract = Callable[[list[dict]], list]


def _kind(f: Extract, *kind: str) -> Extract:
    f.kind = kind  # type: ignore[attr-defined]  # what the SQL path extracts (see _plan)
    return f


def _get(key: str) -> Extract:
    return _kind(lambda objs: [o.get(key) for o in objs], "get", key)


def _ref(key: str) -> Extract:
    """An expandable field: the id whether Stripe sent an id string or an expanded object."""

    def f(objs: list[dict]) -> list:
        out = []
        for o in objs:
            v = o.get(key)
            out.append(v.get("id") if type(v) is dict else v)
        return out

    return _kind(f, "ref", key)


def _json(key: str) -> Extract:
    def f(objs: list[dict]) -> list:
        out = []
        for o in objs:
            v = o.get(key)
            out.append(None if v is None else orjson.dumps(v).decode())
        return out

    return _kind(f, "json", key)


def _meta(key: str) -> Extract:
    def f(objs: list[dict]) -> list:
        out = []
        for o in objs:
            m = o.get("metadata")
            v = m.get(key) if type(m) is dict else None
            out.append(None if v is None else str(v))
        return out

    return _kind(f, "meta", key)


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


_kind(_request_id, "request_id", "payops_request_id")
_kind(_pm_type, "pm_type")
_kind(_card_brand, "card_brand")
_kind(_deleted, "deleted", "deleted")


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


# Stripe object type -> (columns in table order, expandable fields holding objects)
_SCHEMAS: dict[str, tuple[list[Column], tuple[str, ...]]] = {
    "customer": (
        _cols(
            ("id", STR), ("email", STR), ("name", STR), ("phone", STR), ("created", TS),
            ("deleted", BOOL, _deleted), ("livemode", BOOL), ("metadata", STR, _json("metadata")),
        ),
        (),
    ),
    "payment_intent": (
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
        _cols(
            ("id", STR), ("source", STR, _ref("source")), ("type", STR), ("reporting_category", STR),
            ("amount", I64), ("fee", I64), ("net", I64), ("currency", STR), ("status", STR),
            ("created", TS), ("available_on", TS), ("exchange_rate", F64),
            ("fee_details", STR, _json("fee_details")),
        ),
        ("source",),
    ),
    "dispute": (
        _cols(
            ("id", STR), ("charge", STR, _ref("charge")), ("payment_intent", STR, _ref("payment_intent")),
            ("amount", I64), ("currency", STR), ("status", STR), ("reason", STR), ("created", TS),
        ),
        ("charge", "payment_intent"),
    ),
    "payout": (
        _cols(
            ("id", STR), ("amount", I64), ("currency", STR), ("status", STR),
            ("arrival_date", TS), ("created", TS),
        ),
        (),
    ),
    "transfer": (
        _cols(
            ("id", STR), ("amount", I64), ("amount_reversed", I64), ("currency", STR),
            ("destination", STR, _ref("destination")), ("source_transaction", STR, _ref("source_transaction")),
            ("balance_transaction", STR, _ref("balance_transaction")), ("reversed", BOOL),
            ("transfer_group", STR), ("created", TS), ("livemode", BOOL), ("metadata", STR, _json("metadata")),
        ),
        ("balance_transaction",),
    ),
    "application_fee": (
        _cols(
            ("id", STR), ("account", STR, _ref("account")), ("charge", STR, _ref("charge")), ("amount", I64),
            ("amount_refunded", I64), ("currency", STR), ("refunded", BOOL),
            ("balance_transaction", STR, _ref("balance_transaction")), ("created", TS), ("livemode", BOOL),
        ),
        ("charge", "balance_transaction"),
    ),
}

# Stripe object type -> (table, columns, expandable fields), for every stream of payops.streams
OBJECT_TABLES: dict[str, tuple[str, list[Column], tuple[str, ...]]] = {
    otype: (stream, *_SCHEMAS[otype]) for stream, otype in STREAM_OBJECTS.items()
}

EVENT_COLUMNS = ("id", "type", "created", "api_version", "object_id", "object_type", "applied_at", "raw")

_TYPE_WORDS = {I64: "an integer", STR: "a string", BOOL: "true or false", F64: "a number", TS: "a Unix timestamp"}


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


def _arrow(otype: str, columns: list[Column], rows: list[tuple[int, dict]], synced_at: datetime) -> pa.Table:
    objs = [o for _, o in rows]
    arrays, names = [], []
    for col in columns:
        values = col.extract(objs)
        try:
            arrays.append(pa.array(values, type=col.type))
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, TypeError, ValueError):
            for obj, value in zip(objs, values, strict=False):
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


# --- The fast path: Python only serialises each object once; DuckDB extracts the columns. ---
#
# Each object's ``raw`` text (the same orjson text that is stored) goes to DuckDB with its
# id and version; one ``json_transform`` per row pulls every field the table needs as a
# JSON leaf, and SQL turns the leaves into typed columns. A ``_bad`` flag marks any row
# whose value is not in the plainly valid forms (an integer field holding an integer, a
# string field a string, ...). If any row is flagged (or the text cannot be made), the
# type falls back to :func:`_arrow`, the column-wise Python path, which accepts or rejects
# exactly as before and names the offending object and field in its error.

_INT = ("BIGINT", "UBIGINT")
_MAX_TS = 32_503_680_000  # 3000-01-01: beyond it (or before 1970) _arrow decides
_MAX_EXACT = 2**53  # integers pyarrow converts to float64 exactly


def _sql_str(x: str) -> str:
    return "'" + x.replace("'", "''") + "'"


def _leaf(typ: pa.DataType, x: str) -> tuple[str, str]:
    """(value, bad) SQL for a JSON leaf ``x`` (SQL NULL when missing or JSON null)."""
    t = f"json_type({x})"
    if typ == STR:
        return f"({x}->>'$')", f"({x} IS NOT NULL AND {t} <> 'VARCHAR')"
    if typ == BOOL:
        return f"TRY_CAST({x} AS BOOLEAN)", f"({x} IS NOT NULL AND {t} <> 'BOOLEAN')"
    i = f"TRY_CAST({x} AS BIGINT)"
    if typ == I64:
        return i, f"({x} IS NOT NULL AND ({t} NOT IN {_INT} OR {i} IS NULL))"
    if typ == F64:
        return f"TRY_CAST({x} AS DOUBLE)", (
            f"({x} IS NOT NULL AND NOT ({t} = 'DOUBLE' OR "
            f"({t} IN {_INT} AND coalesce(abs({i}) < {_MAX_EXACT}, false))))"
        )
    if typ == TS:
        ok = f"coalesce({i} BETWEEN 0 AND {_MAX_TS}, false)"
        return (
            f"to_timestamp(CASE WHEN {ok} THEN {i} END)",
            f"({x} IS NOT NULL AND NOT ({t} IN {_INT} AND {ok}))",
        )
    raise AssertionError(typ)


class _Shape:
    """The JSON shape ``json_transform`` extracts: top-level keys, and metadata keys."""

    def __init__(self) -> None:
        self.top: dict[str, Any] = {}
        self.meta: dict[str, str] = {}

    def j(self, key: str) -> str:
        self.top.setdefault(key, "JSON")
        return f"struct_extract(j, {_sql_str(key)})"

    def m(self, key: str) -> str:
        self.j("metadata")
        self.meta[key] = "JSON"
        return f"struct_extract(mj, {_sql_str(key)})"

    def pmd(self, leaf: str, shape: Any) -> str:
        pmd = self.top.setdefault("payment_method_details", {})
        if not isinstance(pmd, dict):
            raise AssertionError("payment_method_details read twice")
        pmd[leaf] = shape
        return f"struct_extract(struct_extract(j, 'payment_method_details'), {_sql_str(leaf)})"


# (value, bad) SQL per extractor kind (see _kind): one function each, looked up by name
def _sql_get(shape: _Shape, typ: pa.DataType, key: str) -> tuple[str, str]:
    return _leaf(typ, shape.j(key))


def _sql_ref(shape: _Shape, typ: pa.DataType, key: str) -> tuple[str, str]:
    x = shape.j(key)
    return (
        f"(CASE WHEN json_type({x}) = 'OBJECT' THEN {x}->>'id' ELSE {x}->>'$' END)",
        f"({x} IS NOT NULL AND NOT (json_type({x}) = 'VARCHAR' OR (json_type({x}) = 'OBJECT' "
        f"AND coalesce(json_type({x}, '$.id'), 'NULL') IN ('VARCHAR', 'NULL'))))",
    )


def _sql_json(shape: _Shape, typ: pa.DataType, key: str) -> tuple[str, str]:
    x = shape.j(key)
    # stored text must be orjson's: DuckDB re-serialises, so its text must occur in raw
    return f"CAST({x} AS VARCHAR)", f"({x} IS NOT NULL AND NOT contains(raw, CAST({x} AS VARCHAR)))"


def _sql_meta(shape: _Shape, typ: pa.DataType, key: str) -> tuple[str, str]:
    return _leaf(STR, shape.m(key))


def _sql_request_id(shape: _Shape, typ: pa.DataType, key: str) -> tuple[str, str]:
    y = shape.m(key)
    ys, t = f"({y}->>'$')", f"json_type({y})"
    return (
        f"(CASE WHEN {t} IN {_INT} THEN TRY_CAST({y} AS BIGINT) "
        f"WHEN {t} = 'VARCHAR' AND regexp_full_match({ys}, '[0-9]{{1,18}}') "
        f"THEN TRY_CAST({ys} AS BIGINT) END)",
        f"({y} IS NOT NULL AND (({t} IN {_INT} AND TRY_CAST({y} AS BIGINT) IS NULL) OR "
        f"({t} = 'VARCHAR' AND (strlen({ys}) <> length({ys}) "
        f"OR regexp_full_match({ys}, '[0-9]{{19,}}')))))",
    )


def _sql_pm_type(shape: _Shape, typ: pa.DataType, key: str) -> tuple[str, str]:
    return _leaf(STR, shape.pmd("type", "JSON"))


def _sql_card_brand(shape: _Shape, typ: pa.DataType, key: str) -> tuple[str, str]:
    return _leaf(STR, f"struct_extract({shape.pmd('card', {'brand': 'JSON'})}, 'brand')")


def _sql_deleted(shape: _Shape, typ: pa.DataType, key: str) -> tuple[str, str]:
    x = shape.j(key)
    return f"coalesce(TRY_CAST({x} AS BOOLEAN), false)", f"({x} IS NOT NULL AND json_type({x}) <> 'BOOLEAN')"


_KIND_SQL: dict[str, Callable[[_Shape, pa.DataType, str], tuple[str, str]]] = {
    "get": _sql_get, "ref": _sql_ref, "json": _sql_json, "meta": _sql_meta,
    "request_id": _sql_request_id, "pm_type": _sql_pm_type, "card_brand": _sql_card_brand,
    "deleted": _sql_deleted,
}


def _plan(columns: list[Column]) -> tuple[str, list[str]]:
    """The SQL that turns ``_stage(id, raw, version, synced_at)`` into the table's rows."""
    shape = _Shape()
    selects, bads = [], []
    for col in columns:
        if col.name == "id":
            selects.append("id")
            continue
        kind = getattr(col.extract, "kind", None)
        if not kind or kind[0] not in _KIND_SQL:
            raise AssertionError(f"no SQL for column {col.name}")
        value, bad = _KIND_SQL[kind[0]](shape, col.type, kind[1] if len(kind) > 1 else "")
        selects.append(f'{value} AS "{col.name}"')
        bads.append(bad)

    inner = f"SELECT *, json_transform(raw, {_sql_str(orjson.dumps(shape.top).decode())}) AS j FROM {{view}}"
    if shape.meta:
        inner = (
            f"SELECT *, json_transform(struct_extract(j, 'metadata'), "
            f"{_sql_str(orjson.dumps(shape.meta).decode())}) AS mj FROM ({inner})"
        )
    bad = " OR ".join(bads) if bads else "false"
    sql = (
        f"SELECT {', '.join(selects)}, raw, version, synced_at, coalesce({bad}, true) AS _bad "
        f"FROM ({inner})"
    )
    return sql, [c.name for c in columns]


_PLANS: dict[str, tuple[str, list[str]]] = {}
_SYNCED_TYPE = pa.timestamp("us", tz="UTC")


def _stage(
    con: duckdb.DuckDBPyConnection, otype: str, table: str, columns: list[Column],
    group: dict[str, dict], versions: dict[str, int], synced_at: datetime,
) -> pa.Table:
    """The typed rows of one type, via DuckDB; :func:`_arrow` whenever in any doubt."""
    objs = list(group.values())
    dumps = orjson.dumps

    def slow() -> pa.Table:
        return _arrow(otype, columns, list(zip(versions.values(), objs, strict=False)), synced_at)

    try:
        # (str, not bytes: pyarrow converts a list of str several times faster)
        raw = pa.array([dumps(o).decode() for o in objs], STR)
        stage = pa.Table.from_arrays(
            [
                pa.array(list(group), STR),
                raw,
                pa.array(list(versions.values()), I64),
                pa.repeat(pa.scalar(synced_at, _SYNCED_TYPE), len(objs)),
            ],
            names=["id", "raw", "version", "synced_at"],
        )
    except (orjson.JSONEncodeError, TypeError, ValueError, OverflowError, pa.ArrowException):
        return slow()
    plan = _PLANS.get(otype)
    if plan is None:
        plan = _PLANS[otype] = _plan(columns)
    sql, names = plan
    view = f"_json_{table}"
    con.register(view, stage)
    try:
        out = con.sql(sql.replace("{view}", view)).to_arrow_table()
    except duckdb.Error:
        out = None
    finally:
        con.unregister(view)
    if out is None or out.num_rows != len(objs) or pc.any(out.column("_bad")).as_py():
        return slow()
    return out.select(names + ["raw", "version", "synced_at"])


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
            staged.append((table, _stage(con, otype, table, columns, group, batch.versions[otype], synced)))

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

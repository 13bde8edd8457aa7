"""Typed rows of one Stripe type for DuckDB: the SQL fast path, the Python path as referee.

:func:`stage_rows` turns a group of objects of one type into an Arrow table in the table's
column order plus ``raw``, ``version`` and ``synced_at``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import duckdb
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from payops.db import sql_literal
from payops.errors import IngestError
from payops.ingest.schema import BOOL, F64, I64, STR, TS, TYPE_WORDS, Column

__all__ = ["stage_rows", "arrow_rows"]


def arrow_rows(otype: str, columns: list[Column], rows: list[tuple[int, dict]], synced_at: datetime) -> pa.Table:
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
                        f"{TYPE_WORDS.get(col.type, col.type)}, got {value!r}"
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
# type falls back to :func:`arrow_rows`, the column-wise Python path, which accepts or rejects
# exactly as before and names the offending object and field in its error.

_INT = ("BIGINT", "UBIGINT")
_MAX_TS = 32_503_680_000  # 3000-01-01: beyond it (or before 1970) arrow_rows decides
_MAX_EXACT = 2**53  # integers pyarrow converts to float64 exactly


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
        return f"struct_extract(j, {sql_literal(key)})"

    def m(self, key: str) -> str:
        self.j("metadata")
        self.meta[key] = "JSON"
        return f"struct_extract(mj, {sql_literal(key)})"

    def pmd(self, leaf: str, shape: Any) -> str:
        pmd = self.top.setdefault("payment_method_details", {})
        if not isinstance(pmd, dict):
            raise AssertionError("payment_method_details read twice")
        pmd[leaf] = shape
        return f"struct_extract(struct_extract(j, 'payment_method_details'), {sql_literal(leaf)})"


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

    inner = f"SELECT *, json_transform(raw, {sql_literal(orjson.dumps(shape.top).decode())}) AS j FROM {{view}}"
    if shape.meta:
        inner = (
            f"SELECT *, json_transform(struct_extract(j, 'metadata'), "
            f"{sql_literal(orjson.dumps(shape.meta).decode())}) AS mj FROM ({inner})"
        )
    bad = " OR ".join(bads) if bads else "false"
    sql = (
        f"SELECT {', '.join(selects)}, raw, version, synced_at, coalesce({bad}, true) AS _bad "
        f"FROM ({inner})"
    )
    return sql, [c.name for c in columns]


_PLANS: dict[str, tuple[str, list[str]]] = {}
_SYNCED_TYPE = pa.timestamp("us", tz="UTC")


def stage_rows(
    con: duckdb.DuckDBPyConnection, otype: str, table: str, columns: list[Column],
    group: dict[str, dict], versions: dict[str, int], synced_at: datetime,
) -> pa.Table:
    """The typed rows of one type, via DuckDB; :func:`arrow_rows` whenever in any doubt."""
    objs = list(group.values())
    dumps = orjson.dumps

    def slow() -> pa.Table:
        return arrow_rows(otype, columns, list(zip(versions.values(), objs, strict=False)), synced_at)

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

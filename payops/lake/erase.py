"""Erasing one customer's personal data from the lake, with the database's erasure rules.

``payops erase-customer`` scrubs the database (and the archive and exports) with
:func:`payops.maintenance.erase_customer`; :func:`erase_customer` here applies the very same
functions of :mod:`payops.maintenance.privacy` to the lake's files: which objects belong to the customer, which fields
are personal, what replaces them. Only files that hold such a row (or the customer's email
in another row) are rewritten, under new names, and the manifest is swapped once.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from payops.errors import InvalidInput
from payops.lake.store import (
    _STAGING,
    _collect_garbage,
    _locked,
    _partition_stats,
    _q,
    _read_sql,
    _save_manifest,
    _spec_of,
    _sql_list,
    _write_partitions,
    duckdb_views,
    files,
    manifest,
)
from payops.maintenance import privacy

__all__ = ["LakeErasure", "erase_customer"]

# payops's own table: its free text is scrubbed of the customer's email, name and phone
_REQUESTS = "refund_requests"


@dataclass
class LakeErasure:
    """What :func:`erase_customer` changed in the lake: counts only, no personal data."""

    customer: str
    dry_run: bool
    tables: dict[str, int] = field(default_factory=dict)  # table -> files rewritten
    version: int | None = None

    @property
    def files(self) -> int:
        return sum(self.tables.values())


def _find(lake: Path, doc: dict, customer: str) -> tuple[dict[str, set[str]], privacy._Needles]:
    """Which objects are the customer's and how their personal data reads, looked up in the lake.

    The database's own lookups (:mod:`payops.maintenance.privacy`) run on DuckDB views of the
    lake's tables; the lake has no archive folder, so they are pointed at none.
    """
    nowhere = lake / _STAGING / "no-archive"
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        duckdb_views(con, lake)
        found = privacy._union(con, "customers", "email, name, phone, CAST(raw AS VARCHAR)", "id = ?", [customer],
                               nowhere)
        owned = privacy._owned_ids(con, customer, nowhere)
        values = privacy._personal_values(con, found, customer, nowhere)
    finally:
        con.close()
    # a masked lake holds "***" where the values were: never something to look for
    values = [v for v in values if v != privacy.MASK]
    emails = sorted({v.strip() for v in values if isinstance(v, str) and "@" in v})
    return owned, privacy._Needles(customer, emails, privacy._patterns(emails), privacy._patterns(values))


def _targets(table: str, owned: dict[str, set[str]], needles: privacy._Needles) -> tuple[tuple[str, ...], str, list]:
    """(text columns, condition, parameters) selecting the rows of ``table`` erasure may change."""
    text_cols: tuple[str, ...]
    params: list[Any]
    if table == _REQUESTS:
        text_cols, cond, params = tuple(privacy.REQUEST_TEXT), ["customer = ?"], [needles.customer]
    else:
        text_cols = privacy._ERASE_COLUMNS[table][0]
        cond, params = ["list_contains(?::VARCHAR[], id)"], [sorted(owned.get(table, set()))]
    for col in text_cols:
        for email in needles.emails:
            cond.append(f"lower(CAST({_q(col)} AS VARCHAR)) LIKE ?")
            params.append(f"%{email.lower()}%")
    return text_cols, " OR ".join(cond), params


def _files_to_scrub(lake: Path, doc: dict, table: str, owned: dict[str, set[str]], needles: privacy._Needles
                    ) -> list[Path]:
    """The files of ``table`` with a row erasure may change: one scan of the table."""
    paths = files(lake, table, doc=doc)
    text_cols, cond, params = _targets(table, owned, needles)
    con = duckdb.connect()
    try:
        present = {r[0] for r in con.execute(
            f"DESCRIBE SELECT * FROM read_parquet({_sql_list(paths)}, hive_partitioning = false)").fetchall()}
        if any(c not in present for c in text_cols):  # an older lake: fall back to every file
            return paths
        rows = con.execute(f"SELECT DISTINCT filename FROM read_parquet({_sql_list(paths)}, filename = true, "
                           f"hive_partitioning = false) WHERE {cond}", params).fetchall()
    finally:
        con.close()
    return sorted(Path(r[0]) for r in rows)


def _scrubber(table: str, owned: dict[str, set[str]], needles: privacy._Needles
              ) -> Callable[[duckdb.DuckDBPyConnection], int]:
    """The database's scrubbing step for ``table``, bound to this customer."""
    if table == _REQUESTS:
        return lambda con: privacy._scrub_requests(con, needles, dry_run=False)
    mine = owned.get(table, set())
    return lambda con: privacy._scrub_relation(con, table, table, mine, needles, dry_run=False)


def _scrub_file(path: Path, table: str, key: list[str], scrub: Callable[[duckdb.DuckDBPyConnection], int]
                ) -> pa.Table | None:
    """One file loaded as table ``table`` of a scratch database and scrubbed; its new rows, or None if unchanged."""
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.execute(f"CREATE TABLE {_q(table)} AS SELECT * FROM read_parquet({_sql_list([path])}, "
                    "hive_partitioning = false)")
        if not scrub(con):
            return None
        return con.sql(f"SELECT * FROM {_q(table)} ORDER BY {', '.join(_q(k) for k in key)}").to_arrow_table()
    finally:
        con.close()


def erase_customer(lake: str | Path, customer: str, *, dry_run: bool = False) -> LakeErasure:
    """Remove one customer's personal data from the lake, as ``payops erase-customer`` does in the database.

    Rewrites every file holding one of the customer's rows (or their email in another row)
    with the database's erasure rules (the same functions), then swaps in a new manifest;
    the old files are deleted after the swap. Amounts, ids and dates are untouched. The
    audit log is append-only in the database and stays as it is in the lake too.

    Args:
        lake: the lake folder.
        customer: the Stripe customer id, ``cus_...``.
        dry_run: count the files that would change; change nothing.

    Returns:
        Files rewritten per table, and the manifest version now current (None if nothing changed).

    Raises:
        InvalidInput: not a customer id.
        NotFound: no lake at ``lake``.
    """
    if not customer or not customer.startswith("cus_"):
        raise InvalidInput(f"not a customer id: {customer!r} (expected cus_...)")
    lake = Path(lake)
    result = LakeErasure(customer, dry_run)
    with _locked(lake):
        doc = manifest(lake)
        owned, needles = _find(lake, doc, customer)
        rewritten: dict[str, dict[Path, pa.Table]] = {}
        for table in sorted(set(privacy._ERASE_COLUMNS) | {_REQUESTS}):
            if table not in doc["tables"]:
                continue
            scrub = _scrubber(table, owned, needles)
            for path in _files_to_scrub(lake, doc, table, owned, needles):
                rows = _scrub_file(path, table, doc["tables"][table]["key"], scrub)
                if rows is not None:
                    rewritten.setdefault(table, {})[path] = rows
        result.tables = {t: len(v) for t, v in rewritten.items()}
        if rewritten and not dry_run:
            result.version = _replace_files(lake, doc, rewritten)
    return result


def _replace_files(lake: Path, doc: dict, rewritten: dict[str, dict[Path, pa.Table]]) -> int:
    """Write the scrubbed files under new names, recompute their partitions' checksums, swap the manifest."""
    staging = lake / _STAGING / uuid.uuid4().hex
    new = {**doc, "tables": dict(doc["tables"]), "version": doc["version"] + 1}
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        for table, by_file in rewritten.items():
            entry = {**new["tables"][table], "partitions": dict(new["tables"][table]["partitions"])}
            for n, (path, rows) in enumerate(sorted(by_file.items())):
                rel = path.relative_to(lake).as_posix()
                folder = path.parent.relative_to(lake / table).as_posix()
                folder = "" if folder == "." else folder
                got = _write_partitions(pa.RecordBatchReader.from_batches(rows.schema, rows.to_batches()), (),
                                        lake, staging / table / str(n), "/".join(p for p in (table, folder) if p))
                part = dict(entry["partitions"][folder])
                part["files"] = [f for f in part["files"] if f["path"] != rel] + got[""]
                entry["partitions"][folder] = part
            new["tables"][table] = _rechecksum(con, lake, table, entry)
    finally:
        con.close()
    _save_manifest(lake, new)
    _collect_garbage(lake, new, doc)
    return new["version"]


def _rechecksum(con: duckdb.DuckDBPyConnection, lake: Path, table: str, entry: dict) -> dict:
    """The entry with checksums recomputed from its files (what a fresh export of the erased database gives)."""
    paths = [lake / f["path"] for p in entry["partitions"].values() for f in p["files"]]
    con.execute(f"CREATE OR REPLACE VIEW {_q(table)} AS SELECT * FROM {_read_sql(paths, entry['partition_by'])}")
    stats = _partition_stats(con, _spec_of(table, entry))
    checksum = 0
    for folder, part in entry["partitions"].items():
        part["checksum"] = stats.get(folder, part)["checksum"]
        checksum ^= int(part["checksum"], 16)
    entry["checksum"] = f"{checksum:016x}"
    entry["bytes"] = sum(f["bytes"] for p in entry["partitions"].values() for f in p["files"])
    return entry

"""Exporting the database into the lake, storing engines' results, verifying a lake."""

from __future__ import annotations

import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa
from tqdm import tqdm

from payops.db import connect
from payops.lake.store import (
    _BATCH_ROWS,
    _STAGING,
    FORMAT,
    NULL_PARTITION,
    RESULTS,
    LakeError,
    TableSpec,
    _check_target,
    _collect_garbage,
    _commit,
    _iso,
    _locked,
    _partition_stats,
    _q,
    _read_sql,
    _save_manifest,
    _sha256,
    _spec_of,
    _specs,
    _values,
    _write_partitions,
    files,
    manifest,
)


# =========================================================================== export
@dataclass
class TableExport:
    """What an export did to one table."""

    table: str
    rows: int = 0
    partitions: int = 0
    written: int = 0
    removed: int = 0
    bytes_written: int = 0

    @property
    def unchanged(self) -> int:
        return self.partitions - self.written


@dataclass
class ExportResult:
    """What :func:`export` did: the manifest version now current, and per table counts."""

    lake: Path
    version: int
    changed: bool
    tables: dict[str, TableExport] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def bytes_written(self) -> int:
        return sum(t.bytes_written for t in self.tables.values())

    @property
    def rows(self) -> int:
        return sum(t.rows for t in self.tables.values())

    @property
    def written(self) -> int:
        return sum(t.written for t in self.tables.values())

    @property
    def partitions(self) -> int:
        return sum(t.partitions for t in self.tables.values())


def _rows_reader(con, spec: TableSpec, folders: list[str], mask: bool) -> pa.RecordBatchReader:
    cols = [_q(c) for c, _ in spec.columns]
    if spec.time_column:
        cols.append(f"{spec.month_sql()} AS month")
    order = ", ".join(["k"] + [_q(c) for c in spec.key])
    sql = (f"SELECT * EXCLUDE (k) FROM (SELECT {', '.join(cols)}, {spec.partition_sql()} AS k FROM {_q(spec.name)}) "
           f"WHERE list_contains($folders, k) ORDER BY {order}")
    reader = con.sql(sql, params={"folders": folders}).to_arrow_reader(_BATCH_ROWS)
    if not mask:
        return reader
    from payops.maintenance import mask_pii  # the exports' rules for personal data: one owner

    schema = reader.schema

    def masked() -> Iterator[pa.RecordBatch]:
        for batch in reader:
            # Arrow-backed columns: a NULL in a BIGINT column must not turn it into floats
            frame = mask_pii(batch.to_pandas(types_mapper=pd.ArrowDtype))
            yield pa.RecordBatch.from_pandas(frame, schema=schema, preserve_index=False)

    return pa.RecordBatchReader.from_batches(schema, masked())


def _plan(spec: TableSpec, stats: dict[str, dict], before: dict | None, lake: Path, force: bool
          ) -> tuple[dict[str, dict], list[str]]:
    """Which partitions keep their files (same rows, same checksum, files present) and which are written."""
    same_layout = not force and before is not None and before.get("fingerprint") == spec.fingerprint
    old = before["partitions"] if same_layout and before is not None else {}
    parts: dict[str, dict] = {}
    todo = []
    for folder, s in sorted(stats.items()):
        prev = old.get(folder)
        if prev and prev["checksum"] == s["checksum"] and prev["rows"] == s["rows"] and \
                all((lake / f["path"]).is_file() for f in prev["files"]):
            parts[folder] = prev
        else:
            todo.append(folder)
            parts[folder] = {"values": _values(folder), **s, "files": []}
    return parts, todo


def _export_table(con, spec: TableSpec, lake: Path, staging: Path, before: dict | None,
                  mask: bool, force: bool, rel_dir: str | None = None) -> tuple[dict, TableExport]:
    """Bring one table's partitions in the lake up to date; its new manifest entry and what was done."""
    stats = _partition_stats(con, spec)
    if not stats:  # an empty table still gets one empty file, so every reader knows its columns
        stats = {"/".join(f"{c}={NULL_PARTITION}" for c in spec.partition_by):
                 {"rows": 0, "checksum": f"{0:016x}", "min": None, "max": None}}
    parts, todo = _plan(spec, stats, before, lake, force)
    done = TableExport(spec.name, rows=sum(s["rows"] for s in stats.values()), partitions=len(parts),
                       written=len(todo), removed=len(set((before or {}).get("partitions", {})) - set(parts)))
    if todo:
        got = _write_partitions(_rows_reader(con, spec, todo, mask), spec.partition_by, lake,
                                staging / spec.name, rel_dir or spec.name)
        missing = set(todo) - set(got)
        if missing:
            raise LakeError(f"{spec.name}: partitions {sorted(missing)[:3]} were not written (unexpected folder names)")
        for folder in todo:
            parts[folder]["files"] = got[folder]
            done.bytes_written += sum(f["bytes"] for f in got[folder])
    checksum = 0
    for p in parts.values():
        checksum ^= int(p["checksum"], 16)
    entry = {"columns": [list(c) for c in spec.columns], "key": list(spec.key), "time_column": spec.time_column,
             "partition_by": list(spec.partition_by), "fingerprint": spec.fingerprint, "rows": done.rows,
             "checksum": f"{checksum:016x}", "partitions": parts,
             "bytes": sum(f["bytes"] for p in parts.values() for f in p["files"])}
    return entry, done


def _schema_version(con) -> int | None:
    try:
        return con.execute("SELECT max(version) FROM schema_migrations").fetchone()[0]
    except duckdb.CatalogException:
        return None


def _content(doc: dict) -> Any:
    """What makes two manifests the same lake (not when or how often it was exported)."""
    return {k: v for k, v in doc.items() if k not in ("version", "exported_at")}


def export(to: str | Path, *, db: str | Path | None = None, mask_pii: bool = False, progress: bool = False,
           now: datetime | None = None) -> ExportResult:
    """Export every table of the database into the lake at ``to``, rewriting only what changed.

    Args:
        to: the lake folder (created if missing; an existing folder must be empty or a lake).
        db: database path (default ``PAYOPS_DB``); opened read-only, as one snapshot.
        mask_pii: mask personal data as ``payops export --mask-pii`` does (the same function).
            Switching it on or off rewrites every partition.
        progress: show a progress bar (one step per table).
        now: the export time recorded in the manifest (default: the clock).

    Returns:
        What was written; ``changed`` is False when the lake already matched the database
        (the manifest is then left as it was).

    Raises:
        LakeBusy: another process is writing the lake.
        LakeError: ``to`` is a non-empty folder that is not a lake.
    """
    lake = Path(to)
    began = time.monotonic()
    with _locked(lake):
        old = _check_target(lake)
        shutil.rmtree(lake / _STAGING, ignore_errors=True)  # what a killed run left
        staging = lake / _STAGING / uuid.uuid4().hex
        force = old is not None and bool(old.get("mask_pii")) != mask_pii
        before = (old or {}).get("tables", {})
        result = ExportResult(lake, version=(old or {}).get("version", 0), changed=False)
        entries: dict[str, dict] = {}
        with connect(db, read_only=True) as con:
            con.execute("BEGIN TRANSACTION")  # one snapshot of every table
            specs = _specs(con)
            schema_version = _schema_version(con)
            for spec in tqdm(specs, desc="lake export", unit="table", disable=not progress):
                entries[spec.name], result.tables[spec.name] = _export_table(
                    con, spec, lake, staging, before.get(spec.name), mask_pii, force)
            con.execute("ROLLBACK")
        doc = {"format": FORMAT, "version": result.version + 1,
               "exported_at": _iso(now or datetime.now(UTC)), "schema_version": schema_version,
               "mask_pii": mask_pii, "checksum": f"xor of duckdb hash() per row (duckdb {duckdb.__version__})",
               "tables": entries, RESULTS: (old or {}).get(RESULTS, {})}
        for gone in set(before) - set(entries):
            result.tables[gone] = TableExport(gone, removed=len(before[gone]["partitions"]))
        if old is None or _content(old) != _content(doc):
            _save_manifest(lake, doc)
            result.version, result.changed = doc["version"], True
        else:
            doc = old
        _collect_garbage(lake, doc, old)
    result.seconds = time.monotonic() - began
    return result


# =========================================================================== results
def write_result(lake: str | Path, name: str, rows: pa.Table, *, key: tuple[str, ...] = ("day", "currency"),
                 time_column: str = "day", replace: tuple[date, date] | None = None, meta: dict | None = None) -> int:
    """Store what an engine computed from the lake as ``results/<name>`` (Parquet, through the manifest).

    Rows of the result already stored whose ``time_column`` falls in ``replace`` (inclusive)
    are replaced by ``rows``; other stored rows stay. Without ``replace`` the result is
    replaced whole. Partitioned like the tables (currency, month), written the same way.

    Args:
        lake: the lake folder.
        name: the result's name, e.g. ``daily_metrics``.
        rows: the rows (an Arrow table).
        key: columns that identify a row (its sort order in the files).
        time_column: the column whose month partitions the files.
        replace: the (first, last) values of ``time_column`` that ``rows`` covers.
        meta: what to record next to it in the manifest (engine, timezone, range...).

    Returns:
        The manifest version now current.
    """
    lake = Path(lake)
    with _locked(lake):
        old = manifest(lake)
        con = duckdb.connect()
        try:
            con.execute("SET TimeZone = 'UTC'")
            con.register("_new", rows)
            merged = "SELECT * FROM _new"
            before = old.get(RESULTS, {}).get(name)
            if before is not None and replace is not None:
                stored = _read_sql(files(lake, f"{RESULTS}/{name}", doc=old), before["partition_by"])
                merged += (f" UNION ALL BY NAME SELECT * EXCLUDE (month) FROM {stored} "
                           f"WHERE {_q(time_column)} NOT BETWEEN $lo AND $hi")
            con.execute(f"CREATE TABLE {_q(name)} AS {merged}", {"lo": replace[0], "hi": replace[1]} if
                        before is not None and replace is not None else None)
            columns = tuple((c, t) for c, t, *_ in con.execute(f"DESCRIBE {_q(name)}").fetchall())
            spec = TableSpec(name, columns, key, time_column, "currency" in dict(columns))
            staging = lake / _STAGING / uuid.uuid4().hex
            entry, _ = _export_table(con, spec, lake, staging, before, mask=False, force=False,
                                     rel_dir=f"{RESULTS}/{name}")
        finally:
            con.close()
        # what earlier runs recorded next to the result stays unless this run says otherwise
        entry = {**{k: v for k, v in (before or {}).items() if k not in entry}, **entry, **(meta or {})}
        return _commit(lake, old, RESULTS, name, entry)


# =========================================================================== verify
def verify(lake: str | Path) -> list[str]:
    """Check the lake against its manifest: files present with their SHA-256, rows and checksums.

    Checksums are recomputed from the files with DuckDB; a lake exported with ``mask_pii``
    holds masked rows, so only its row counts and file hashes are checked.

    Returns:
        One line per problem; empty when the lake is whole.
    """
    lake = Path(lake)
    doc = manifest(lake)
    problems = []
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        for section in ("tables", RESULTS):
            for name, entry in sorted(doc.get(section, {}).items()):
                label = name if section == "tables" else f"{RESULTS}/{name}"
                problems += _verify_table(con, lake, doc, label, entry, checksums=not doc.get("mask_pii"))
    finally:
        con.close()
    return problems


def _verify_table(con, lake: Path, doc: dict, name: str, entry: dict, checksums: bool) -> list[str]:
    problems = []
    for p in entry["partitions"].values():
        for f in p["files"]:
            path = lake / f["path"]
            if not path.is_file():
                problems.append(f"{f['path']}: missing")
            elif _sha256(path) != f["sha256"]:
                problems.append(f"{f['path']}: SHA-256 differs from the manifest")
    if problems:
        return problems
    spec = _spec_of(name.rpartition("/")[2], entry)
    con.execute(f"CREATE OR REPLACE VIEW {_q(spec.name)} AS SELECT * FROM "
                f"{_read_sql(files(lake, name, doc=doc), entry['partition_by'])}")
    found = _partition_stats(con, spec)
    for folder, p in sorted(entry["partitions"].items()):
        got = found.get(folder, {"rows": 0, "checksum": f"{0:016x}"})
        if got["rows"] != p["rows"]:
            problems.append(f"{name}/{folder}: {got['rows']} rows, the manifest says {p['rows']}")
        elif checksums and got["checksum"] != p["checksum"]:
            problems.append(f"{name}/{folder}: checksum {got['checksum']}, the manifest says {p['checksum']}")
    return problems



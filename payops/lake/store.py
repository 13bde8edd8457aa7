"""The lake's storage layer: table layout, the manifest, readers, atomic writes, garbage collection.

See :mod:`payops.lake` for the layout and the guarantees.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import duckdb
import orjson
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from payops.config import get_settings
from payops.db import sql_literal
from payops.errors import NotFound, TerminalError, TransientError

FORMAT = "payops-lake/1"
MANIFEST = "manifest.json"
NULL_PARTITION = "__HIVE_DEFAULT_PARTITION__"
RESULTS = "results"
_STAGING = "_staging"
_LOCK = ".lock"
#: time columns a table is partitioned by (the first one it has), month of it in UTC
TIME_COLUMNS = ("created", "requested_at", "session_start", "day", "at")
#: tables that stay out of the lake (the schema version is in the manifest instead)
NOT_EXPORTED = ("schema_migrations",)
_BATCH_ROWS = 65_536
# Fixed row-group size: a file's bytes depend only on its rows, not on how they were batched.
_ROW_GROUP = 131_072
_MAX_FILE_ROWS = 8 * _ROW_GROUP
_PARQUET = ds.ParquetFileFormat()


class LakeError(TerminalError):
    """The lake cannot be used."""


class LakeBusy(TransientError):
    """Another payops process is writing this lake."""


# =========================================================================== table specs
@dataclass(frozen=True)
class TableSpec:
    """How one table is laid out in the lake."""

    name: str
    columns: tuple[tuple[str, str], ...]  # (name, DuckDB type), the database's order
    key: tuple[str, ...]
    time_column: str | None
    by_currency: bool

    @property
    def partition_by(self) -> tuple[str, ...]:
        return (("currency",) if self.by_currency else ()) + (("month",) if self.time_column else ())

    @property
    def fingerprint(self) -> str:
        """Changes when the columns or the layout change: every partition is then rewritten."""
        text = orjson.dumps([FORMAT, self.columns, self.key, self.time_column, self.by_currency])
        return hashlib.sha256(text).hexdigest()[:16]

    def month_sql(self) -> str:
        col = _q(self.time_column or "")
        kind = dict(self.columns)[self.time_column or ""]
        value = f"{col} AT TIME ZONE 'UTC'" if "TIME ZONE" in kind else col
        return f"strftime({value}, '%Y-%m')"

    def partition_sql(self) -> str:
        """SQL for a row's partition folder, e.g. ``currency=usd/month=2026-11`` ('' if none)."""
        parts = []
        if self.by_currency:
            parts.append(f"'currency=' || coalesce(CAST(currency AS VARCHAR), '{NULL_PARTITION}')")
        if self.time_column:
            parts.append(f"'month=' || coalesce({self.month_sql()}, '{NULL_PARTITION}')")
        return " || '/' || ".join(parts) if parts else "''"

    def hash_sql(self) -> str:
        return f"hash({', '.join(_q(c) for c, _ in self.columns)})"


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _specs(con: duckdb.DuckDBPyConnection) -> list[TableSpec]:
    names = [r[0] for r in con.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main' "
        "AND table_type = 'BASE TABLE' ORDER BY table_name").fetchall()]
    keys = {t: tuple(cols) for t, cols in con.execute(
        "SELECT table_name, constraint_column_names FROM duckdb_constraints() "
        "WHERE constraint_type = 'PRIMARY KEY'").fetchall()}
    out = []
    for name in names:
        if name in NOT_EXPORTED:
            continue
        columns = tuple((c, t) for c, t in con.execute(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = 'main' "
            "AND table_name = ? ORDER BY ordinal_position", [name]).fetchall())
        types = dict(columns)
        time_col = next((c for c in TIME_COLUMNS if c in types and ("TIME" in types[c] or types[c] == "DATE")), None)
        out.append(TableSpec(name, columns, keys.get(name) or tuple(c for c, _ in columns), time_col,
                             "currency" in types))
    return out


# =========================================================================== manifest
def _manifest_path(lake: Path) -> Path:
    return lake / MANIFEST


def manifest(lake: str | Path) -> dict:
    """The lake's current manifest (a dict, see the module docstring).

    Raises:
        NotFound: the folder holds no lake.
    """
    path = _manifest_path(Path(lake))
    try:
        doc = orjson.loads(path.read_bytes())
    except FileNotFoundError:
        raise NotFound(f"no payops lake at {lake} (no {MANIFEST}); run `payops lake export --to {lake}`") from None
    except orjson.JSONDecodeError:
        raise LakeError(f"{path} is not valid JSON") from None
    if doc.get("format") != FORMAT:
        raise LakeError(f"{path} is not a {FORMAT} manifest (format {doc.get('format')!r})")
    return doc


def _manifest_or_none(lake: Path) -> dict | None:
    return manifest(lake) if _manifest_path(lake).exists() else None


def _entry(doc: dict, table: str) -> dict:
    """A table's manifest entry: ``charges``, or ``results/daily_metrics`` for a result."""
    section, _, name = table.rpartition("/")
    if section in ("", RESULTS) and name in doc.get(section or "tables", {}):
        return doc[section or "tables"][name]
    known = ", ".join(sorted(doc.get("tables", {})) + [f"{RESULTS}/{t}" for t in sorted(doc.get(RESULTS, {}))])
    raise NotFound(f"no table {table!r} in the lake (it has: {known or 'nothing'})")


def tables(lake: str | Path) -> list[str]:
    """Names of the exported tables in the lake."""
    return sorted(manifest(lake)["tables"])


def files(lake: str | Path, table: str, *, doc: dict | None = None) -> list[Path]:
    """The Parquet files that make up ``table`` now (``charges``, or ``results/daily_metrics``)."""
    lake = Path(lake)
    entry = _entry(doc or manifest(lake), table)
    return [lake / f["path"] for p in entry["partitions"].values() for f in p["files"]]


def dataset(lake: str | Path, table: str) -> ds.Dataset:
    """A pyarrow dataset of ``table`` through the manifest (partition columns as strings)."""
    lake = Path(lake)
    doc = manifest(lake)
    entry = _entry(doc, table)
    part = ds.partitioning(pa.schema([(c, pa.string()) for c in entry["partition_by"]]), flavor="hive")
    return ds.dataset([str(f) for f in files(lake, table, doc=doc)], format="parquet", partitioning=part,
                      partition_base_dir=str(lake / table))


def read(lake: str | Path, table: str) -> pa.Table:
    """All rows of ``table`` as an Arrow table (``.to_pandas()`` for a DataFrame)."""
    return dataset(lake, table).to_table()


def duckdb_views(con: duckdb.DuckDBPyConnection, lake: str | Path, names: list[str] | None = None) -> list[str]:
    """Create a DuckDB view per lake table on ``con`` (results in schema ``results``), through the manifest.

    Args:
        con: the connection (an in-memory one will do).
        lake: the lake folder.
        names: only these (``charges``, ``results/daily_metrics``); default: every table and result.

    Returns:
        The names of the views created.
    """
    lake = Path(lake)
    doc = manifest(lake)
    wanted = names if names is not None else \
        sorted(doc["tables"]) + [f"{RESULTS}/{n}" for n in sorted(doc.get(RESULTS, {}))]
    for name in wanted:
        entry = _entry(doc, name)
        section, _, bare = name.rpartition("/")
        if section:
            con.execute(f"CREATE SCHEMA IF NOT EXISTS {_q(section)}")
        view = f"{_q(section)}.{_q(bare)}" if section else _q(bare)
        con.execute(f"CREATE OR REPLACE VIEW {view} AS SELECT * FROM "
                    f"{_read_sql(files(lake, name, doc=doc), entry['partition_by'])}")
    return wanted


def _read_sql(paths: list[Path], partition_by: list[str] | tuple[str, ...]) -> str:
    """A DuckDB ``read_parquet`` over ``paths``; partition columns come from the folder names, as text."""
    if not partition_by:
        return f"read_parquet({_sql_list(paths)}, hive_partitioning = false)"
    types = ", ".join(f"'{c}': 'VARCHAR'" for c in partition_by)
    return f"read_parquet({_sql_list(paths)}, hive_partitioning = true, hive_types = {{{types}}})"


def _sql_list(paths: list[Path]) -> str:
    return "[" + ", ".join(sql_literal(p) for p in paths) + "]"


# =========================================================================== writing
@contextlib.contextmanager
def _locked(lake: Path, timeout: float | None = None) -> Iterator[None]:
    """One writer per lake: an exclusive lock on ``<lake>/.lock`` (released by the OS on kill)."""
    lake.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + (get_settings().db_timeout if timeout is None else timeout)
    with open(lake / _LOCK, "a+") as fh:
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise LakeBusy(f"the lake {lake} is being written by another process; try again") from None
                time.sleep(0.1)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


# Every durable change goes through these two, so a test can kill the process between any two.
def _publish(src: Path, dst: Path) -> None:
    os.replace(src, dst)


def _remove(path: Path) -> None:
    path.unlink(missing_ok=True)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _write_partitions(reader: pa.RecordBatchReader, partition_by: tuple[str, ...], lake: Path, staging: Path,
                      rel_dir: str) -> dict[str, list[dict]]:
    """Write rows (sorted by partition) with pyarrow datasets; place each file under its content hash.

    Returns:
        partition folder ('' when unpartitioned) -> its files' manifest entries.
    """
    written: list[str] = []
    part = ds.partitioning(pa.schema([(c, pa.string()) for c in partition_by]), flavor="hive") \
        if partition_by else None
    ds.write_dataset(reader, staging, format="parquet", partitioning=part, file_options=_PARQUET.make_write_options(
                     compression="zstd"), basename_template="part-{i}.parquet",
                     use_threads=False, existing_data_behavior="overwrite_or_ignore",
                     min_rows_per_group=_ROW_GROUP, max_rows_per_group=_ROW_GROUP, max_rows_per_file=_MAX_FILE_ROWS,
                     file_visitor=lambda f: written.append(f.path))
    if not written:  # no rows: one empty file (in the NULL partition) still tells readers the columns
        empty_dir = staging.joinpath(*(f"{c}={NULL_PARTITION}" for c in partition_by))
        empty_dir.mkdir(parents=True, exist_ok=True)
        schema = reader.schema
        for c in partition_by:
            schema = schema.remove(schema.get_field_index(c))
        pq.write_table(schema.empty_table(), empty_dir / "part-0.parquet", compression="zstd")
        written.append(str(empty_dir / "part-0.parquet"))
    out: dict[str, list[dict]] = {}
    for name in sorted(written):
        src = Path(name)
        part_dir = "/".join(unquote(s) for s in src.parent.relative_to(staging).parts)
        _fsync(src)
        digest = _sha256(src)
        rel = "/".join(p for p in (rel_dir, part_dir, f"part-{digest[:20]}.parquet") if p)
        dst = lake / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        _publish(src, dst)
        out.setdefault(part_dir, []).append({"path": rel, "bytes": dst.stat().st_size, "sha256": digest})
    return out


def _values(folder: str) -> dict[str, str | None]:
    pairs = (s.split("=", 1) for s in folder.split("/") if s)
    return {k: (None if v == NULL_PARTITION else v) for k, v in pairs}


def _save_manifest(lake: Path, doc: dict) -> None:
    tmp = lake / f"{MANIFEST}.{uuid.uuid4().hex}.tmp"
    tmp.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n")
    _fsync(tmp)
    _publish(tmp, _manifest_path(lake))
    _fsync(lake)


def _collect_garbage(lake: Path, doc: dict, old: dict | None) -> int:
    """Delete files no manifest entry names (in table folders only), staging and stray manifests."""
    keep = {f["path"] for section in ("tables", RESULTS) for e in doc.get(section, {}).values()
            for p in e["partitions"].values() for f in p["files"]}
    folders = {t for d in (doc, old or {}) for t in d.get("tables", {})}
    folders |= {f"{RESULTS}/{t}" for d in (doc, old or {}) for t in d.get(RESULTS, {})}
    removed = 0
    for folder in sorted(folders):
        root = lake / folder
        if not root.is_dir():
            continue
        for f in sorted(root.rglob("*.parquet")):
            if f.relative_to(lake).as_posix() not in keep:
                _remove(f)
                removed += 1
        for d in sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
            with contextlib.suppress(OSError):
                d.rmdir()
        with contextlib.suppress(OSError):
            root.rmdir()
    for stray in lake.glob(f"{MANIFEST}.*.tmp"):
        _remove(stray)
    shutil.rmtree(lake / _STAGING, ignore_errors=True)
    return removed


def _check_target(lake: Path) -> dict | None:
    old = _manifest_or_none(lake)
    if old is None and lake.exists():
        others = [p.name for p in lake.iterdir() if p.name not in (_LOCK, _STAGING)]
        if others:
            raise LakeError(f"{lake} is not empty and holds no {MANIFEST}: choose an empty folder for a new lake")
    return old


def _partition_stats(con, spec: TableSpec) -> dict[str, dict]:
    time_col = _q(spec.time_column) if spec.time_column else "NULL"
    rows = con.execute(
        f"SELECT {spec.partition_sql()} AS k, count(*), bit_xor({spec.hash_sql()}), min({time_col}), max({time_col}) "
        f"FROM {_q(spec.name)} GROUP BY k").fetchall()
    return {k: {"rows": n, "checksum": f"{h:016x}", "min": _iso(lo), "max": _iso(hi)} for k, n, h, lo, hi in rows}


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return value.isoformat() if isinstance(value, date) else str(value)


def _spec_of(name: str, entry: dict) -> TableSpec:
    return TableSpec(name, tuple((c, t) for c, t in entry["columns"]), tuple(entry["key"]), entry["time_column"],
                     "currency" in entry["partition_by"])


def _commit(lake: Path, old: dict, section: str, name: str, entry: dict) -> int:
    """Swap in a manifest where ``section[name]`` is ``entry``; returns the new version."""
    doc = {**old, section: {**old.get(section, {}), name: entry}, "version": old["version"] + 1}
    _save_manifest(lake, doc)
    _collect_garbage(lake, doc, old)
    return doc["version"]



"""Retention: the Parquet archive, :func:`cleanup` into it and :func:`restore` from it.

:func:`cleanup` moves Stripe objects and events older than a cutoff into a Parquet archive
(``<archive>/<table>/year=YYYY/month=MM/data.parquet``), verifies the archive by re-reading
it, and only then deletes the rows. Refund requests, audit rows and ``daily_metrics`` are
never deleted. :func:`restore` brings an archive back, newer-wins.

Archive files are deterministic (one file per table and month, rows unique by id and sorted
by id) and rewritten atomically, so a cleanup killed at any point can be rerun and an
archive never holds the same row twice. The helpers that read and write those files are
public here because erasure (:mod:`payops.maintenance.privacy`) rewrites them too.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import duckdb

from payops import audit
from payops.config import get_settings
from payops.db import connect, sql_literal, transaction
from payops.errors import InvalidInput, NotFound, PayopsError
from payops.ingest import TableCounts
from payops.maintenance.common import actor, aware_now, parse_age, scalar
from payops.refunds import OPEN_STATUSES
from payops.streams import STREAMS

__all__ = [
    "ARCHIVE_TABLES",
    "CleanupResult",
    "RestoreResult",
    "archive_dir",
    "archived_ids",
    "cleanup",
    "read_parquet_sql",
    "restore",
    "table_files",
    "write_parquet_atomic",
]

# Tables cleanup may archive, children before parents (order of deletion does not matter
# in DuckDB without foreign keys, but restore goes the other way round for readability).
ARCHIVE_TABLES = ("events", *reversed(STREAMS))


# =========================================================================== archive files


def archive_dir(archive: str | Path | None) -> Path:
    """The archive folder named, else ``PAYOPS_ARCHIVE_DIR``."""
    return Path(archive) if archive is not None else get_settings().archive_dir


def table_files(archive: Path, table: str) -> list[Path]:
    """The Parquet files of ``table`` in the archive folder, in partition order."""
    folder = archive / table
    return sorted(folder.glob("year=*/month=*/*.parquet")) if folder.is_dir() else []


def read_parquet_sql(files: list[Path]) -> str:
    """A read_parquet() expression over ``files`` (year/month come from the path, not columns)."""
    listing = ", ".join(sql_literal(f) for f in files)
    return f"read_parquet([{listing}], union_by_name = true, hive_partitioning = false)"


def write_parquet_atomic(con: duckdb.DuckDBPyConnection, select_sql: str, target: Path) -> None:
    """COPY a query to ``target`` via a temporary file and a rename: never a half-written file."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    con.execute(f"COPY ({select_sql}) TO {sql_literal(tmp)} (FORMAT parquet, COMPRESSION zstd)")
    os.replace(tmp, target)


def _columns(con: duckdb.DuckDBPyConnection, table: str) -> list[str]:
    return [r[0] for r in con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = ? AND table_schema = 'main' "
        "ORDER BY ordinal_position", [table]).fetchall()]


def _has_version(table: str) -> bool:
    return table != "events"


def _dedupe(table: str) -> str:
    # Newest version of each id wins; events never change, any copy will do.
    order = "version DESC" if _has_version(table) else "id"
    return f"QUALIFY row_number() OVER (PARTITION BY id ORDER BY {order}) = 1"


def archived_ids(table: str, archive: str | Path | None = None) -> set[str]:
    """The ids of ``table`` held in the archive folder (empty when there is none)."""
    files = table_files(archive_dir(archive), table)
    if not files:
        return set()
    con = duckdb.connect()
    try:
        return {r[0] for r in con.execute(f"SELECT DISTINCT id FROM {read_parquet_sql(files)}").fetchall()}
    finally:
        con.close()


# =========================================================================== cleanup


@dataclass
class CleanupResult:
    """What :func:`cleanup` did (or, with ``dry_run``, would do)."""

    cutoff: datetime
    archive: Path
    dry_run: bool
    tables: dict[str, int] = field(default_factory=dict)   # rows archived and deleted per table
    files: list[Path] = field(default_factory=list)         # partition files written
    audit_id: int | None = None

    @property
    def total(self) -> int:
        return sum(self.tables.values())


def _candidates(con: duckdb.DuckDBPyConnection, cutoff: datetime) -> dict[str, int]:
    """Fill temp tables ``_arch_<table>(id, y, m)`` with the rows to archive; returns counts."""
    open_list = ", ".join(f"'{s}'" for s in OPEN_STATUSES)
    # A payment with an open refund request stays, whatever its age: the request needs it.
    keep_pi = f"SELECT payment_intent FROM refund_requests WHERE status IN ({open_list}) AND payment_intent IS NOT NULL"
    keep_ch = f"SELECT charge FROM refund_requests WHERE status IN ({open_list}) AND charge IS NOT NULL"
    extra = {
        "payment_intents": f"AND id NOT IN ({keep_pi})",
        "charges": f"AND id NOT IN ({keep_ch}) AND coalesce(payment_intent, '') NOT IN ({keep_pi})",
    }
    for table in ARCHIVE_TABLES:
        if table == "customers":
            continue
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE _arch_{table} AS SELECT id, year(created) AS y, month(created) AS m "
            f"FROM {table} WHERE created < ? {extra.get(table, '')}", [cutoff])
    # A customer goes only when old and nothing left in the database points to it.
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _arch_customers AS SELECT id, year(created) AS y, month(created) AS m "
        "FROM customers c WHERE created < ? "
        "AND NOT EXISTS (SELECT 1 FROM payment_intents p WHERE p.customer = c.id "
        "                AND p.id NOT IN (SELECT id FROM _arch_payment_intents)) "
        "AND NOT EXISTS (SELECT 1 FROM charges h WHERE h.customer = c.id "
        "                AND h.id NOT IN (SELECT id FROM _arch_charges)) "
        "AND NOT EXISTS (SELECT 1 FROM bookings b WHERE b.customer = c.id) "
        "AND NOT EXISTS (SELECT 1 FROM refund_requests r WHERE r.customer = c.id)", [cutoff])
    return {table: scalar(con, f"SELECT count(*) FROM _arch_{table}") for table in ARCHIVE_TABLES}


def _archive_table(con: duckdb.DuckDBPyConnection, table: str, archive: Path) -> list[Path]:
    """Merge the candidate rows of ``table`` into their month files; returns the files written."""
    cols = ", ".join(f'"{c}"' for c in _columns(con, table))
    written = []
    months = con.execute(f"SELECT DISTINCT y, m FROM _arch_{table} ORDER BY y, m").fetchall()
    for y, m in months:
        target = archive / table / f"year={y:04d}" / f"month={m:02d}" / "data.parquet"
        new = (f"SELECT {cols} FROM {table} WHERE id IN "
               f"(SELECT id FROM _arch_{table} WHERE y = {int(y)} AND m = {int(m)})")
        if target.exists():
            # Rows archived by an earlier (perhaps interrupted) run merge with the new ones.
            source = f"SELECT {cols} FROM {read_parquet_sql([target])} UNION ALL BY NAME {new}"
        else:
            source = new
        write_parquet_atomic(con, f"SELECT {cols} FROM ({source}) {_dedupe(table)} ORDER BY id", target)
        written.append(target)
    return written


def _verify_archive(con: duckdb.DuckDBPyConnection, table: str, files: list[Path], expected: int) -> None:
    if not expected:
        return
    found = scalar(con, f"SELECT count(DISTINCT a.id) FROM {read_parquet_sql(files)} a "
                        f"JOIN _arch_{table} c ON c.id = a.id")
    if found != expected:
        raise PayopsError(
            f"archive check failed for {table}: {expected:,} rows to archive but {found:,} found in "
            f"{files[0].parent.parent.parent}; nothing was deleted")


def cleanup(
    older_than: str | timedelta = "365d",
    *,
    archive: str | Path | None = None,
    dry_run: bool = False,
    now: datetime | None = None,
    user: str | None = None,
    db: str | Path | None = None,
    progress: bool = False,
    on_archived: Callable[[], None] | None = None,
) -> CleanupResult:
    """Archive Stripe objects and events created before ``now - older_than``, then delete them.

    The rows of each table go to ``<archive>/<table>/year=YYYY/month=MM/data.parquet``
    (merged with what a previous run left there), the files are re-read and must hold every
    row, and only then are the rows deleted, with one audit row, in one transaction. A
    payment with an open refund request is kept; a customer is archived only when nothing
    left in the database points to it. Refund requests, audit rows, bookings and
    ``daily_metrics`` are never deleted, so reports of archived days still render.

    Args:
        older_than: age of the cutoff, e.g. ``"365d"`` or a timedelta.
        archive: the archive folder (default ``PAYOPS_ARCHIVE_DIR``).
        dry_run: count what would be archived; write and delete nothing.
        now: the moment the age counts from (default now, UTC).
        user: the actor of the audit row (default ``PAYOPS_USER``).
        db: database path (default ``PAYOPS_DB``).
        progress: show a progress bar over tables.
        on_archived: called after the archive is verified and before anything is deleted
            (tests kill the process there to prove a rerun loses nothing).

    Returns:
        A :class:`CleanupResult` with rows per table and the files written.
    """
    from payops.progress import bar

    age = parse_age(older_than)
    if age <= timedelta(0):
        raise InvalidInput("the age for cleanup must be positive")
    cutoff = aware_now(now) - age
    folder = archive_dir(archive)
    result = CleanupResult(cutoff=cutoff, archive=folder, dry_run=dry_run)
    with connect(db) as con:
        result.tables = _candidates(con, cutoff)
        if dry_run or not result.total:
            return result
        todo = [t for t in ARCHIVE_TABLES if result.tables[t]]
        for table in bar(todo, desc="archive", enabled=progress):
            files = _archive_table(con, table, folder)
            _verify_archive(con, table, files, result.tables[table])
            result.files += files
        if on_archived is not None:
            on_archived()
        with transaction(con):
            for table in todo:
                con.execute(f"DELETE FROM {table} WHERE id IN (SELECT id FROM _arch_{table})")
            result.audit_id = audit.record(
                con, actor=actor(user), action="maintenance.cleanup", entity="database",
                entity_id=None,
                after={"cutoff": cutoff.isoformat(), "archive": str(folder),
                       "rows": {t: n for t, n in result.tables.items() if n}},
                note=f"archived and deleted {result.total:,} rows older than {cutoff:%Y-%m-%d}")
    return result


# =========================================================================== restore


@dataclass
class RestoreResult(TableCounts):
    """What :func:`restore` did: per table, rows new / updated (archive newer) / unchanged."""

    archive: Path
    tables: dict[str, dict[str, int]] = field(default_factory=dict)
    audit_id: int | None = None


def _restore_table(con: duckdb.DuckDBPyConnection, table: str, files: list[Path]) -> dict[str, int]:
    """Upsert one table's archived rows, newer-wins; returns its new / updated / unchanged counts."""
    have = {r[0] for r in con.execute(
        f"SELECT column_name FROM (DESCRIBE SELECT * FROM {read_parquet_sql(files)})").fetchall()}
    use = [c for c in _columns(con, table) if c in have]
    col_sql = ", ".join(f'"{c}"' for c in use)
    con.execute(f"CREATE OR REPLACE TEMP TABLE _restore AS SELECT {col_sql} FROM "
                f"{read_parquet_sql(files)} {_dedupe(table)}")
    if _has_version(table):
        row = con.execute(
            f"SELECT count(*) FILTER (WHERE t.id IS NULL), count(*) FILTER (WHERE s.version > t.version) "
            f"FROM _restore s LEFT JOIN {table} t ON t.id = s.id").fetchone()
        new, newer = row if row is not None else (0, 0)
        sets = ", ".join(f'"{c}" = excluded."{c}"' for c in use if c != "id")
        con.execute(f"INSERT INTO {table} ({col_sql}) SELECT {col_sql} FROM _restore "
                    f"ON CONFLICT (id) DO UPDATE SET {sets} WHERE excluded.version > {table}.version")
    else:
        new = scalar(con, f"SELECT count(*) FROM _restore s WHERE s.id NOT IN (SELECT id FROM {table})")
        newer = 0
        con.execute(f"INSERT INTO {table} ({col_sql}) SELECT {col_sql} FROM _restore ON CONFLICT (id) DO NOTHING")
    total = scalar(con, "SELECT count(*) FROM _restore")
    return {"new": new, "updated": newer, "unchanged": total - new - newer}


def restore(archive: str | Path, *, user: str | None = None, db: str | Path | None = None) -> RestoreResult:
    """Bring an archive folder back into the database, newer-wins, in one transaction.

    A row already in the database is only replaced by an archived copy with a higher
    ``version``; running restore twice changes nothing the second time (and writes no
    audit row when nothing changed).

    Raises:
        NotFound: the folder holds no archive.
    """
    folder = Path(archive)
    tables = [t for t in reversed(ARCHIVE_TABLES) if table_files(folder, t)]
    if not tables:
        raise NotFound(f"no payops archive in {folder} (expected <table>/year=YYYY/month=MM/*.parquet)")
    result = RestoreResult(archive=folder)
    with connect(db) as con, transaction(con):
        for table in tables:
            result.tables[table] = _restore_table(con, table, table_files(folder, table))
        con.execute("DROP TABLE IF EXISTS _restore")
        if result.new or result.updated:
            result.audit_id = audit.record(
                con, actor=actor(user), action="maintenance.restore", entity="database",
                after={"archive": str(folder),
                       "rows": {t: {"new": c["new"], "updated": c["updated"]} for t, c in result.tables.items()}},
                note=f"restored {result.new:,} new and {result.updated:,} newer rows from the archive")
    return result

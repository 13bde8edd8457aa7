"""Snapshots: a consistent, complete copy of the database that analysts read instead of the live file.

In team mode ``payops serve`` is the one writer, and a DuckDB file held by one process cannot
be opened, even read-only, by another. A long analysis therefore reads a snapshot (``payops
serve --snapshot PATH`` publishes one on a schedule; ``payops snapshot --to PATH`` takes one
from cron in single-user mode) and never waits on the writer's lock.

How a snapshot is made, and why this way: the source is opened read-only and copied with
DuckDB's ``ATTACH '<tmp>' AS snap; COPY FROM DATABASE <src> TO snap`` inside one transaction.
That carries every table, view and sequence (with its current value) and reads one
transaction-consistent state even while the lock is held only for the copy itself. A plain
file copy would be consistent only if no connection at all had the file open and its WAL was
checkpointed; in single-user mode another process may open it between our check and the copy,
so it would need a lock DuckDB does not offer. The copy is written under a hidden temporary
name in the destination's folder (same file system) and moved into place with ``os.replace``:
a reader sees the previous snapshot or the new one, never half of one, and a run killed at any
point leaves the previous snapshot as it was (its leftover is swept by the next run).

Every snapshot carries one row in ``snapshot_info`` (see docs/schema.md): when it was taken,
from which file, by what; ``payops status`` on a snapshot shows it.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from payops.db import connect, require, sql_literal
from payops.errors import DatabaseError, InvalidInput

__all__ = ["SNAPSHOT_TABLE", "SnapshotResult", "check_destination", "snapshot", "snapshot_info"]

#: the table every snapshot carries (one row), absent from a live database
SNAPSHOT_TABLE = "snapshot_info"
_TMP_PREFIX = ".payops-snapshot-"


@dataclass(frozen=True)
class SnapshotResult:
    """One snapshot taken: where, from where, when, and what it holds."""

    path: Path
    source: Path
    taken_at: datetime
    tables: int
    rows: int
    seconds: float

    def summary(self) -> str:
        return (f"snapshot {self.path}: {self.tables} tables, {self.rows:,} rows of {self.source}, "
                f"taken {self.taken_at:%Y-%m-%d %H:%M:%S} UTC in {self.seconds:.2f} s")


def check_destination(dest: str | Path, source: Path) -> Path:
    """``dest`` as an absolute snapshot file path for the database ``source``.

    Raises:
        InvalidInput: ``dest`` is a folder, its folder does not exist, or it is ``source`` itself.
    """
    path = Path(dest).expanduser().absolute()
    if path.is_dir():
        raise InvalidInput(f"snapshot destination {path} is a folder; name the snapshot file, "
                           f"e.g. {path / 'payops.duckdb'}")
    if not path.parent.is_dir():
        raise InvalidInput(f"snapshot destination folder {path.parent} does not exist (create it first)")
    if path.resolve() == source.resolve() or (path.exists() and path.samefile(source)):
        raise InvalidInput(f"snapshot destination {path} is the database itself; name another file")
    return path


def _tmp_name(dest: Path) -> Path:
    # hidden, in dest's folder (so os.replace is a rename on one file system), owned by this process
    return dest.parent / f"{_TMP_PREFIX}{dest.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _sweep(dest: Path) -> None:
    """Remove what a killed snapshot of ``dest`` left behind (its process is gone)."""
    for leftover in dest.parent.glob(f"{_TMP_PREFIX}{dest.name}.*.tmp*"):
        try:
            pid = int(leftover.name[len(_TMP_PREFIX) + len(dest.name) + 1:].split(".", 1)[0])
        except ValueError:
            continue
        if pid != os.getpid() and not _pid_alive(pid):
            with contextlib.suppress(OSError):
                leftover.unlink()


def _copy(con: duckdb.DuckDBPyConnection, tmp: Path, source: Path, taken_at: datetime,
          taken_by: str) -> tuple[int, int]:
    """Copy the open database into ``tmp``; returns (tables, rows) of the copy."""
    src = con.execute("SELECT current_database()").fetchall()[0][0]
    con.execute(f"ATTACH {sql_literal(tmp)} AS payops_snapshot (READ_WRITE)")
    try:
        # one transaction: every table is read as of the same moment
        con.execute("BEGIN TRANSACTION")
        con.execute(f'COPY FROM DATABASE "{src}" TO payops_snapshot')
        # a snapshot of a snapshot describes itself, not its parent
        con.execute(f"CREATE OR REPLACE TABLE payops_snapshot.{SNAPSHOT_TABLE} ("
                    "taken_at TIMESTAMPTZ NOT NULL, source VARCHAR NOT NULL, taken_by VARCHAR NOT NULL)")
        con.execute(f"INSERT INTO payops_snapshot.{SNAPSHOT_TABLE} VALUES (?, ?, ?)",
                    [taken_at, str(source), taken_by])
        con.execute("COMMIT")
        con.execute("CHECKPOINT payops_snapshot")  # everything in the file itself, no WAL beside it
        # a fresh copy has no deleted rows, so the estimate is the count
        counts = con.execute(
            "SELECT count(*), coalesce(sum(estimated_size), 0) FROM duckdb_tables() "
            "WHERE database_name = 'payops_snapshot'").fetchall()[0]
    finally:
        con.execute("DETACH payops_snapshot")
    return int(counts[0]), int(counts[1])


def snapshot(dest: str | Path, db: str | Path | None = None, *, taken_by: str = "payops snapshot",
             now: datetime | None = None, timeout: float | None = None) -> SnapshotResult:
    """Write a consistent, complete copy of the database to ``dest``, atomically.

    The source is only read (a read-only connection, closed at the end). ``dest`` is replaced
    in one rename: readers see the previous snapshot or this one, and a failed or killed run
    leaves the previous one intact.

    Args:
        dest: the snapshot file; its folder must exist. Never the database itself.
        db: the database to copy (default ``PAYOPS_DB``).
        taken_by: recorded in ``snapshot_info.taken_by`` (``payops serve`` for the writer's).
        now: the moment recorded as ``taken_at`` (default: the clock).
        timeout: seconds to wait for another process's lock (default ``PAYOPS_DB_TIMEOUT``).

    Raises:
        DatabaseError: there is no database at ``db``, or the copy failed.
        DatabaseBusy: another process held the database longer than ``timeout``.
        InvalidInput: ``dest`` is a folder, in a folder that does not exist, or the database itself.
    """
    source = require(db)
    target = check_destination(dest, source)
    taken_at = (now or datetime.now(UTC)).astimezone(UTC)
    started = time.perf_counter()
    _sweep(target)
    tmp = _tmp_name(target)
    try:
        with connect(source, read_only=True, timeout=timeout) as con:
            try:
                tables, rows = _copy(con, tmp, source, taken_at, taken_by)
            except duckdb.Error as exc:
                raise DatabaseError(f"snapshot of {source} failed: {str(exc).splitlines()[0]}") from None
        if Path(f"{tmp}.wal").exists():
            raise DatabaseError(f"snapshot of {source} failed: the copy was not checkpointed")
        # A WAL beside the old snapshot (someone opened it read-write) would be replayed onto the new file.
        with contextlib.suppress(FileNotFoundError):
            os.unlink(f"{target}.wal")
        os.replace(tmp, target)
    finally:
        for leftover in (tmp, Path(f"{tmp}.wal")):
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()
    return SnapshotResult(path=target, source=source, taken_at=taken_at, tables=tables, rows=rows,
                          seconds=time.perf_counter() - started)


def snapshot_info(con: duckdb.DuckDBPyConnection) -> dict[str, Any] | None:
    """When, from where and by what the open database was snapshotted; None for a live database."""
    found = con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = ? AND database_name = "
                        "current_database() AND schema_name = 'main'", [SNAPSHOT_TABLE]).fetchall()[0][0]
    if not found:
        return None
    row = con.execute(f"SELECT taken_at, source, taken_by FROM {SNAPSHOT_TABLE} "
                      "ORDER BY taken_at DESC LIMIT 1").fetchall()
    return {"taken_at": row[0][0], "source": row[0][1], "taken_by": row[0][2]} if row else None


"""The Parquet lake: every table of the database as Parquet files under one manifest.

A lake is a folder that DuckDB, pyarrow (pandas) and Spark read as is::

    <lake>/manifest.json                                  what the lake holds, swapped atomically
    <lake>/charges/currency=usd/month=2026-11/part-<sha>.parquet
    <lake>/customers/month=2026-11/part-<sha>.parquet      (no currency column: month only)
    <lake>/sync_state/part-<sha>.parquet                   (no time column: one file)
    <lake>/results/daily_metrics/...                       what an engine computed from the lake

Partitions are Hive-style (``key=value`` folders, ``__HIVE_DEFAULT_PARTITION__`` for NULL):
by ``currency`` where a table has one, and by ``month`` (UTC, ``YYYY-MM``) of its time
column (``created``, ``requested_at``, ``session_start``, ``day`` or ``at``), so a reader
that filters on a currency or a period opens only those folders. Partition columns live in
the folder names, not in the files (the Hive convention all three readers follow).

**The manifest is the truth.** It lists, per table, the columns, the partitions, their row
counts, content checksums and files (with their SHA-256), and the database's schema version.
Readers go through it (:func:`files`, :func:`dataset`, :func:`duckdb_views`,
:func:`payops.spark.register_lake`): a file not in the manifest is not part of the lake.

**Incremental and crash-safe.** A partition's checksum is the XOR of DuckDB's 64-bit
``hash()`` of each row (row order does not matter; the same rows read back from the lake
give the same value). An export computes every partition's checksum in the database in one
``GROUP BY`` per table and rewrites only the partitions whose checksum or row count moved,
plus new ones; partitions whose rows are gone leave the lake. The database already applied
newer-wins, so the lake always holds the database's newest version of every row. New files
are written under ``_staging/`` and renamed into place under their SHA-256 (so a rename can
only ever replace a file with the same bytes), then the manifest is replaced by one atomic
rename, and only then are files no manifest names deleted. A run killed at any point
(``kill -9``) leaves the previous manifest and every file it names intact; the next run
finishes the job and produces the same lake an uninterrupted run would have (file bytes
depend only on the rows: fixed row groups, rows in key order). One writer at a time holds
``<lake>/.lock``. Deleting old files right after the swap means a reader still working from
the previous manifest can find a file gone: re-read the manifest and start again.
"""

from payops.lake.erase import LakeErasure, erase_customer
from payops.lake.export import ExportResult, TableExport, export, verify, write_result
from payops.lake.store import (
    FORMAT,
    MANIFEST,
    NULL_PARTITION,
    RESULTS,
    TIME_COLUMNS,
    LakeBusy,
    LakeError,
    dataset,
    duckdb_views,
    files,
    manifest,
    read,
    tables,
)

__all__ = [
    "FORMAT", "MANIFEST", "NULL_PARTITION", "RESULTS", "TIME_COLUMNS", "LakeError", "LakeBusy", "TableExport",
    "ExportResult", "LakeErasure", "export", "manifest", "tables", "files", "dataset", "read", "duckdb_views",
    "write_result", "verify", "erase_customer",
]

"""Keeping the database right and lean: repairs, retention with archive, customer erasure.

* :func:`fix` finds inconsistencies between refund requests, Stripe objects, bookings and
  ``daily_metrics`` and repairs what it can (one audit row per repair); what it cannot
  repair it reports.
* :func:`cleanup` moves Stripe objects and events older than a cutoff into a Parquet
  archive (``<archive>/<table>/year=YYYY/month=MM/data.parquet``), verifies the archive by
  re-reading it, and only then deletes the rows. Refund requests, audit rows and
  ``daily_metrics`` are never deleted. :func:`restore` brings an archive back, newer-wins.
* :func:`erase_customer` removes one customer's personal data from every table, the
  archive and the export files, keeping amounts and ids for the books.
* :func:`mask_pii` masks personal data in a DataFrame (``payops export --mask-pii``).

Archive files are deterministic (one file per table and month, rows unique by id and
sorted by id) and rewritten atomically, so a cleanup killed at any point can be rerun and
an archive never holds the same row twice.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pandas as pd

from payops import audit
from payops.config import get_settings
from payops.db import connect, database_path, transaction
from payops.errors import ConfigError, InvalidInput, NotFound, PayopsError, StripeError
from payops.ingest import TableCounts, ingest_into

__all__ = [
    "ARCHIVE_TABLES",
    "CleanupResult",
    "ErasureResult",
    "Finding",
    "RestoreResult",
    "cleanup",
    "erase_customer",
    "fix",
    "mask_pii",
    "parse_age",
    "restore",
    "FIX_KINDS",
]

# Tables cleanup may archive, children before parents (order of deletion does not matter
# in DuckDB without foreign keys, but restore goes the other way round for readability).
ARCHIVE_TABLES = ("events", "refunds", "disputes", "balance_transactions", "charges",
                  "payment_intents", "payouts", "customers")
NEVER_DELETED = ("refund_requests", "audit_log", "daily_metrics", "bookings", "sync_state")
OPEN_STATUSES = ("PENDING", "APPROVED", "PROCESSING")

FIX_KINDS = (
    "refund_for_unprocessed_request",
    "request_stuck_processing",
    "request_processed_without_refund",
    "charge_refunded_mismatch",
    "charge_without_balance_transaction",
    "booking_unknown_payment_intent",
    "daily_metrics_stale",
)


def _user(user: str | None) -> str:
    return user or get_settings().user


def _now(now: datetime | None) -> datetime:
    now = now or datetime.now(UTC)
    return now if now.tzinfo else now.replace(tzinfo=UTC)


_AGE_RE = re.compile(r"^\s*(\d+)\s*([hdwy]?)\s*$", re.I)
_AGE_UNITS = {"h": timedelta(hours=1), "d": timedelta(days=1), "": timedelta(days=1),
              "w": timedelta(weeks=1), "y": timedelta(days=365)}


def parse_age(text: str | timedelta) -> timedelta:
    """``"365d"``, ``"52w"``, ``"1y"``, ``"12h"`` (a bare number means days) -> timedelta.

    Raises:
        InvalidInput: the text is not an age.
    """
    if isinstance(text, timedelta):
        return text
    m = _AGE_RE.match(str(text))
    if not m:
        raise InvalidInput(f"not an age: {text!r} (use e.g. 365d, 52w, 1y or 12h)")
    return int(m.group(1)) * _AGE_UNITS[m.group(2).lower()]


# =========================================================================== archive files


def _archive_dir(archive: str | Path | None) -> Path:
    return Path(archive) if archive is not None else get_settings().archive_dir


def _table_files(archive: Path, table: str) -> list[Path]:
    folder = archive / table
    return sorted(folder.glob("year=*/month=*/*.parquet")) if folder.is_dir() else []


def _sql_str(path: Path | str) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def _read(files: list[Path]) -> str:
    """A read_parquet() expression over ``files`` (year/month come from the path, not columns)."""
    listing = ", ".join(_sql_str(f) for f in files)
    return f"read_parquet([{listing}], union_by_name = true, hive_partitioning = false)"


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


def _write_atomic(con: duckdb.DuckDBPyConnection, select_sql: str, target: Path) -> None:
    """COPY a query to ``target`` via a temporary file and a rename: never a half-written file."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    con.execute(f"COPY ({select_sql}) TO {_sql_str(tmp)} (FORMAT parquet, COMPRESSION zstd)")
    os.replace(tmp, target)


def archived_ids(table: str, archive: str | Path | None = None) -> set[str]:
    """The ids of ``table`` held in the archive folder (empty when there is none)."""
    files = _table_files(_archive_dir(archive), table)
    if not files:
        return set()
    con = duckdb.connect()
    try:
        return {r[0] for r in con.execute(f"SELECT DISTINCT id FROM {_read(files)}").fetchall()}
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
    counts = {}
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
    for table in ARCHIVE_TABLES:
        counts[table] = con.execute(f"SELECT count(*) FROM _arch_{table}").fetchone()[0]
    return counts


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
            source = f"SELECT {cols} FROM {_read([target])} UNION ALL BY NAME {new}"
        else:
            source = new
        _write_atomic(con, f"SELECT {cols} FROM ({source}) {_dedupe(table)} ORDER BY id", target)
        written.append(target)
    return written


def _verify_archive(con: duckdb.DuckDBPyConnection, table: str, files: list[Path], expected: int) -> None:
    if not expected:
        return
    found = con.execute(
        f"SELECT count(DISTINCT a.id) FROM {_read(files)} a JOIN _arch_{table} c ON c.id = a.id"
    ).fetchone()[0]
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
    from tqdm.auto import tqdm

    age = parse_age(older_than)
    if age <= timedelta(0):
        raise InvalidInput("the age for cleanup must be positive")
    cutoff = _now(now) - age
    folder = _archive_dir(archive)
    result = CleanupResult(cutoff=cutoff, archive=folder, dry_run=dry_run)
    with connect(db) as con:
        result.tables = _candidates(con, cutoff)
        if dry_run or not result.total:
            return result
        todo = [t for t in ARCHIVE_TABLES if result.tables[t]]
        for table in tqdm(todo, desc="archive", disable=not progress):
            files = _archive_table(con, table, folder)
            _verify_archive(con, table, files, result.tables[table])
            result.files += files
        if on_archived is not None:
            on_archived()
        with transaction(con):
            for table in todo:
                con.execute(f"DELETE FROM {table} WHERE id IN (SELECT id FROM _arch_{table})")
            result.audit_id = audit.record(
                con, actor=_user(user), action="maintenance.cleanup", entity="database",
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


def restore(archive: str | Path, *, user: str | None = None, db: str | Path | None = None) -> RestoreResult:
    """Bring an archive folder back into the database, newer-wins, in one transaction.

    A row already in the database is only replaced by an archived copy with a higher
    ``version``; running restore twice changes nothing the second time (and writes no
    audit row when nothing changed).

    Raises:
        NotFound: the folder holds no archive.
    """
    folder = Path(archive)
    tables = [t for t in reversed(ARCHIVE_TABLES) if _table_files(folder, t)]
    if not tables:
        raise NotFound(f"no payops archive in {folder} (expected <table>/year=YYYY/month=MM/*.parquet)")
    result = RestoreResult(archive=folder)
    with connect(db) as con, transaction(con):
        for table in tables:
            cols = _columns(con, table)
            have = {r[0] for r in con.execute(
                f"SELECT column_name FROM (DESCRIBE SELECT * FROM {_read(_table_files(folder, table))})").fetchall()}
            use = [c for c in cols if c in have]
            col_sql = ", ".join(f'"{c}"' for c in use)
            con.execute(f"CREATE OR REPLACE TEMP TABLE _restore AS SELECT {col_sql} FROM "
                        f"{_read(_table_files(folder, table))} {_dedupe(table)}")
            if _has_version(table):
                new, newer = con.execute(
                    f"SELECT count(*) FILTER (WHERE t.id IS NULL), count(*) FILTER (WHERE s.version > t.version) "
                    f"FROM _restore s LEFT JOIN {table} t ON t.id = s.id").fetchone()
                sets = ", ".join(f'"{c}" = excluded."{c}"' for c in use if c != "id")
                con.execute(f"INSERT INTO {table} ({col_sql}) SELECT {col_sql} FROM _restore "
                            f"ON CONFLICT (id) DO UPDATE SET {sets} WHERE excluded.version > {table}.version")
            else:
                new = con.execute(f"SELECT count(*) FROM _restore s WHERE s.id NOT IN (SELECT id FROM {table})"
                                  ).fetchone()[0]
                newer = 0
                con.execute(f"INSERT INTO {table} ({col_sql}) SELECT {col_sql} FROM _restore ON CONFLICT (id) DO NOTHING")
            total = con.execute("SELECT count(*) FROM _restore").fetchone()[0]
            result.tables[table] = {"new": new, "updated": newer, "unchanged": total - new - newer}
        con.execute("DROP TABLE IF EXISTS _restore")
        if result.new or result.updated:
            result.audit_id = audit.record(
                con, actor=_user(user), action="maintenance.restore", entity="database",
                after={"archive": str(folder),
                       "rows": {t: {"new": c["new"], "updated": c["updated"]} for t, c in result.tables.items()}},
                note=f"restored {result.new:,} new and {result.updated:,} newer rows from the archive")
    return result


# =========================================================================== personal data

# Keys of Stripe objects that hold personal data, at any depth (billing_details.email,
# shipping.address.line1, customer_details.name ...).
PII_KEYS = frozenset({
    "email", "name", "phone", "address", "shipping", "receipt_email", "customer_email",
    "customer_name", "customer_phone", "customer_address", "customer_shipping",
})
ERASED = "[erased]"
MASK = "***"
# Free-text columns payops itself writes, scrubbed of the customer's email/name/phone.
REQUEST_TEXT = ("note", "decision_note", "failure_message")


def _scrub(value: Any, needles: list[re.Pattern], owned: bool, replacement: str = ERASED) -> Any:
    """Remove personal data from a decoded JSON value.

    ``owned``: the object belongs to the customer: every personal key is cleared. In any
    case every occurrence of a needle (the customer's email, and for owned objects their
    name and phone) inside a string is replaced.
    """
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if owned and k in PII_KEYS and v is not None and not isinstance(v, bool):
                out[k] = None if replacement == ERASED else _mask_all(v)
            else:
                out[k] = _scrub(v, needles, owned, replacement)
        return out
    if isinstance(value, list):
        return [_scrub(v, needles, owned, replacement) for v in value]
    if isinstance(value, str):
        for pat in needles:
            value = pat.sub(replacement, value)
        return value
    return value


def _mask_all(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _mask_all(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask_all(v) for v in value]
    return MASK if isinstance(value, str) and value else value


def _scrub_json(text: str | None, needles: list[re.Pattern], owned: bool) -> str | None:
    if text is None:
        return None
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return _scrub(text, needles, owned)
    return orjson.dumps(_scrub(value, needles, owned)).decode()


def _patterns(values: Iterable[str | None]) -> list[re.Pattern]:
    uniq = sorted({v.strip() for v in values if isinstance(v, str) and len(v.strip()) >= 3}, key=len, reverse=True)
    return [re.compile(re.escape(v), re.I) for v in uniq]


@dataclass
class ErasureResult:
    """What :func:`erase_customer` changed (or would change): counts only, no personal data."""

    customer: str
    dry_run: bool
    tables: dict[str, int] = field(default_factory=dict)
    archive_files: int = 0
    export_files: int = 0
    audit_rows_mentioning: int = 0
    audit_id: int | None = None

    @property
    def total(self) -> int:
        return sum(self.tables.values()) + self.archive_files + self.export_files


# table -> (JSON/text columns to scrub, columns cleared when the row is the customer's)
_ERASE_COLUMNS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "customers": (("raw", "metadata"), ("email", "name", "phone")),
    "payment_intents": (("raw", "metadata"), ()),
    "charges": (("raw", "metadata", "failure_message"), ()),
    "refunds": (("raw", "metadata"), ()),
    "disputes": (("raw",), ()),
    "balance_transactions": (("raw",), ()),
    "payouts": (("raw",), ()),
    "events": (("raw",), ()),
}


def _union(con, table: str, cols: str, where: str, params: list, archive: Path) -> list[tuple]:
    """Rows of ``table`` matching ``where`` in the database and in the archive."""
    rows = con.execute(f"SELECT {cols} FROM {table} WHERE {where}", params).fetchall()
    files = _table_files(archive, table)
    if files:
        rows += con.execute(f"SELECT {cols} FROM {_read(files)} WHERE {where}", params).fetchall()
    return rows


def _owned_ids(con, customer: str, archive: Path) -> dict[str, set[str]]:
    """The ids of every Stripe object that belongs to ``customer`` (database and archive)."""
    con.execute("CREATE OR REPLACE TEMP TABLE _ids (id VARCHAR)")

    def ids(table: str, where: str, params: list) -> set[str]:
        got = {r[0] for r in _union(con, table, "id", where, params, archive)}
        return got

    def put(values: set[str]) -> None:
        con.execute("DELETE FROM _ids")
        if values:
            con.executemany("INSERT INTO _ids VALUES (?)", [[v] for v in values])

    out: dict[str, set[str]] = {"customers": {customer}}
    out["payment_intents"] = ids("payment_intents", "customer = ?", [customer])
    put(out["payment_intents"])
    out["charges"] = ids("charges", "customer = ? OR payment_intent IN (SELECT id FROM _ids)", [customer])
    put(out["charges"] | out["payment_intents"])
    out["refunds"] = ids("refunds", "charge IN (SELECT id FROM _ids) OR payment_intent IN (SELECT id FROM _ids)", [])
    out["disputes"] = ids("disputes", "charge IN (SELECT id FROM _ids)", [])
    put(out["charges"] | out["refunds"] | out["disputes"])
    out["balance_transactions"] = ids("balance_transactions", "source IN (SELECT id FROM _ids)", [])
    out["payouts"] = set()
    everything = set().union(*out.values())
    put(everything)
    out["events"] = ids("events", "object_id IN (SELECT id FROM _ids)", [])
    return out


def _scrub_relation(con, rel: str, table: str, owned: set[str], email_pats: list[re.Pattern],
                    all_pats: list[re.Pattern], emails: list[str], dry_run: bool) -> int:
    """Scrub the rows of ``rel`` (a table, or a temp copy of an archive file); returns rows changed."""
    text_cols, clear_cols = _ERASE_COLUMNS[table]
    present = {r[0] for r in con.execute(f"DESCRIBE {rel}").fetchall()}
    text_cols = tuple(c for c in text_cols if c in present)
    clear_cols = tuple(c for c in clear_cols if c in present)
    con.execute("CREATE OR REPLACE TEMP TABLE _ids (id VARCHAR)")
    if owned:
        con.executemany("INSERT INTO _ids VALUES (?)", [[v] for v in owned])
    cond = ["id IN (SELECT id FROM _ids)"]
    params: list = []
    for e in emails:
        for c in text_cols:
            cond.append(f"lower(CAST({c} AS VARCHAR)) LIKE ?")
            params.append(f"%{e.lower()}%")
    sel = ", ".join(["id"] + [f"CAST({c} AS VARCHAR)" for c in text_cols + clear_cols])
    rows = con.execute(f"SELECT {sel} FROM {rel} WHERE {' OR '.join(cond)}", params).fetchall()
    changed = 0
    updates = []
    for row in rows:
        rid = row[0]
        is_owned = rid in owned
        pats = all_pats if is_owned else email_pats
        values = list(row[1:1 + len(text_cols)])
        new = [_scrub_json(v, pats, is_owned) for v in values]
        clear = [v for v in row[1 + len(text_cols):]]
        if new == values and not (is_owned and any(v is not None for v in clear)):
            continue
        changed += 1
        updates.append(new + [rid])
    if updates and not dry_run:
        sets = [f"{c} = ?" for c in text_cols]
        sql = f"UPDATE {rel} SET " + ", ".join(sets) + " WHERE id = ?"
        con.executemany(sql, updates)
        if clear_cols:
            con.execute(f"UPDATE {rel} SET " + ", ".join(f"{c} = NULL" for c in clear_cols)
                        + " WHERE id IN (SELECT id FROM _ids)")
    return changed


def _scrub_requests(con, customer: str, email_pats, all_pats, emails, dry_run: bool) -> int:
    cond = " OR ".join(f"lower({c}) LIKE ?" for c in REQUEST_TEXT for _ in emails) or "false"
    params = [f"%{e.lower()}%" for c in REQUEST_TEXT for e in emails]
    rows = con.execute(
        f"SELECT id, customer, {', '.join(REQUEST_TEXT)} FROM refund_requests WHERE customer = ? OR {cond}",
        [customer] + params).fetchall()
    updates = []
    for rid, cus, *texts in rows:
        pats = all_pats if cus == customer else email_pats
        new = [_scrub(t, pats, False) if t is not None else None for t in texts]
        if new != texts:
            updates.append(new + [rid])
    if updates and not dry_run:
        con.executemany(
            "UPDATE refund_requests SET " + ", ".join(f"{c} = ?" for c in REQUEST_TEXT) + " WHERE id = ?", updates)
    return len(updates)


_TEXT_EXPORTS = (".csv", ".json", ".jsonl", ".html", ".htm", ".ipynb", ".txt", ".md", ".tsv")


def _scrub_exports(paths: list[Path], customer: str, email_pats, all_pats, dry_run: bool) -> int:
    """Scrub export and report files: the email everywhere; the name and phone on lines (records)
    that name the customer id or email, so a namesake's rows stay intact."""
    changed = 0
    for root in paths:
        files = [root] if root.is_file() else (sorted(root.rglob("*")) if root.is_dir() else [])
        for f in files:
            if not f.is_file():
                continue
            suffix = f.suffix.lower()
            if suffix in _TEXT_EXPORTS:
                try:
                    text = f.read_text(encoding="utf-8")
                except (UnicodeDecodeError, OSError):
                    continue
                lines = text.splitlines(keepends=True)
                out = []
                for line in lines:
                    mine = customer in line or any(p.search(line) for p in email_pats)
                    out.append(_scrub(line, all_pats if mine else email_pats, False))
                new = "".join(out)
                if new != text:
                    changed += 1
                    if not dry_run:
                        tmp = f.with_name(f.name + ".tmp")
                        tmp.write_text(new, encoding="utf-8")
                        os.replace(tmp, f)
            elif suffix == ".parquet":
                changed += _scrub_parquet_export(f, customer, email_pats, all_pats, dry_run)
    return changed


def _scrub_parquet_export(f: Path, customer: str, email_pats, all_pats, dry_run: bool) -> int:
    con = duckdb.connect()
    try:
        df = con.execute(f"SELECT * FROM read_parquet({_sql_str(f)})").df()
    except duckdb.Error:
        return 0
    finally:
        con.close()
    if df.empty:
        return 0
    as_text = df.astype(str)
    mine = as_text.apply(lambda r: any(customer in v or any(p.search(v) for p in email_pats) for v in r), axis=1)
    if not mine.any():
        return 0
    original = df.copy()
    for col in df.columns:
        if _texty(df[col]):
            df[col] = df[col].astype(object)
            df.loc[mine, col] = df.loc[mine, col].map(
                lambda v: _scrub_json(v, all_pats, True) if isinstance(v, str) and v[:1] in "{[" else
                (_scrub(v, all_pats, False) if isinstance(v, str) else v))
            if col.lower() in PII_KEYS:
                df.loc[mine, col] = None
    if df.astype(str).equals(original.astype(str)):
        return 0
    if not dry_run:
        tmp = f.with_name(f.name + ".tmp")
        df.to_parquet(tmp, index=False)
        os.replace(tmp, f)
    return 1


def erase_customer(
    customer: str,
    *,
    dry_run: bool = False,
    archive: str | Path | None = None,
    exports: list[str | Path] | None = None,
    user: str | None = None,
    db: str | Path | None = None,
    compact: bool = True,
) -> ErasureResult:
    """Remove one customer's personal data everywhere, keeping amounts and ids.

    Clears email, name, phone, addresses, billing and shipping details (columns and the
    same fields inside ``raw`` JSON, at any depth) of every Stripe object that belongs to
    the customer, in the database and in the archive folder; replaces the customer's email
    anywhere else it appears (another object's description, a refund request note, an
    export file); scrubs the customer's email, name and phone from their refund requests'
    free text. Amounts, currencies, dates and ids are untouched, so every total stays the
    same. The audit row holds the customer id and counts only. The audit log itself is
    append-only and is not rewritten: rows of it that mention the customer are counted.

    Args:
        customer: the Stripe customer id, ``cus_...``.
        dry_run: count what would change; change nothing.
        archive: the archive folder (default ``PAYOPS_ARCHIVE_DIR``).
        exports: folders or files of exports to scrub (default: ``PAYOPS_REPORTS_DIR``
            and ``./exports``).
        user: the actor of the audit row.
        db: database path.
        compact: rewrite the database file afterwards, so the erased values do not linger
            in freed pages of the file (DuckDB does not zero them).

    Raises:
        NotFound: no such customer in the database or the archive.
    """
    if not customer or not customer.startswith("cus_"):
        raise InvalidInput(f"not a customer id: {customer!r} (expected cus_...)")
    settings = get_settings()
    folder = _archive_dir(archive)
    export_paths = [Path(p) for p in exports] if exports is not None else [settings.reports_dir, Path("exports")]
    result = ErasureResult(customer=customer, dry_run=dry_run)
    with connect(db) as con:
        found = _union(con, "customers", "email, name, phone, CAST(raw AS VARCHAR)", "id = ?", [customer], folder)
        owned = _owned_ids(con, customer, folder)
        if not found and not owned["payment_intents"] and not owned["charges"]:
            raise NotFound(f"no customer {customer} in the database or the archive {folder}")
        values: list[str | None] = []
        for email, name, phone, raw in found:
            values += [email, name, phone]
            try:
                obj = orjson.loads(raw)
                values += [obj.get("email"), obj.get("name"), obj.get("phone")]
            except (orjson.JSONDecodeError, TypeError, AttributeError):
                pass
        # Billing details on the customer's charges may carry other spellings.
        for (raw,) in _union(con, "charges", "CAST(raw AS VARCHAR)", "customer = ?", [customer], folder):
            try:
                bd = orjson.loads(raw).get("billing_details") or {}
                values += [bd.get("email"), bd.get("name"), bd.get("phone")]
                values.append(orjson.loads(raw).get("receipt_email"))
            except (orjson.JSONDecodeError, TypeError, AttributeError):
                pass
        emails = sorted({v.strip() for v in values if isinstance(v, str) and "@" in v})
        email_pats = _patterns(emails)
        all_pats = _patterns(values)

        # 1. the archive: each affected file is rewritten whole (atomic rename).
        for table in ARCHIVE_TABLES:
            for f in _table_files(folder, table):
                con.execute(f"CREATE OR REPLACE TEMP TABLE _file AS SELECT * FROM {_read([f])}")
                n = _scrub_relation(con, "_file", table, owned.get(table, set()), email_pats, all_pats,
                                    emails, dry_run)
                if n:
                    result.archive_files += 1
                    if not dry_run:
                        _write_atomic(con, "SELECT * FROM _file ORDER BY id", f)
            con.execute("DROP TABLE IF EXISTS _file")
        # 2. exports and reports on disk.
        result.export_files = _scrub_exports(export_paths, customer, email_pats, all_pats, dry_run)
        # 3. the database, with the audit row, in one transaction.
        con.execute("BEGIN TRANSACTION")
        try:
            for table in ARCHIVE_TABLES:
                n = _scrub_relation(con, table, table, owned.get(table, set()), email_pats, all_pats,
                                    emails, dry_run)
                if n:
                    result.tables[table] = n
            n = _scrub_requests(con, customer, email_pats, all_pats, emails, dry_run)
            if n:
                result.tables["refund_requests"] = n
            if emails:
                cond = " OR ".join(['lower(CAST("before" AS VARCHAR)) LIKE ? OR lower(CAST(after AS VARCHAR)) '
                                    "LIKE ? OR lower(note) LIKE ?"] * len(emails))
                params = [f"%{e.lower()}%" for e in emails for _ in range(3)]
                result.audit_rows_mentioning = con.execute(
                    f"SELECT count(*) FROM audit_log WHERE {cond}", params).fetchone()[0]
            if not dry_run:
                result.audit_id = audit.record(
                    con, actor=_user(user), action="customer.erase", entity="customer", entity_id=customer,
                    after={"rows": result.tables, "archive_files": result.archive_files,
                           "export_files": result.export_files},
                    note="personal data erased on request")
                con.execute("COMMIT")
            else:
                con.execute("ROLLBACK")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        con.execute("DROP TABLE IF EXISTS _ids")
        if compact and not dry_run:
            tmp = _compact_copy(con, database_path(db))
    if compact and not dry_run:
        _swap_in(tmp, database_path(db))
    return result


def _compact_copy(con: duckdb.DuckDBPyConnection, path: Path) -> Path:
    """Copy the open database into a fresh file next to it (only live rows travel)."""
    tmp = path.with_name(path.name + ".compact.tmp")
    for p in (tmp, Path(f"{tmp}.wal")):
        p.unlink(missing_ok=True)
    (name,) = con.execute("SELECT current_database()").fetchone()
    con.execute(f"ATTACH {_sql_str(tmp)} AS _compact")
    try:
        con.execute(f'COPY FROM DATABASE "{name}" TO _compact')
    finally:
        con.execute("DETACH _compact")
    return tmp


def _swap_in(tmp: Path, path: Path) -> None:
    # Our connection is closed (its lock released) just before: the window is a rename.
    os.replace(tmp, path)
    Path(f"{path}.wal").unlink(missing_ok=True)


_MASK_COLUMNS = frozenset(PII_KEYS | {"billing_details", "customer_details", "shipping_details"})


def mask_pii(df: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``df`` with personal data masked as ``***``, for exports.

    Masks the columns email, name, phone, address, billing_details, shipping,
    receipt_email and ``customer_*`` variants (any ``*_email`` / ``*_phone`` / ``*_name``
    column too), and the same fields inside ``raw`` / JSON string columns. A column
    called ``name`` is masked only where the frame is about people (it also has a
    customer, email or ``cus_`` id column), so e.g. a KPI table keeps its KPI names.
    """
    out = df.copy()
    lower = {c: str(c).lower() for c in out.columns}
    about_people = any(v in ("customer", "email", "customer_email", "customer_id") for v in lower.values()) or (
        "id" in lower.values() and out[[c for c, v in lower.items() if v == "id"][0]]
        .astype(str).str.startswith("cus_").any())

    def masked(v: Any) -> Any:
        if v is None or (isinstance(v, float) and pd.isna(v)) or v is pd.NA:
            return v
        if isinstance(v, (dict, list)):
            return _mask_all(v)
        return MASK

    for col, name in lower.items():
        personal = name in _MASK_COLUMNS or name.endswith(("_email", "_phone", "_name"))
        if name == "name" and not about_people:
            personal = False
        if personal:
            out[col] = out[col].map(masked).astype(object)
        elif _texty(out[col]):
            def scrub_cell(v: Any) -> Any:
                if isinstance(v, dict | list):
                    return _scrub(v, [], True, MASK)
                if isinstance(v, str) and v[:1] in "{[":
                    try:
                        return orjson.dumps(_scrub(orjson.loads(v), [], True, MASK)).decode()
                    except orjson.JSONDecodeError:
                        return v
                return v
            out[col] = out[col].astype(object).map(scrub_cell)
    return out


def _texty(series: pd.Series) -> bool:
    return series.dtype == object or pd.api.types.is_string_dtype(series.dtype)


# =========================================================================== fix


@dataclass
class Finding:
    """One inconsistency :func:`fix` found, and what happened to it.

    Attributes:
        kind: one of :data:`FIX_KINDS`.
        entity: ``refund_request``, ``charge``, ``booking``, ``daily_metrics`` ...
        entity_id: which one.
        problem: what is wrong, one line.
        repaired: the repair was made (never with ``dry_run``).
        repairable: a repair is possible (with ``dry_run``: would be attempted).
        outcome: what was done, or why it could not be.
    """

    kind: str
    entity: str
    entity_id: str
    problem: str
    repairable: bool = True
    repaired: bool = False
    outcome: str = ""

    def line(self, dry_run: bool = False) -> str:
        if dry_run:
            tail = f"would repair: {self.outcome}" if self.repairable else f"cannot repair: {self.outcome}"
        elif self.repaired:
            tail = f"repaired: {self.outcome}"
        else:
            tail = f"NOT repaired: {self.outcome}"
        return f"{self.kind}: {self.entity} {self.entity_id}: {self.problem} -> {tail}"


class _Stripe:
    """The sync client, made on first need; remembers why it cannot be had."""

    def __init__(self, api: Any = None):
        self.api, self.error = api, None

    def get(self) -> Any:
        if self.api is None and self.error is None:
            try:
                from payops.stripe_api import get_client

                self.api = get_client()
            except (ConfigError, ImportError) as exc:
                self.error = f"needs Stripe: {exc}"
        if self.api is None:
            raise _NoStripe(self.error or "needs Stripe")
        return self.api


class _NoStripe(Exception):
    pass


def _cannot_look_up(f: Finding, exc: Exception) -> None:
    """Mark a finding unrepairable because Stripe could not be asked (or refused)."""
    f.repairable = False
    f.outcome = f"Stripe lookup failed: {exc.message}" if isinstance(exc, PayopsError) else str(exc)


class _StillWrong(Exception):
    pass


def _ingest(con, objects: list[dict]) -> None:
    ingest_into(con, objects)


def _fetch(stripe: _Stripe, otype: str, oid: str) -> dict | None:
    """One object from Stripe, or None when Stripe says it does not exist."""
    try:
        return stripe.get().retrieve(otype, oid)
    except StripeError as exc:
        if getattr(exc, "code", None) == "resource_missing" or "No such" in str(exc):
            return None
        raise


def _record_fix(con, user: str, f: Finding, before: Any = None, after: Any = None) -> None:
    audit.record(con, actor=user, action=f"maintenance.fix.{f.kind}", entity=f.entity, entity_id=f.entity_id,
                 before=before, after=after, note=f"payops fix: {f.problem}; {f.outcome}")


def _check_requests_without_refund(con, stripe: _Stripe, user: str, dry_run: bool, archived: set[str]) -> list[Finding]:
    rows = con.execute(
        "SELECT r.id, r.payment_intent, r.charge, r.stripe_refund_id FROM refund_requests r "
        "LEFT JOIN refunds f ON f.id = r.stripe_refund_id "
        "WHERE r.status = 'PROCESSED' AND (r.stripe_refund_id IS NULL OR f.id IS NULL) ORDER BY r.id").fetchall()
    out = []
    for rid, pi, ch, refund_id in rows:
        if refund_id and refund_id in archived:
            continue
        problem = ("PROCESSED but has no Stripe refund id" if refund_id is None else
                   f"PROCESSED with Stripe refund {refund_id}, which payops does not have")
        f = Finding("request_processed_without_refund", "refund_request", str(rid), problem)
        out.append(f)
        local = con.execute(
            "SELECT id FROM refunds WHERE payops_request_id = ? AND status NOT IN ('failed', 'canceled') "
            "ORDER BY created LIMIT 1", [rid]).fetchone()
        if local:
            f.outcome = f"link to Stripe refund {local[0]} (it carries payops_request_id {rid})"
            if not dry_run:
                with transaction(con):
                    con.execute("UPDATE refund_requests SET stripe_refund_id = ?, updated_at = now() "
                                "WHERE id = ? AND status = 'PROCESSED'", [local[0], rid])
                    _record_fix(con, user, f, {"stripe_refund_id": refund_id}, {"stripe_refund_id": local[0]})
                f.repaired = True
            continue
        if dry_run:
            f.outcome = "look the refund up in Stripe; link it, or mark the request FAILED if Stripe has none"
            continue
        try:
            found = None
            if refund_id:
                obj = _fetch(stripe, "refund", refund_id)
                if obj is not None and str((obj.get("metadata") or {}).get("payops_request_id")) == str(rid):
                    found = obj
            if found is None and (ch or pi):
                for obj in stripe.get().list_refunds(charge=ch, payment_intent=None if ch else pi):
                    if str((obj.get("metadata") or {}).get("payops_request_id")) == str(rid):
                        if found is None or obj.get("status") in ("succeeded", "pending"):
                            found = obj
        except (_NoStripe, PayopsError) as exc:
            _cannot_look_up(f, exc)
            continue
        with transaction(con):
            if found is not None and found.get("status") not in ("failed", "canceled"):
                _ingest(con, [found])
                con.execute("UPDATE refund_requests SET stripe_refund_id = ?, updated_at = now() "
                            "WHERE id = ? AND status = 'PROCESSED'", [found["id"], rid])
                f.outcome = f"fetched Stripe refund {found['id']} and linked it"
                _record_fix(con, user, f, {"stripe_refund_id": refund_id}, {"stripe_refund_id": found["id"]})
            else:
                why = (f"Stripe refund {found['id']} is {found.get('status')}" if found is not None else
                       f"no Stripe refund carries payops_request_id {rid}")
                if found is not None:
                    _ingest(con, [found])
                con.execute("UPDATE refund_requests SET status = 'FAILED', failure_message = ?, "
                            "stripe_refund_id = ?, updated_at = now() WHERE id = ? AND status = 'PROCESSED'",
                            [f"payops fix: {why}", found["id"] if found is not None else refund_id, rid])
                f.outcome = f"marked FAILED ({why}); it can be approved again"
                _record_fix(con, user, f, {"status": "PROCESSED"}, {"status": "FAILED"})
        f.repaired = True
    return out


def _check_refunds_for_unprocessed(con, user: str, dry_run: bool) -> list[Finding]:
    rows = con.execute(
        "SELECT f.id, f.payops_request_id, f.amount, f.currency, f.created, r.status, r.id IS NULL "
        "FROM refunds f LEFT JOIN refund_requests r ON r.id = f.payops_request_id "
        "WHERE f.payops_request_id IS NOT NULL AND f.status IN ('succeeded', 'pending') "
        "AND (r.id IS NULL OR r.status <> 'PROCESSED') "
        # another refund already completed the request: a duplicate, reported by the kind below
        "ORDER BY f.payops_request_id, f.id").fetchall()
    out = []
    for refund_id, rid, _amount, _currency, created, status, missing in rows:
        if missing:
            f = Finding("refund_for_unprocessed_request", "refund", refund_id,
                        f"carries payops_request_id {rid}, but there is no such refund request",
                        repairable=False, outcome="needs a person: the refund was not made through this database")
            out.append(f)
            continue
        f = Finding("refund_for_unprocessed_request", "refund_request", str(rid),
                    f"Stripe refund {refund_id} carries its id but the request is {status}")
        out.append(f)
        if status not in ("APPROVED", "PROCESSING", "FAILED"):
            f.repairable = False
            f.outcome = f"needs a person: money went back for a {status} request"
            continue
        f.outcome = f"mark PROCESSED with Stripe refund {refund_id}"
        if dry_run:
            continue
        with transaction(con):
            n = con.execute(
                "UPDATE refund_requests SET status = 'PROCESSED', stripe_refund_id = ?, "
                "processed_at = coalesce(processed_at, ?), failure_message = NULL, updated_at = now() "
                "WHERE id = ? AND status = ? RETURNING id", [refund_id, created, rid, status]).fetchall()
            if n:
                _record_fix(con, user, f, {"status": status}, {"status": "PROCESSED", "stripe_refund_id": refund_id})
        f.repaired = bool(n)
        if not n:
            f.outcome = "the request changed meanwhile; run fix again"
    return out


_MISMATCH_SQL = (
    "SELECT c.id, coalesce(c.amount_refunded, 0), coalesce(sum(f.amount) FILTER "
    "(WHERE f.status NOT IN ('failed', 'canceled')), 0) AS total "
    "FROM charges c LEFT JOIN refunds f ON f.charge = c.id {where} "
    "GROUP BY c.id, c.amount_refunded HAVING coalesce(c.amount_refunded, 0) <> total ORDER BY c.id"
)


def _check_charge_refunds(con, stripe: _Stripe, user: str, dry_run: bool) -> list[Finding]:
    out = []
    for cid, refunded, total in con.execute(_MISMATCH_SQL.format(where="")).fetchall():
        f = Finding("charge_refunded_mismatch", "charge", cid,
                    f"amount_refunded is {refunded} but its refunds total {total}",
                    outcome="re-fetch the charge and its refunds from Stripe")
        out.append(f)
        if dry_run:
            continue
        try:
            charge = _fetch(stripe, "charge", cid)
            refunds = stripe.get().list_refunds(charge=cid) if charge is not None else []
        except (_NoStripe, PayopsError) as exc:
            _cannot_look_up(f, exc)
            continue
        if charge is None:
            f.repairable, f.outcome = False, f"Stripe has no charge {cid}: needs a person"
            continue
        try:
            with transaction(con):
                _ingest(con, [charge] + refunds)
                left = con.execute(_MISMATCH_SQL.format(where="WHERE c.id = ?"), [cid]).fetchall()
                if left:
                    raise _StillWrong(left[0])
                f.outcome = (f"re-fetched the charge and {len(refunds)} refund(s): "
                             f"amount_refunded now {charge.get('amount_refunded')}")
                _record_fix(con, user, f, {"amount_refunded": refunded, "refunds_total": total},
                            {"amount_refunded": charge.get("amount_refunded")})
        except _StillWrong as exc:
            f.repairable = False
            f.outcome = (f"even as Stripe has it, amount_refunded is {exc.args[0][1]} and the refunds total "
                         f"{exc.args[0][2]}: needs a person")
            continue
        f.repaired = True
    return out


def _check_balance_transactions(con, stripe: _Stripe, user: str, dry_run: bool, archived: set[str]) -> list[Finding]:
    rows = con.execute(
        "SELECT c.id, c.balance_transaction FROM charges c WHERE c.status = 'succeeded' AND "
        "(c.balance_transaction IS NULL OR NOT EXISTS "
        " (SELECT 1 FROM balance_transactions b WHERE b.id = c.balance_transaction)) ORDER BY c.id").fetchall()
    out = []
    for cid, txn in rows:
        if txn and txn in archived:
            continue
        f = Finding("charge_without_balance_transaction", "charge", cid,
                    "succeeded but has no balance transaction" if txn is None else
                    f"its balance transaction {txn} is missing",
                    outcome="fetch the charge and its balance transaction from Stripe")
        out.append(f)
        if dry_run:
            continue
        try:
            charge = _fetch(stripe, "charge", cid)
            bt_ref = charge.get("balance_transaction") if charge else None
            bt_id = bt_ref.get("id") if isinstance(bt_ref, dict) else bt_ref
            bt = _fetch(stripe, "balance_transaction", bt_id) if bt_id else None
        except (_NoStripe, PayopsError) as exc:
            _cannot_look_up(f, exc)
            continue
        if charge is None or bt is None:
            f.repairable = False
            f.outcome = (f"Stripe has no charge {cid}" if charge is None else
                         "Stripe has no balance transaction for it (yet)") + ": needs a person"
            continue
        with transaction(con):
            _ingest(con, [charge, bt])
            f.outcome = f"fetched balance transaction {bt['id']}"
            _record_fix(con, user, f, {"balance_transaction": txn}, {"balance_transaction": bt["id"]})
        f.repaired = True
    return out


def _check_bookings(con, stripe: _Stripe, user: str, dry_run: bool, archived: set[str]) -> list[Finding]:
    rows = con.execute(
        "SELECT b.booking_id, b.payment_intent FROM bookings b WHERE b.payment_intent IS NOT NULL AND NOT EXISTS "
        "(SELECT 1 FROM payment_intents p WHERE p.id = b.payment_intent) ORDER BY b.booking_id").fetchall()
    out = []
    for booking, pi in rows:
        if pi in archived:
            continue
        f = Finding("booking_unknown_payment_intent", "booking", booking,
                    f"points to payment intent {pi}, which payops does not have",
                    outcome="fetch the payment intent (and its charge) from Stripe")
        out.append(f)
        if dry_run:
            continue
        try:
            obj = _fetch(stripe, "payment_intent", pi)
            extra = []
            if obj is not None and isinstance(obj.get("latest_charge"), str):
                ch = _fetch(stripe, "charge", obj["latest_charge"])
                extra = [ch] if ch else []
                # the charge's balance transaction too, or the next check would miss it
                if ch and isinstance(ch.get("balance_transaction"), str):
                    bt = _fetch(stripe, "balance_transaction", ch["balance_transaction"])
                    extra += [bt] if bt else []
        except (_NoStripe, PayopsError) as exc:
            _cannot_look_up(f, exc)
            continue
        if obj is None:
            f.repairable, f.outcome = False, f"Stripe has no payment intent {pi}: needs a person"
            continue
        with transaction(con):
            _ingest(con, [obj] + extra)
            f.outcome = f"fetched payment intent {pi}" + (f" and charge {extra[0]['id']}" if extra else "")
            _record_fix(con, user, f, None, {"payment_intent": pi})
        f.repaired = True
    return out


def _stuck_requests(con, age: timedelta, now: datetime) -> list[tuple]:
    return con.execute(
        "SELECT r.id, r.updated_at FROM refund_requests r WHERE r.status = 'PROCESSING' AND r.updated_at < ? "
        "AND NOT EXISTS (SELECT 1 FROM refunds f WHERE f.payops_request_id = r.id "
        "                AND f.status IN ('succeeded', 'pending')) ORDER BY r.id", [now - age]).fetchall()


def _stale_days(con, tz: str) -> list[date]:
    """Days whose daily_metrics were computed before some row of that day last changed."""
    day = "CAST(timezone(?, {col}) AS DATE)"
    parts, params = [], []
    for table in ("charges", "payment_intents", "refunds", "disputes", "balance_transactions"):
        parts.append(f"SELECT {day.format(col='created')} AS day, max(synced_at) AS changed FROM {table} GROUP BY 1")
        params.append(tz)
    for col in ("requested_at", "decided_at", "processed_at"):
        parts.append(f"SELECT {day.format(col=col)} AS day, max(updated_at) AS changed FROM refund_requests "
                     f"WHERE {col} IS NOT NULL GROUP BY 1")
        params.append(tz)
    sql = (f"WITH touched AS ({' UNION ALL '.join(parts)}), m AS (SELECT day, min(computed_at) AS computed "
           "FROM daily_metrics GROUP BY day) "
           "SELECT m.day FROM m JOIN touched t ON t.day = m.day GROUP BY m.day, m.computed "
           "HAVING max(t.changed) > m.computed ORDER BY m.day")
    return [r[0] for r in con.execute(sql, params).fetchall()]


def _ranges(days: list[date]) -> list[tuple[date, date]]:
    out: list[tuple[date, date]] = []
    for d in days:
        if out and d == out[-1][1] + timedelta(days=1):
            out[-1] = (out[-1][0], d)
        else:
            out.append((d, d))
    return out


def fix(
    *,
    dry_run: bool = False,
    stuck_after: str | timedelta | None = None,
    kinds: Iterable[str] | None = None,
    archive: str | Path | None = None,
    user: str | None = None,
    db: str | Path | None = None,
    api: Any = None,
    now: datetime | None = None,
) -> list[Finding]:
    """Find inconsistencies and, unless ``dry_run``, repair them; one audit row per repair.

    Kinds (:data:`FIX_KINDS`): a request PROCESSED with no Stripe refund (linked to the
    refund that carries its id, else marked FAILED so it can be retried); a Stripe refund
    carrying ``payops_request_id`` whose request is not PROCESSED (marked PROCESSED); a
    charge whose ``amount_refunded`` disagrees with its refunds, a charge without its
    balance transaction, a booking pointing to an unknown payment intent (re-fetched from
    Stripe); requests stuck in PROCESSING longer than ``stuck_after`` (handed to
    :func:`payops.refunds.reconcile`); ``daily_metrics`` days computed before their data
    last changed (recomputed with :func:`payops.metrics.compute_daily`). Objects in the
    archive folder count as present. What cannot be repaired is returned with
    ``repaired=False`` and the reason.

    Args:
        dry_run: report only; change nothing (no Stripe calls either).
        stuck_after: age after which PROCESSING is stuck (default
            ``[refunds] stuck_processing_hours``, 1 h).
        kinds: only these kinds (default all).
        archive: the archive folder (default ``PAYOPS_ARCHIVE_DIR``).
        user: the actor of the audit rows.
        db: database path.
        api: a :class:`payops.stripe_api.StripeAPI` (default: made from the settings on first need).
        now: the current time, for the stuck check.

    Returns:
        The findings, in the order of :data:`FIX_KINDS`.
    """
    settings = get_settings()
    wanted = set(kinds or FIX_KINDS)
    unknown = wanted - set(FIX_KINDS)
    if unknown:
        raise InvalidInput(f"unknown kind(s): {', '.join(sorted(unknown))} (known: {', '.join(FIX_KINDS)})")
    age = parse_age(stuck_after) if stuck_after is not None else \
        settings.refund_policy.stuck_after
    who = _user(user)
    stripe = _Stripe(api)
    now = _now(now)
    folder = _archive_dir(archive)
    findings: list[Finding] = []
    with connect(db) as con:
        if "refund_for_unprocessed_request" in wanted:
            findings += _check_refunds_for_unprocessed(con, who, dry_run)
        stuck = _stuck_requests(con, age, now) if "request_stuck_processing" in wanted else []
    if stuck:
        stuck_findings = {str(rid): Finding(
            "request_stuck_processing", "refund_request", str(rid),
            f"PROCESSING since {updated:%Y-%m-%d %H:%M} UTC (longer than {age})",
            outcome="hand it to refunds.reconcile") for rid, updated in stuck}
        findings += list(stuck_findings.values())
        if not dry_run:
            try:
                from payops import refunds

                results = refunds.reconcile(user=who, db=db, api=stripe.api, older_than=age)
            except (ImportError, AttributeError):
                results = None
                for f in stuck_findings.values():
                    f.repairable, f.outcome = False, "payops.refunds.reconcile is not available"
            except PayopsError as exc:
                results = None
                for f in stuck_findings.values():
                    f.repairable, f.outcome = False, f"reconcile failed: {exc.message}"
            if results is not None:
                by_id = {str(r.request_id): r for r in results}
                for rid, f in stuck_findings.items():
                    r = by_id.get(rid)
                    if r is None:
                        f.repairable, f.outcome = False, "reconcile left it alone: needs a person"
                    else:
                        f.repaired = bool(r.ok) and r.status != "PROCESSING"
                        f.repairable = f.repaired
                        f.outcome = f"reconcile: {r.status}: {r.message}"
                with connect(db) as con, transaction(con):
                    for f in stuck_findings.values():
                        if f.repaired:
                            _record_fix(con, who, f, {"status": "PROCESSING"}, {"status": by_id[f.entity_id].status})
    with connect(db) as con:
        if "request_processed_without_refund" in wanted:
            findings += _check_requests_without_refund(con, stripe, who, dry_run, archived_ids("refunds", folder))
        if "charge_refunded_mismatch" in wanted:
            findings += _check_charge_refunds(con, stripe, who, dry_run)
        if "charge_without_balance_transaction" in wanted:
            findings += _check_balance_transactions(con, stripe, who, dry_run,
                                                    archived_ids("balance_transactions", folder))
        if "booking_unknown_payment_intent" in wanted:
            findings += _check_bookings(con, stripe, who, dry_run, archived_ids("payment_intents", folder))
    if "daily_metrics_stale" in wanted:
        with connect(db) as con:
            days = _stale_days(con, settings.timezone)
        for start, end in _ranges(days):
            span = f"{start}" if start == end else f"{start}..{end}"
            f = Finding("daily_metrics_stale", "daily_metrics", span,
                        "computed before the data of that day last changed",
                        outcome="recompute with metrics.compute_daily")
            findings.append(f)
            if dry_run:
                continue
            try:
                from payops import metrics

                n = metrics.compute_daily(start, end, db=db)
            except (ImportError, AttributeError):
                f.repairable, f.outcome = False, "payops.metrics.compute_daily is not available"
                continue
            except PayopsError as exc:
                f.repairable, f.outcome = False, f"recompute failed: {exc.message}"
                continue
            f.outcome = f"recomputed {n} row(s)"
            with connect(db) as con, transaction(con):
                _record_fix(con, who, f, None, {"start": str(start), "end": str(end), "rows": n})
            f.repaired = True
    return findings

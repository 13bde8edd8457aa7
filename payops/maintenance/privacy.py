"""Personal data: :func:`erase_customer` everywhere it lives, :func:`mask_pii` for exports.

:func:`erase_customer` removes one customer's personal data from every table, the archive
and the export files, keeping amounts and ids for the books. :func:`mask_pii` masks
personal data in a DataFrame (``payops export --mask-pii``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pandas as pd

from payops import audit, refunds
from payops.config import get_settings
from payops.db import connect, database_path, sql_literal, transaction
from payops.errors import InvalidInput, NotFound
from payops.maintenance.archive import (
    ARCHIVE_TABLES,
    archive_dir,
    read_parquet_sql,
    table_files,
    write_parquet_atomic,
)
from payops.maintenance.common import actor, scalar

__all__ = ["ERASED", "MASK", "PII_KEYS", "ErasureResult", "erase_customer", "mask_pii"]

# Keys of Stripe objects that hold personal data, at any depth (billing_details.email,
# shipping.address.line1, customer_details.name ...).
PII_KEYS = frozenset({
    "email", "name", "phone", "address", "shipping", "receipt_email", "customer_email",
    "customer_name", "customer_phone", "customer_address", "customer_shipping",
})
ERASED = "[erased]"
MASK = "***"


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


def _texty(series: pd.Series) -> bool:
    return series.dtype == object or pd.api.types.is_string_dtype(series.dtype)


# =========================================================================== erasure


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


@dataclass(frozen=True)
class _Needles:
    """What identifies the customer in text: their emails, and every personal value known."""

    customer: str
    emails: list[str]
    email_pats: list[re.Pattern]  # replaced anywhere, in anyone's rows
    all_pats: list[re.Pattern]    # replaced in the customer's own rows (name and phone too)


# table -> (JSON/text columns to scrub, columns cleared when the row is the customer's)
_ERASE_COLUMNS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "customers": (("raw", "metadata"), ("email", "name", "phone")),
    "payment_intents": (("raw", "metadata"), ()),
    "charges": (("raw", "metadata", "failure_message"), ()),
    "refunds": (("raw", "metadata"), ()),
    "disputes": (("raw",), ()),
    "balance_transactions": (("raw",), ()),
    "payouts": (("raw",), ()),
    "transfers": (("raw", "metadata"), ()),
    "application_fees": (("raw",), ()),
    "events": (("raw",), ()),
}
# Free-text columns payops itself writes, scrubbed of the customer's email/name/phone.
REQUEST_TEXT = refunds.TEXT_COLUMNS
_TEXT_EXPORTS = (".csv", ".json", ".jsonl", ".html", ".htm", ".ipynb", ".txt", ".md", ".tsv")


def _union(con: duckdb.DuckDBPyConnection, table: str, cols: str, where: str, params: list,
           archive: Path) -> list[tuple]:
    """Rows of ``table`` matching ``where`` in the database and in the archive."""
    rows = con.execute(f"SELECT {cols} FROM {table} WHERE {where}", params).fetchall()
    files = table_files(archive, table)
    if files:
        rows += con.execute(f"SELECT {cols} FROM {read_parquet_sql(files)} WHERE {where}", params).fetchall()
    return rows


def _owned_ids(con: duckdb.DuckDBPyConnection, customer: str, archive: Path) -> dict[str, set[str]]:
    """The ids of every Stripe object that belongs to ``customer`` (database and archive)."""
    con.execute("CREATE OR REPLACE TEMP TABLE _ids (id VARCHAR)")

    def ids(table: str, where: str, params: list) -> set[str]:
        return {r[0] for r in _union(con, table, "id", where, params, archive)}

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
    out["transfers"] = ids("transfers", "source_transaction IN (SELECT id FROM _ids)", [])
    out["application_fees"] = ids("application_fees", "charge IN (SELECT id FROM _ids)", [])
    put(out["charges"] | out["refunds"] | out["disputes"] | out["transfers"])
    out["balance_transactions"] = ids("balance_transactions", "source IN (SELECT id FROM _ids)", [])
    out["payouts"] = set()
    everything: set[str] = set().union(*out.values())
    put(everything)
    out["events"] = ids("events", "object_id IN (SELECT id FROM _ids)", [])
    return out


def _personal_values(con: duckdb.DuckDBPyConnection, found: list[tuple], customer: str,
                     archive: Path) -> list[str | None]:
    """The customer's email, name and phone as every object of theirs spells them."""
    values: list[str | None] = []
    for email, name, phone, raw in found:
        values += [email, name, phone]
        try:
            obj = orjson.loads(raw)
            values += [obj.get("email"), obj.get("name"), obj.get("phone")]
        except (orjson.JSONDecodeError, TypeError, AttributeError):
            pass
    # Billing details on the customer's charges may carry other spellings.
    for (raw,) in _union(con, "charges", "CAST(raw AS VARCHAR)", "customer = ?", [customer], archive):
        try:
            obj = orjson.loads(raw)
            bd = obj.get("billing_details") or {}
            values += [bd.get("email"), bd.get("name"), bd.get("phone"), obj.get("receipt_email")]
        except (orjson.JSONDecodeError, TypeError, AttributeError):
            pass
    return values


def _scrub_relation(con: duckdb.DuckDBPyConnection, rel: str, table: str, owned: set[str], needles: _Needles,
                    dry_run: bool) -> int:
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
    for e in needles.emails:
        for c in text_cols:
            cond.append(f"lower(CAST({c} AS VARCHAR)) LIKE ?")
            params.append(f"%{e.lower()}%")
    sel = ", ".join(["id"] + [f"CAST({c} AS VARCHAR)" for c in text_cols + clear_cols])
    rows = con.execute(f"SELECT {sel} FROM {rel} WHERE {' OR '.join(cond)}", params).fetchall()
    updates = []
    for row in rows:
        rid = row[0]
        is_owned = rid in owned
        pats = needles.all_pats if is_owned else needles.email_pats
        values = list(row[1:1 + len(text_cols)])
        new = [_scrub_json(v, pats, is_owned) for v in values]
        clear = row[1 + len(text_cols):]
        if new == values and not (is_owned and any(v is not None for v in clear)):
            continue
        updates.append(new + [rid])
    if updates and not dry_run:
        con.executemany(f"UPDATE {rel} SET " + ", ".join(f"{c} = ?" for c in text_cols) + " WHERE id = ?", updates)
        if clear_cols:
            con.execute(f"UPDATE {rel} SET " + ", ".join(f"{c} = NULL" for c in clear_cols)
                        + " WHERE id IN (SELECT id FROM _ids)")
    return len(updates)


def _scrub_requests(con: duckdb.DuckDBPyConnection, needles: _Needles, dry_run: bool) -> int:
    """Scrub the free text of refund requests: the customer's own, and any naming their email."""
    cond = " OR ".join(f"lower({c}) LIKE ?" for c in REQUEST_TEXT for _ in needles.emails) or "false"
    params = [f"%{e.lower()}%" for c in REQUEST_TEXT for e in needles.emails]
    rows = con.execute(
        f"SELECT id, customer, {', '.join(REQUEST_TEXT)} FROM refund_requests WHERE customer = ? OR {cond}",
        [needles.customer] + params).fetchall()
    updates = []
    for rid, cus, *texts in rows:
        pats = needles.all_pats if cus == needles.customer else needles.email_pats
        new = [_scrub(t, pats, False) if t is not None else None for t in texts]
        if new != texts:
            updates.append((rid, new))
    if updates and not dry_run:
        refunds.set_texts(con, REQUEST_TEXT, updates)
    return len(updates)


def _scrub_text_file(f: Path, needles: _Needles, dry_run: bool) -> int:
    """The email everywhere; the name and phone on lines (records) that name the customer id or
    email, so a namesake's rows stay intact. Returns 1 when the file changed (or would)."""
    try:
        text = f.read_text(encoding="utf-8")
    except (UnicodeDecodeError, OSError):
        return 0
    out = []
    for line in text.splitlines(keepends=True):
        mine = needles.customer in line or any(p.search(line) for p in needles.email_pats)
        out.append(_scrub(line, needles.all_pats if mine else needles.email_pats, False))
    new = "".join(out)
    if new == text:
        return 0
    if not dry_run:
        tmp = f.with_name(f.name + ".tmp")
        tmp.write_text(new, encoding="utf-8")
        os.replace(tmp, f)
    return 1


def _scrub_parquet_export(f: Path, needles: _Needles, dry_run: bool) -> int:
    con = duckdb.connect()
    try:
        df = con.execute(f"SELECT * FROM read_parquet({sql_literal(f)})").df()
    except duckdb.Error:
        return 0
    finally:
        con.close()
    if df.empty:
        return 0
    as_text = df.astype(str)
    customer, email_pats, all_pats = needles.customer, needles.email_pats, needles.all_pats
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


def _scrub_exports(paths: list[Path], needles: _Needles, dry_run: bool) -> int:
    """Scrub export and report files under ``paths``; returns the files changed."""
    changed = 0
    for root in paths:
        files = [root] if root.is_file() else (sorted(root.rglob("*")) if root.is_dir() else [])
        for f in files:
            if not f.is_file():
                continue
            suffix = f.suffix.lower()
            if suffix in _TEXT_EXPORTS:
                changed += _scrub_text_file(f, needles, dry_run)
            elif suffix == ".parquet":
                changed += _scrub_parquet_export(f, needles, dry_run)
    return changed


def _scrub_archive(con: duckdb.DuckDBPyConnection, folder: Path, owned: dict[str, set[str]], needles: _Needles,
                   dry_run: bool) -> int:
    """Rewrite each archive file that holds the customer's data whole (atomic rename); returns files changed."""
    changed = 0
    for table in ARCHIVE_TABLES:
        for f in table_files(folder, table):
            con.execute(f"CREATE OR REPLACE TEMP TABLE _file AS SELECT * FROM {read_parquet_sql([f])}")
            if _scrub_relation(con, "_file", table, owned.get(table, set()), needles, dry_run):
                changed += 1
                if not dry_run:
                    write_parquet_atomic(con, "SELECT * FROM _file ORDER BY id", f)
        con.execute("DROP TABLE IF EXISTS _file")
    return changed


def _scrub_database(con: duckdb.DuckDBPyConnection, owned: dict[str, set[str]], needles: _Needles,
                    dry_run: bool, result: ErasureResult) -> None:
    """Scrub every table (inside the caller's transaction); counts go into ``result``."""
    for table in ARCHIVE_TABLES:
        n = _scrub_relation(con, table, table, owned.get(table, set()), needles, dry_run)
        if n:
            result.tables[table] = n
    n = _scrub_requests(con, needles, dry_run)
    if n:
        result.tables["refund_requests"] = n
    if needles.emails:
        cond = " OR ".join(['lower(CAST("before" AS VARCHAR)) LIKE ? OR lower(CAST(after AS VARCHAR)) '
                            "LIKE ? OR lower(note) LIKE ?"] * len(needles.emails))
        params = [f"%{e.lower()}%" for e in needles.emails for _ in range(3)]
        result.audit_rows_mentioning = scalar(con, f"SELECT count(*) FROM audit_log WHERE {cond}", params)


class _DryRun(Exception):
    """Raised to roll the dry run's transaction back."""


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
        InvalidInput: ``customer`` is not a customer id.
        NotFound: no such customer in the database or the archive.
    """
    if not customer or not customer.startswith("cus_"):
        raise InvalidInput(f"not a customer id: {customer!r} (expected cus_...)")
    folder = archive_dir(archive)
    export_paths = [Path(p) for p in exports] if exports is not None else [get_settings().reports_dir,
                                                                            Path("exports")]
    result = ErasureResult(customer=customer, dry_run=dry_run)
    compacted: Path | None = None
    with connect(db) as con:
        found = _union(con, "customers", "email, name, phone, CAST(raw AS VARCHAR)", "id = ?", [customer], folder)
        owned = _owned_ids(con, customer, folder)
        if not found and not owned["payment_intents"] and not owned["charges"]:
            raise NotFound(f"no customer {customer} in the database or the archive {folder}")
        values = _personal_values(con, found, customer, folder)
        emails = sorted({v.strip() for v in values if isinstance(v, str) and "@" in v})
        needles = _Needles(customer, emails, _patterns(emails), _patterns(values))
        result.archive_files = _scrub_archive(con, folder, owned, needles, dry_run)
        result.export_files = _scrub_exports(export_paths, needles, dry_run)
        # The database, with the audit row, in one transaction (a dry run rolls it back).
        try:
            with transaction(con):
                _scrub_database(con, owned, needles, dry_run, result)
                if dry_run:
                    raise _DryRun
                result.audit_id = audit.record(
                    con, actor=actor(user), action="customer.erase", entity="customer", entity_id=customer,
                    after={"rows": result.tables, "archive_files": result.archive_files,
                           "export_files": result.export_files},
                    note="personal data erased on request")
        except _DryRun:
            pass
        con.execute("DROP TABLE IF EXISTS _ids")
        if compact and not dry_run:
            compacted = _compact_copy(con, database_path(db))
    if compacted is not None:
        _swap_in(compacted, database_path(db))
    return result


def _compact_copy(con: duckdb.DuckDBPyConnection, path: Path) -> Path:
    """Copy the open database into a fresh file next to it (only live rows travel)."""
    tmp = path.with_name(path.name + ".compact.tmp")
    for p in (tmp, Path(f"{tmp}.wal")):
        p.unlink(missing_ok=True)
    name = scalar(con, "SELECT current_database()")
    con.execute(f"ATTACH {sql_literal(tmp)} AS _compact")
    try:
        con.execute(f'COPY FROM DATABASE "{name}" TO _compact')
    finally:
        con.execute("DETACH _compact")
    return tmp


def _swap_in(tmp: Path, path: Path) -> None:
    # Our connection is closed (its lock released) just before: the window is a rename.
    os.replace(tmp, path)
    Path(f"{path}.wal").unlink(missing_ok=True)


# =========================================================================== masking for exports

_MASK_COLUMNS = frozenset(PII_KEYS | {"billing_details", "customer_details", "shipping_details"})


def _masked(v: Any) -> Any:
    if v is None or (isinstance(v, float) and pd.isna(v)) or v is pd.NA:
        return v
    if isinstance(v, dict | list):
        return _mask_all(v)
    return MASK


def _mask_inside(v: Any) -> Any:
    """Mask the personal keys inside a JSON value or JSON text; other values pass."""
    if isinstance(v, dict | list):
        return _scrub(v, [], True, MASK)
    if isinstance(v, str) and v[:1] in "{[":
        try:
            return orjson.dumps(_scrub(orjson.loads(v), [], True, MASK)).decode()
        except orjson.JSONDecodeError:
            return v
    return v


def _about_people(df: pd.DataFrame, lower: dict[Any, str]) -> bool:
    """The frame describes people: it has a customer or email column, or ``cus_`` ids."""
    if any(v in ("customer", "email", "customer_email", "customer_id") for v in lower.values()):
        return True
    ids = [c for c, v in lower.items() if v == "id"]
    return bool(ids) and bool(df[ids[0]].astype(str).str.startswith("cus_").any())


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
    about_people = _about_people(out, lower)
    for col, name in lower.items():
        personal = name in _MASK_COLUMNS or name.endswith(("_email", "_phone", "_name"))
        if name == "name" and not about_people:
            personal = False
        if personal:
            out[col] = out[col].map(_masked).astype(object)
        elif _texty(out[col]):
            out[col] = out[col].astype(object).map(_mask_inside)
    return out

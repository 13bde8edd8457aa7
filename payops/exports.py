"""CSV / JSON / Parquet exports of payments, refunds, refund requests, customers and daily metrics.

Every amount appears twice: ``<column>`` as the integer in minor units and
``<column>_decimal`` as an exact decimal string in major units (``"13.12"``, ``"1000"`` for
JPY), next to a ``currency`` column. Dates select local days in the reporting timezone.

Formats:

- **csv**: UTF-8 with a byte-order mark (so spreadsheets detect the encoding), a header row,
  timestamps as ``YYYY-MM-DDTHH:MM:SSZ`` (UTC), and text that a spreadsheet would run as a
  formula (starting with ``=``, ``+``, ``@``, or ``-`` not followed by a number) prefixed
  with ``'``.
- **json**: one object ``{"export", "generated_at", "timezone", "from", "to", "count",
  "rows"}``; ``rows`` is a list of objects with the same columns as the CSV (amounts as
  integers, ``*_decimal`` as strings, timestamps as ISO 8601 UTC strings, null for missing).
- **parquet**: typed columns (BIGINT amounts, TIMESTAMPTZ timestamps, strings).
"""

from __future__ import annotations

import sys
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import orjson
import pandas as pd

from payops import maintenance, metrics
from payops.config import get_settings
from payops.errors import InvalidInput
from payops.money import THREE_DECIMAL, ZERO_DECIMAL

__all__ = ["KINDS", "FORMATS", "frame", "export", "add_decimals", "write"]

KINDS = ("payments", "refunds", "refund-requests", "customers", "daily-metrics")
FORMATS = ("csv", "json", "parquet")

MONEY = {
    "payments": ("amount", "amount_captured", "amount_refunded", "platform_fee", "stripe_fee"),
    "refunds": ("amount",),
    "refund-requests": ("amount",),
    "customers": ("spend", "refunded_amount"),
    "daily-metrics": metrics.MONEY_COLUMNS,
}

_PLATFORM_FEE = """
    CASE WHEN c.status <> 'succeeded' THEN NULL
         WHEN c.application_fee_amount IS NOT NULL THEN c.application_fee_amount
         ELSE coalesce(c.amount_captured, 0) * $bps // 10000
              + CASE WHEN (coalesce(c.amount_captured, 0) * $bps) % 10000 > 5000
                       OR ((coalesce(c.amount_captured, 0) * $bps) % 10000 = 5000
                           AND (coalesce(c.amount_captured, 0) * $bps // 10000) % 2 = 1)
                     THEN 1 ELSE 0 END END"""

_SQL = {
    "payments": f"""
        SELECT c.id AS charge, c.payment_intent, c.customer, cu.email AS customer_email, c.created,
               c.currency, c.status, c.amount, c.amount_captured, c.amount_refunded,
               {_PLATFORM_FEE} AS platform_fee, bt.fee AS stripe_fee,
               c.failure_code, c.failure_message, c.payment_method_type, c.card_brand,
               c.refunded, c.disputed, pi.booking_id, c.livemode
        FROM charges c
        LEFT JOIN balance_transactions bt ON bt.id = c.balance_transaction
        LEFT JOIN customers cu ON cu.id = c.customer
        LEFT JOIN payment_intents pi ON pi.id = c.payment_intent
        WHERE ($lo IS NULL OR c.created >= $lo) AND ($hi IS NULL OR c.created < $hi)
        ORDER BY c.created, c.id""",
    "refunds": """
        SELECT r.id AS refund, r.charge, r.payment_intent, c.customer, r.created, r.currency, r.amount,
               r.status, r.reason, r.failure_reason, r.payops_request_id
        FROM refunds r LEFT JOIN charges c ON c.id = r.charge
        WHERE ($lo IS NULL OR r.created >= $lo) AND ($hi IS NULL OR r.created < $hi)
        ORDER BY r.created, r.id""",
    "refund-requests": """
        SELECT id, payment_intent, charge, customer, amount, currency, reason, note, status,
               requested_by, requested_at, first_approver, decided_by, decided_at, decision_note,
               second_approver, stripe_refund_id, processed_at, failure_message
        FROM refund_requests
        WHERE ($lo IS NULL OR requested_at >= $lo) AND ($hi IS NULL OR requested_at < $hi)
        ORDER BY requested_at, id""",
}


def add_decimals(df: pd.DataFrame, columns, currency_column: str = "currency") -> pd.DataFrame:
    """Add ``<column>_decimal`` (exact major-unit strings) after each money column."""
    if df.empty:
        for col in columns:
            df.insert(df.columns.get_loc(col) + 1, f"{col}_decimal", pd.Series(dtype="object"))
        return df
    for col in columns:
        # NULL-able BIGINTs arrive as float64 from DuckDB; amounts stay integers
        df[col] = df[col].astype("Int64")
    cur = df[currency_column].fillna("").str.lower()
    exp = np.where(cur.isin(ZERO_DECIMAL), 0, np.where(cur.isin(THREE_DECIMAL), 3, 2))
    for col in columns:
        values = df[col]
        out = pd.Series([None] * len(df), index=df.index, dtype="object")
        present = values.notna()
        for e in (0, 2, 3):
            mask = present & (exp == e)
            if not mask.any():
                continue
            v = df[col][mask].astype("int64")
            if e == 0:
                out[mask] = v.astype(str)
                continue
            a = v.abs()
            sign = np.where(v < 0, "-", "")
            out[mask] = sign + (a // 10**e).astype(str) + "." + (a % 10**e).astype(str).str.zfill(e)
        df.insert(df.columns.get_loc(col) + 1, f"{col}_decimal", out)
    return df


def frame(kind: str, start: date | None = None, end: date | None = None, *, db=None, tz: str | None = None) -> pd.DataFrame:
    """The rows of one export as a DataFrame (amounts with their ``*_decimal`` strings).

    Args:
        kind: one of :data:`KINDS`.
        start: first local day (default: from the beginning).
        end: last local day, inclusive (default: to the end).
        db: database path.
        tz: reporting timezone (default ``PAYOPS_TIMEZONE``).
    """
    if kind not in KINDS:
        raise InvalidInput(f"unknown export {kind!r} (use {', '.join(KINDS)})")
    start, end = metrics.parse_date(start), metrics.parse_date(end)
    if start and end and end < start:
        raise InvalidInput(f"the range ends ({end}) before it starts ({start})")
    tz = metrics._tz(tz)
    if kind == "customers":
        df = metrics.customer_insights(db=db, start=start, end=end, tz=tz)
    elif kind == "daily-metrics":
        with metrics._reader(db) as con:
            df = con.execute(
                "SELECT * FROM daily_metrics WHERE ($s IS NULL OR day >= $s) AND ($e IS NULL OR day <= $e) "
                "ORDER BY day, currency", {"s": start, "e": end}).df()
    else:
        lo = metrics._bounds(start, start, tz)[0] if start else None
        hi = metrics._bounds(end, end, tz)[1] if end else None
        with metrics._reader(db) as con:
            params = {"lo": lo, "hi": hi}
            if "$bps" in _SQL[kind]:
                params["bps"] = get_settings().platform_fee_bps
            df = con.execute(_SQL[kind], params).df()
    if "payops_request_id" in df:
        df["payops_request_id"] = df["payops_request_id"].astype("Int64")
    return add_decimals(df, MONEY[kind])


_FORMULA_START = ("=", "+", "@", "\t", "\r")


def _csv_safe(value):
    # a spreadsheet runs a cell starting with = + @ (or - then text) as a formula
    if isinstance(value, str) and value and (
        value.startswith(_FORMULA_START) or (value[0] == "-" and not value[1:2].isdigit())
    ):
        return "'" + value
    return value


def _for_text(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    for col in out.columns:
        s = out[col]
        if isinstance(s.dtype, pd.DatetimeTZDtype):
            out[col] = s.dt.tz_convert("UTC").dt.strftime("%Y-%m-%dT%H:%M:%SZ")
        elif pd.api.types.is_datetime64_any_dtype(s):
            out[col] = s.dt.strftime("%Y-%m-%d" if col == "day" else "%Y-%m-%dT%H:%M:%S")
    return out


def write(df: pd.DataFrame, fmt: str, out, *, kind: str, start=None, end=None, tz: str | None = None) -> None:
    """Write an export frame to ``out`` (a path, or ``-`` for stdout with csv/json)."""
    if fmt not in FORMATS:
        raise InvalidInput(f"unknown format {fmt!r} (use {', '.join(FORMATS)})")
    stdout = str(out) == "-"
    if fmt == "parquet":
        if stdout:
            raise InvalidInput("parquet cannot go to stdout; give --out PATH")
        df.to_parquet(out, index=False)
        return
    text = _for_text(df)
    if fmt == "csv":
        for col in text.columns:
            if text[col].dtype == object or pd.api.types.is_string_dtype(text[col]):
                text[col] = text[col].map(_csv_safe, na_action="ignore")
        if stdout:
            text.to_csv(sys.stdout, index=False)
        else:
            text.to_csv(out, index=False, encoding="utf-8-sig")
        return
    rows = text.astype(object).where(text.notna(), None).to_dict(orient="records")
    doc = {
        "export": kind,
        "generated_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "timezone": tz or get_settings().timezone,
        "from": start.isoformat() if start else None,
        "to": end.isoformat() if end else None,
        "count": len(rows),
        "rows": rows,
    }
    data = orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY, default=str)
    if stdout:
        sys.stdout.write(data.decode() + "\n")
    else:
        Path(out).write_bytes(data + b"\n")


def export(kind: str, fmt: str = "csv", *, start: date | str | None = None, end: date | str | None = None,
           out: str | Path | None = None, db=None, tz: str | None = None,
           mask_pii: bool = False) -> Path | None:
    """Export ``kind`` rows of local days ``start``..``end`` to a file.

    Args:
        kind: one of :data:`KINDS` (``payments``, ``refunds``, ``refund-requests``,
            ``customers``, ``daily-metrics``).
        fmt: ``csv``, ``json`` or ``parquet``.
        start: first local day (default: from the beginning).
        end: last local day, inclusive (default: to the end).
        out: file to write, or ``-`` for stdout; default ``<kind>[_<from>_<to>].<fmt>`` here.
        db: database path.
        tz: reporting timezone.
        mask_pii: mask personal data (emails, names, phones, addresses), for sharing.

    Returns:
        The path written (None for stdout).
    """
    if fmt not in FORMATS:
        raise InvalidInput(f"unknown format {fmt!r} (use {', '.join(FORMATS)})")
    start, end = metrics.parse_date(start), metrics.parse_date(end)
    df = frame(kind, start, end, db=db, tz=tz)
    if mask_pii:
        df = maintenance.mask_pii(df)
    if out is None:
        span = f"_{start or 'start'}_{end or 'end'}" if (start or end) else ""
        out = Path(f"{kind.replace('-', '_')}{span}.{fmt}")
    if str(out) != "-":
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
    write(df, fmt, out, kind=kind, start=start, end=end, tz=tz)
    return None if str(out) == "-" else out

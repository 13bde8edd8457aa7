"""CSV / JSON / Parquet exports of payments, refunds, refund requests, customers and daily metrics.

Every amount appears twice: ``<column>`` as the integer in minor units and
``<column>_decimal`` as an exact decimal string in major units (``"13.12"``, ``"1000"`` for
JPY), next to a ``currency`` column. Dates select local days in the reporting timezone.

Formats:

- **csv**: RFC 4180 (CRLF rows), UTF-8 with a byte-order mark (so spreadsheets detect the encoding), a header row,
  timestamps as ``YYYY-MM-DDTHH:MM:SSZ`` (UTC), and text that a spreadsheet would run as a
  formula (starting with ``=``, ``+``, ``-``, ``@``, tab, CR, ...) prefixed with ``'``
  (:func:`payops.outputs.csv_safe`; amounts stay numbers).
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

from payops import insights, maintenance, metrics, money, outputs, payments
from payops.config import get_settings
from payops.errors import InvalidInput, MoneyError
from payops.periods import bounds, parse_date, reader, timezone

__all__ = ["KINDS", "FORMATS", "frame", "export", "add_decimals", "write"]

KINDS = ("payments", "refunds", "refund-requests", "customers", "daily-metrics")
FORMATS = ("csv", "json", "parquet")

MONEY = {
    "payments": ("amount", "amount_captured", "amount_refunded", *money.FIGURES),
    "refunds": ("amount",),
    "refund-requests": ("amount",),
    "customers": ("spend", "refunded_amount"),
    "daily-metrics": metrics.MONEY_COLUMNS,
}

_SQL = {
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


def _exponents(currencies: pd.Series) -> pd.Series:
    """:func:`payops.money.exponent` of each row's currency (NA where there is no valid code)."""
    known: dict[str, int | None] = {}
    for cur in currencies.dropna().unique():
        try:
            known[cur] = money.exponent(cur)
        except MoneyError:
            known[cur] = None
    return currencies.map(known).astype("Int64")


def add_decimals(df: pd.DataFrame, columns, currency_column: str = "currency") -> pd.DataFrame:
    """Add ``<column>_decimal`` (exact major-unit strings) after each money column."""
    if df.empty:
        for col in columns:
            df.insert(df.columns.get_loc(col) + 1, f"{col}_decimal", pd.Series(dtype="object"))
        return df
    for col in columns:
        # NULL-able BIGINTs arrive as float64 from DuckDB; amounts stay integers
        df[col] = df[col].astype("Int64")
    exp = _exponents(df[currency_column])
    for col in columns:
        values = df[col]
        out = pd.Series([None] * len(df), index=df.index, dtype="object")
        present = values.notna()
        for e in exp.dropna().unique():
            mask = present & exp.eq(e).fillna(False)
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


def frame(kind: str, start: date | None = None, end: date | None = None, *, db=None,
          tz: str | None = None) -> pd.DataFrame:
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
    first, last = parse_date(start), parse_date(end)
    if first and last and last < first:
        raise InvalidInput(f"the range ends ({last}) before it starts ({first})")
    tz = timezone(tz)
    if kind == "customers":
        df = insights.customer_insights(db=db, start=first, end=last, tz=tz)
    elif kind == "payments":
        df = payments.charges(first, last, db=db, tz=tz)
    elif kind == "daily-metrics":
        with reader(db) as con:
            df = con.execute(
                "SELECT * FROM daily_metrics WHERE ($s IS NULL OR day >= $s) AND ($e IS NULL OR day <= $e) "
                "ORDER BY day, currency", {"s": first, "e": last}).df()
    else:
        lo = bounds(first, first, tz)[0] if first else None
        hi = bounds(last, last, tz)[1] if last else None
        with reader(db) as con:
            df = con.execute(_SQL[kind], {"lo": lo, "hi": hi}).df()
    if "payops_request_id" in df:
        df["payops_request_id"] = df["payops_request_id"].astype("Int64")
    return add_decimals(df, MONEY[kind])


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
        outputs.write_csv(text, sys.stdout if stdout else out, bom=not stdout)
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
    start, end = parse_date(start), parse_date(end)
    df = frame(kind, start, end, db=db, tz=tz)
    if mask_pii:
        df = maintenance.mask_pii(df)
    if out is None:
        span = f"_{start or 'start'}_{end or 'end'}" if (start or end) else ""
        out = Path(f"{kind.replace('-', '_')}{span}.{fmt}")
    if str(out) == "-":
        write(df, fmt, "-", kind=kind, start=start, end=end, tz=tz)
        return None
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    write(df, fmt, path, kind=kind, start=start, end=end, tz=tz)
    return path

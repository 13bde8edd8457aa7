"""Daily metrics, period summaries, KPIs and alerts.

Every metric is per day in the reporting timezone (``PAYOPS_TIMEZONE``) and per currency
(DESIGN.md, "Metrics"); sums never cross currencies. The queries are plain SQL files in
``payops/sql/`` and set-based: one ``GROUP BY`` per source table, joined on day and
currency, so recomputing months of data over a million payments takes well under a second.

``daily_metrics`` is the materialised table (:func:`compute_daily`); :func:`compute` gives
the same rows without writing, for readers such as the report notebook. Reporting periods
live in :mod:`payops.periods` (re-exported here), customer insights and the report's
breakdowns in :mod:`payops.insights`, one payment's figures in :mod:`payops.payments`.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from zoneinfo import ZoneInfo

import pandas as pd

from payops import ledger, money
from payops.config import get_settings
from payops.db import SQL_DIR, connect, database_path, insert_frame, transaction
from payops.periods import PERIODS, Period, bounds, check_range, parse_date, period, reader, timezone
from payops.refunds import rules as refund_rules

__all__ = [
    "PERIODS", "Period", "period", "parse_date",
    "daily_metrics_query", "compute", "compute_daily", "stored_range", "daily", "summary", "summaries",
    "kpis", "kpis_of",
    "alerts", "processing_times", "METRIC_COLUMNS", "MONEY_COLUMNS", "ADDITIVE",
]

#: daily_metrics columns holding money (minor units of the row's currency): payops.money.FIGURES
MONEY_COLUMNS = tuple(money.FIGURES)
#: additive counts and amounts (a period's value is the sum of its days)
ADDITIVE = (
    "attempts", "succeeded", "failed", *MONEY_COLUMNS, *ledger.DAILY_COLUMNS, "intents_created", "intents_succeeded",
    "requests_opened", "requests_decided", "requests_processed",
)
METRIC_COLUMNS = (
    "day", "currency", "attempts", "succeeded", "failed", "success_rate", "gross_volume",
    "refunded_amount", "disputed_amount", "stripe_fees", "platform_fees", "net", "net_after_platform_fee",
    "intents_created",
    "intents_succeeded", "conversion_rate", "requests_opened", "requests_decided", "requests_processed",
    "processing_hours_median", "processing_hours_p90", "pending_requests", "timezone", *ledger.DAILY_COLUMNS,
)


@cache
def _sql(name: str) -> str:
    return (SQL_DIR / f"{name}.sql").read_text()


# --- plumbing ------------------------------------------------------------------------
def _bucket_seconds(start: date, end: date, tz: str) -> int:
    """The widest UTC bucket that never straddles two local days of ``tz`` in the range.

    A day for UTC, an hour when every offset of the zone around the range is a whole hour,
    else a quarter-hour (India, Nepal, Lord Howe's half-hour DST, ...).
    """
    zone = ZoneInfo(tz)
    offsets = set()
    d = start - timedelta(days=1)
    # DST periods last months, so midnight and noon of every day see every offset in use
    while d <= end + timedelta(days=1):
        for hour in (0, 12):
            offset = datetime.combine(d, time(hour), tzinfo=zone).utcoffset()
            offsets.add(offset.total_seconds() if offset is not None else 0.0)
        d += timedelta(days=1)
    if offsets == {0}:
        return 86400
    return 3600 if all(o % 3600 == 0 for o in offsets) else 900


def daily_metrics_query(start: date, end: date, tz: str) -> tuple[str, dict]:
    """The one definition of the daily metrics: DuckDB SQL text and its named parameters.

    Every engine runs this text: DuckDB as is, Spark after transpiling it. The rules it uses
    are rendered into it from their owners (:mod:`payops.money`, :mod:`payops.refunds`).
    """
    lo, hi = bounds(start, end, tz)
    bucket = _bucket_seconds(start, end, tz)
    params = {"lo": lo, "hi": hi, "tz": tz, "start_day": start, "end_day": end, "bucket_s": bucket,
              "bucket_us": bucket * 1_000_000}
    return _daily_sql(get_settings().platform_fee_bps, _day_ends_sql(start, end, tz)), params


def _day_ends_sql(start: date, end: date, tz: str) -> str:
    """The local days ``start``..``end`` with the UTC instant each ends at, as a literal table."""
    rows = []
    d = start
    while d <= end:
        day_end = bounds(d, d, tz)[1].astimezone(UTC)
        rows.append(f"(DATE '{d.isoformat()}', CAST('{day_end.isoformat()}' AS TIMESTAMPTZ))")
        d += timedelta(days=1)
    return f"SELECT * FROM (VALUES {', '.join(rows)}) AS t(day, day_end)"


def _daily_sql(bps: int, day_ends: str) -> str:
    """``daily_metrics.sql`` with the rules rendered in from their owners."""
    net = money.net_sql("coalesce(ch.gross_volume, 0)", "coalesce(re.refunded_amount, 0)",
                        "coalesce(dp.disputed_amount, 0)", "coalesce(bt.stripe_fees, 0)")
    return _sql("daily_metrics").format(
        platform_fee=money.platform_fee_sql("captured", "application_fee_amount", bps),
        gross_charge=money.gross_charge_sql("status"),
        refunded=money.refunded_sql("status"),
        chargeback=money.chargeback_sql("status"),
        reinstated=money.reinstated_sql("reporting_category"),
        net=net,
        net_after_platform_fee=money.net_after_platform_fee_sql(net, "coalesce(ch.platform_fees, 0)"),
        decided_at=refund_rules.decided_at_sql("r"),
        day_ends=day_ends,
        **ledger.daily_sql(),
        pending_at_day_end=refund_rules.pending_at_sql("d.day_end", "r"),
        processed_hours=_processed_hours_sql(),
    )


def _frame(con, start: date, end: date, tz: str) -> pd.DataFrame:
    sql, params = daily_metrics_query(start, end, tz)
    df = con.execute(sql, params).df()
    if len(df):
        df["day"] = pd.to_datetime(df["day"]).dt.date
    return df


def _first_unarchived_day(con, tz: str) -> date | None:
    """The first local day after the newest cleanup cutoff (None if no archive is in force)."""
    row = con.execute(
        """SELECT action, json_extract_string(after, '$.cutoff') FROM audit_log
           WHERE action IN ('maintenance.cleanup', 'maintenance.restore')
           ORDER BY id DESC LIMIT 1"""
    ).fetchone()
    if not row or row[0] != "maintenance.cleanup" or not row[1]:
        return None
    cutoff = datetime.fromisoformat(row[1])
    return cutoff.astimezone(ZoneInfo(tz)).date() + timedelta(days=1)


def _data_range(con, tz: str) -> tuple[date, date] | None:
    lo, hi = con.execute(
        """
        SELECT min(lo), max(hi) FROM (
            SELECT min(created) lo, max(created) hi FROM charges UNION ALL
            SELECT min(created), max(created) FROM payment_intents UNION ALL
            SELECT min(created), max(created) FROM refunds UNION ALL
            SELECT min(created), max(created) FROM disputes UNION ALL
            SELECT min(created), max(created) FROM balance_transactions UNION ALL
            SELECT min(requested_at), greatest(max(requested_at), max(decided_at), max(processed_at))
            FROM refund_requests)
        """
    ).fetchone()
    if lo is None:
        return None
    zone = ZoneInfo(tz)
    return lo.astimezone(zone).date(), hi.astimezone(zone).date()


# --- daily metrics -------------------------------------------------------------------
def compute(start: date, end: date, *, db=None, tz: str | None = None) -> pd.DataFrame:
    """The ``daily_metrics`` rows for local days ``start``..``end``, computed now, not stored.

    Args:
        start: first local day.
        end: last local day (inclusive).
        db: database path (default ``PAYOPS_DB``).
        tz: reporting timezone (default ``PAYOPS_TIMEZONE``).
    """
    start, end = check_range(start, end)
    tz = timezone(tz)
    with reader(db) as con:
        return _frame(con, start, end, tz)


def compute_daily(start: date | None = None, end: date | None = None, *, db=None, tz: str | None = None) -> int:
    """(Re)materialise ``daily_metrics`` for local days ``start``..``end``; idempotent.

    The rows of those days are replaced in one transaction, so running it twice gives the
    same table. Without dates, every day that has data is recomputed.

    Args:
        start: first local day (default: the first day with data).
        end: last local day, inclusive (default: the last day with data).
        db: database path (default ``PAYOPS_DB``).
        tz: reporting timezone (default ``PAYOPS_TIMEZONE``).

    Returns:
        The number of rows written.
    """
    tz = timezone(tz)
    with connect(db, create=False) as con:
        span = days_to_compute(con, parse_date(start), parse_date(end), tz)
        if span is None:
            return 0
        df = _frame(con, span[0], span[1], tz)
        df["computed_at"] = datetime.now(UTC)
        replace_days(con, span[0], span[1], df)
        return len(df)


def days_to_compute(con, start: date | None, end: date | None, tz: str) -> tuple[date, date] | None:
    """The local days :func:`compute_daily` recomputes, by every engine's rules.

    Without dates, every day that has data (None when there is none). Days whose objects
    ``payops cleanup`` archived keep their stored figures: recomputing them from what is left
    would wipe the old reports' numbers, so the range starts after the newest cutoff (None when
    nothing is left of it). An inverted range is an :class:`~payops.errors.InvalidInput`.
    """
    if start is None or end is None:
        found = _data_range(con, tz)
        if found is None:
            return None
        start, end = start or found[0], end or found[1]
    start, end = check_range(start, end)
    first_complete = _first_unarchived_day(con, tz)
    if first_complete is not None and start < first_complete:
        start = first_complete
    return (start, end) if start <= end else None


def replace_days(con, start: date, end: date, df: pd.DataFrame) -> None:
    """Replace the ``daily_metrics`` rows of days ``start``..``end`` with ``df``, in one transaction."""
    with transaction(con):
        con.execute("DELETE FROM daily_metrics WHERE day BETWEEN ? AND ?", [start, end])
        if len(df):
            insert_frame(con, "daily_metrics", df)


def stored_range(*, db=None) -> tuple[date, date] | None:
    """The first and last day ``daily_metrics`` holds (None when it is empty)."""
    with reader(db) as con:
        first, last = con.execute("SELECT min(day), max(day) FROM daily_metrics").fetchall()[0]
    return (first, last) if first is not None and last is not None else None


def daily(start: date, end: date, *, db=None) -> pd.DataFrame:
    """The stored ``daily_metrics`` rows for days ``start``..``end``, by day and currency."""
    start, end = check_range(start, end)
    with reader(db) as con:
        df = con.execute(
            "SELECT * FROM daily_metrics WHERE day BETWEEN ? AND ? ORDER BY day, currency", [start, end]
        ).df()
    if len(df):
        df["day"] = pd.to_datetime(df["day"]).dt.date
    return df


def _processed_hours_sql() -> str:
    """Requests processed in ``[$lo, $hi)``: currency, processed_at and hours from request to
    processing (the processing-time metrics and KPI; one definition for the daily rows and
    the period summaries)."""
    return ("SELECT r.currency, r.processed_at, (epoch(r.processed_at) - epoch(r.requested_at)) / 3600.0 AS hours "
            "FROM refund_requests r WHERE r.status = 'PROCESSED' AND r.processed_at >= $lo AND r.processed_at < $hi")


def _processing(con, lo: datetime, hi: datetime) -> pd.DataFrame:
    return con.execute(f"SELECT currency, hours FROM ({_processed_hours_sql()})", {"lo": lo, "hi": hi}).df()


def _pending(con, as_of: datetime) -> pd.DataFrame:
    # pending at as_of: payops.refunds' rule, the one the daily rows use at each day's end
    return con.execute(
        f"""SELECT r.currency, count(*) AS pending_requests FROM refund_requests r
            WHERE {refund_rules.pending_at_sql("$t", "r")} GROUP BY r.currency""",
        {"t": as_of},
    ).df()


def _summarize(days: pd.DataFrame, proc: pd.DataFrame, pend: pd.DataFrame) -> pd.DataFrame:
    cols = ["currency", *ADDITIVE]
    if len(days):
        out = days[cols].groupby("currency", as_index=False).sum()
    else:
        out = pd.DataFrame({c: pd.Series(dtype="int64") for c in cols}).astype({"currency": "object"})
    currencies = sorted(set(out["currency"]) | set(proc["currency"]) | set(pend["currency"]))
    out = out.set_index("currency").reindex(currencies, fill_value=0)
    decided = out["succeeded"] + out["failed"]
    out["success_rate"] = (out["succeeded"] / decided.where(decided > 0)).astype("float64")
    out["failed_rate"] = (out["failed"] / out["attempts"].where(out["attempts"] > 0)).astype("float64")
    created = out["intents_created"]
    out["conversion_rate"] = (out["intents_succeeded"] / created.where(created > 0)).astype("float64")
    grouped = proc.groupby("currency")["hours"]
    out["processing_hours_median"] = grouped.median().reindex(currencies).astype("float64")
    out["processing_hours_p90"] = grouped.quantile(0.9).reindex(currencies).astype("float64")
    pending = pend.set_index("currency")["pending_requests"].reindex(currencies)
    out["pending_requests"] = pending.fillna(0).astype("int64")
    return out.reset_index().rename(columns={"index": "currency"})


def summaries(periods: list[tuple[date, date]], *, db=None, tz: str | None = None,
              extra: tuple[date, date] | None = None) -> tuple[list[pd.DataFrame], pd.DataFrame]:
    """:func:`summary` of several periods with one daily-metrics query and one connection.

    Args:
        periods: ``(start, end)`` pairs of local days.
        db: database path.
        tz: reporting timezone.
        extra: a further range whose daily rows are wanted too (e.g. a chart's trend).

    Returns:
        The summaries in the order of ``periods``, and the daily rows of all the days asked for.
    """
    tz = timezone(tz)
    periods = [check_range(s, e) for s, e in periods]
    first = min([s for s, _ in periods] + ([extra[0]] if extra else []))
    last = max([e for _, e in periods] + ([extra[1]] if extra else []))
    now = datetime.now(UTC)
    out = []
    with reader(db) as con:
        days = _frame(con, first, last, tz)
        for start, end in periods:
            lo, hi = bounds(start, end, tz)
            part = days[(days["day"] >= start) & (days["day"] <= end)] if len(days) else days
            out.append(_summarize(part, _processing(con, lo, hi), _pending(con, min(hi, now))))
    return out, days


def summary(start: date, end: date, *, db=None, tz: str | None = None, as_of: datetime | None = None) -> pd.DataFrame:
    """One row per currency for local days ``start``..``end``.

    Counts and amounts are the sums of the days; rates are recomputed from those sums
    (never averaged); processing-time median and 90th percentile are over the requests
    processed in the period; ``pending_requests`` is the count at the end of the period
    (or at ``as_of``). Also ``failed_rate`` = failed / attempts.
    """
    start, end = check_range(start, end)
    tz = timezone(tz)
    lo, hi = bounds(start, end, tz)
    as_of = as_of or min(hi, datetime.now(UTC))
    with reader(db) as con:
        days = _frame(con, start, end, tz)
        proc = _processing(con, lo, hi)
        pend = _pending(con, as_of)
    return _summarize(days, proc, pend)


# --- KPIs and alerts -----------------------------------------------------------------
def _pct(x: float, digits: int = 1) -> str:
    return f"{x * 100:.{digits}f}%"


def _pcts(value: float, threshold: float) -> tuple[str, str]:
    """``value`` and ``threshold`` as percentages with as many decimals (1 to 4) as it takes to
    tell them apart: never "95.0% is below the 95.0% minimum" for 94.96%."""
    digits = 1
    while digits < 4 and value != threshold and _pct(value, digits) == _pct(threshold, digits):
        digits += 1
    return _pct(value, digits), _pct(threshold, digits)


def kpis(start: date, end: date, *, db=None, tz: str | None = None, as_of: datetime | None = None) -> list[dict]:
    """The KPIs of local days ``start``..``end`` against the ``[kpis]`` thresholds.

    Per currency: ``success_rate`` (>= ``min_success_rate``), ``failed_rate`` (failed /
    attempts <= ``max_failed_rate``), ``processing_hours_p90`` (90th percentile of requested ->
    processed hours of the requests processed in the period < ``max_processing_hours``);
    overall: ``pending_requests`` at the end of the period or at ``as_of`` (<=
    ``max_pending_requests``). A KPI without data (no payments, nothing processed) is ok.

    Returns:
        dicts with ``name``, ``label``, ``value``, ``threshold``, ``ok``, ``message`` and
        ``currency`` (None for the overall pending count).
    """
    return kpis_of(summary(start, end, db=db, tz=tz, as_of=as_of))


def _kpi(name: str, label: str, value, threshold, ok: bool, message: str, currency: str | None) -> dict:
    return {"name": name, "label": label, "value": value, "threshold": threshold, "ok": bool(ok),
            "message": message, "currency": currency}


def _currency_kpis(row, limits) -> list[dict]:
    """The per-currency KPIs of one summary row (a KPI without data is ok)."""
    c, cur = row.currency, row.currency.upper()
    out = []
    v, t = row.success_rate, float(limits.min_success_rate)
    if pd.isna(v):
        out.append(_kpi("success_rate", "Success rate", None, t, True, f"{cur} success rate: no payments", c))
    else:
        ok = v >= t
        shown, limit = _pcts(v, t)
        said = f"(minimum {limit})" if ok else f"is below the {limit} minimum"
        out.append(_kpi("success_rate", "Success rate", float(v), t, ok, f"{cur} success rate {shown} {said}", c))
    v, t = row.failed_rate, float(limits.max_failed_rate)
    if pd.isna(v):
        out.append(_kpi("failed_rate", "Failed payments", None, t, True, f"{cur} failed payments: no payments", c))
    else:
        ok = v <= t
        shown, limit = _pcts(v, t)
        said = f"(maximum {limit})" if ok else f"are above the {limit} maximum"
        out.append(_kpi("failed_rate", "Failed payments", float(v), t, ok,
                        f"{cur} failed payments {shown} {said}", c))
    v, t = row.processing_hours_p90, float(limits.max_processing_hours)
    label = "Refund processing (p90)"
    if pd.isna(v):
        out.append(_kpi("processing_hours_p90", label, None, t, True, f"{cur} refund processing: nothing processed", c))
    else:
        ok = v < t
        said = f"(under {t:g} h)" if ok else f"which is not under the {t:g} h limit"
        out.append(_kpi("processing_hours_p90", label, float(v), t, ok,
                        f"{cur} refunds took {v:.1f} h to process (90th percentile) {said}", c))
    return out


def kpis_of(s: pd.DataFrame) -> list[dict]:
    """The KPIs of a :func:`summary` frame (see :func:`kpis`), without querying again."""
    limits = get_settings().kpis
    out = [k for row in s.itertuples(index=False) for k in _currency_kpis(row, limits)]
    pending = int(s["pending_requests"].sum()) if len(s) else 0
    t = int(limits.max_pending_requests)
    ok = pending <= t
    said = f"(maximum {t})" if ok else f"which is above the maximum of {t}"
    out.append(_kpi("pending_requests", "Pending refund requests", pending, t, ok,
                    f"{pending} refund requests pending {said}", None))
    return out


def alerts(*, db=None, today: date | None = None, now: datetime | None = None) -> list[dict]:
    """The breached KPIs that ``payops status`` shows: the rates and processing time of the
    day before ``today`` (in the reporting timezone) and the refund requests pending at ``now``.

    Args:
        db: database path.
        today: the local day counted as today (default: today at ``now``).
        now: the moment "now" (default: the clock).
    """
    tz = timezone(None)
    now = now or datetime.now(UTC)
    if today is None:
        today = now.astimezone(ZoneInfo(tz)).date()
    y = today - timedelta(days=1)
    path = database_path(db)
    if not path.exists():
        return []
    return [k for k in kpis(y, y, db=path, tz=tz, as_of=now) if not k["ok"]]


def processing_times(start: date, end: date, *, db=None, tz: str | None = None) -> pd.DataFrame:
    """Hours from request to processing, one row per request processed in the period."""
    start, end = check_range(start, end)
    lo, hi = bounds(start, end, timezone(tz))
    with reader(db) as con:
        return _processing(con, lo, hi)

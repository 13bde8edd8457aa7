"""Reporting periods and local days: what every read-side query (metrics, payments, exports,
reports) means by "a day" and "a period", and the short read connection they share.

A day is a calendar day in the reporting timezone (``PAYOPS_TIMEZONE``); its UTC bounds come
from :func:`bounds`. A period is a day, an ISO week or a calendar month (:func:`period`).
"""

from __future__ import annotations

from calendar import monthrange
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb

from payops.config import get_settings
from payops.db import connect, database_path
from payops.errors import InvalidInput

__all__ = ["PERIODS", "Period", "period", "parse_date", "check_range", "timezone", "bounds", "reader"]

PERIODS = ("daily", "weekly", "monthly")


@dataclass(frozen=True)
class Period:
    """A reporting period: local days ``start``..``end`` inclusive, and the one before it."""

    kind: str
    start: date
    end: date
    label: str
    previous_start: date
    previous_end: date

    @property
    def days(self) -> int:
        """How many local days the period has."""
        return (self.end - self.start).days + 1

    @property
    def trend_start(self) -> date:
        """Where charts over time begin: two weeks for a day, else the previous period."""
        return self.end - timedelta(days=13) if self.kind == "daily" else self.previous_start

    def as_dict(self) -> dict:
        """The period as JSON-ready strings (``metrics.json``'s ``report`` section)."""
        return {
            "period": self.kind, "label": self.label, "start": self.start.isoformat(),
            "end": self.end.isoformat(), "previous_start": self.previous_start.isoformat(),
            "previous_end": self.previous_end.isoformat(),
        }


def parse_date(value: str | date | None) -> date | None:
    """``YYYY-MM-DD`` (or a date, or None) to a date; bad input raises InvalidInput."""
    if value is None or isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value).strip())
    except ValueError:
        raise InvalidInput(f"not a date: {value!r} (expected YYYY-MM-DD)") from None


def _month(year: int, month: int) -> tuple[date, date]:
    return date(year, month, 1), date(year, month, monthrange(year, month)[1])


def _default_day(kind: str, today: date | None) -> date:
    """A day of the last complete period of ``kind`` before ``today``."""
    assert today is not None  # period() sets it whenever no day is given
    if kind == "daily":
        return today - timedelta(days=1)
    if kind == "weekly":
        return today - timedelta(days=7)
    return today.replace(day=1) - timedelta(days=1)


def period(kind: str, day: str | date | None = None, *, today: date | None = None, tz: str | None = None) -> Period:
    """The reporting period of ``kind`` containing ``day``.

    Args:
        kind: ``daily`` (one calendar day), ``weekly`` (the ISO week, Monday to Sunday) or
            ``monthly`` (the calendar month).
        day: a day inside the period. Default: yesterday for ``daily``, the last complete
            week or month otherwise, all in the reporting timezone.
        today: the local "today" the defaults count from (default: now in ``tz``).
        tz: reporting timezone (default ``PAYOPS_TIMEZONE``).

    Every period is compared with the previous period of the same kind: the day before, the
    ISO week before, the calendar month before.
    """
    if kind not in PERIODS:
        raise InvalidInput(f"unknown period {kind!r} (use {', '.join(PERIODS)})")
    given = parse_date(day)
    if given is None and today is None:
        today = datetime.now(ZoneInfo(tz or get_settings().timezone)).date()
    if kind == "daily":
        d = given or _default_day(kind, today)
        prev = d - timedelta(days=1)
        return Period(kind, d, d, d.isoformat(), prev, prev)
    if kind == "weekly":
        d = given or _default_day(kind, today)
        start = d - timedelta(days=d.weekday())
        year, week, _ = start.isocalendar()
        return Period(kind, start, start + timedelta(days=6), f"{year}-W{week:02d}",
                      start - timedelta(days=7), start - timedelta(days=1))
    d = given or _default_day(kind, today)
    start, end = _month(d.year, d.month)
    before = start - timedelta(days=1)
    pstart, pend = _month(before.year, before.month)
    return Period(kind, start, end, f"{d.year}-{d.month:02d}", pstart, pend)


def timezone(tz: str | None = None) -> str:
    """The reporting timezone's name: ``tz``, else ``PAYOPS_TIMEZONE``; an unknown name raises InvalidInput."""
    name = tz or get_settings().timezone
    try:
        ZoneInfo(name)
    except Exception:
        raise InvalidInput(f"unknown timezone {name!r}; use a name like Europe/Berlin") from None
    return name


def bounds(start: date, end: date, tz: str) -> tuple[datetime, datetime]:
    """UTC instants of local midnight at ``start`` and after ``end``."""
    zone = ZoneInfo(tz)
    lo = datetime.combine(start, time(0), tzinfo=zone).astimezone(UTC)
    hi = datetime.combine(end + timedelta(days=1), time(0), tzinfo=zone).astimezone(UTC)
    return lo, hi


def check_range(start: str | date | None, end: str | date | None) -> tuple[date, date]:
    """Both ends of a range of local days as dates, ``start <= end``; else InvalidInput."""
    first, last = parse_date(start), parse_date(end)
    if first is None or last is None:
        raise InvalidInput("a date range needs both a start and an end")
    if last < first:
        raise InvalidInput(f"the range ends ({last}) before it starts ({first})")
    return first, last


@contextmanager
def reader(db: str | Path | None = None,
           con: duckdb.DuckDBPyConnection | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-only connection, so readers can share the file; a missing file is an error naming it.

    ``con``: a connection the caller already has open, used as it is (and left open).
    """
    if con is not None:
        yield con
        return
    path = database_path(db)
    with connect(path, read_only=True) as con:  # a reader never creates a database
        yield con

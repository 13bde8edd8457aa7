"""What the maintenance modules share: the acting user, the current moment, ages, one value."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb

from payops.config import get_settings
from payops.errors import InvalidInput, PayopsError

__all__ = ["actor", "aware_now", "parse_age", "scalar"]


def actor(user: str | None) -> str:
    """The user named, else the configured ``PAYOPS_USER``: who an audit row names."""
    return user or get_settings().user


def aware_now(now: datetime | None) -> datetime:
    """``now`` (default: the current time), read as UTC when it has no timezone."""
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


def scalar(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None) -> Any:
    """The first column of the one row ``sql`` returns (a count, an aggregate)."""
    row = con.execute(sql, params).fetchone() if params is not None else con.execute(sql).fetchone()
    if row is None:
        raise PayopsError(f"no row from {sql.split(' FROM ')[0]}")  # an aggregate always has one
    return row[0]

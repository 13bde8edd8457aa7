"""Reading a test's DuckDB file directly (read-only, in UTC), as an analyst's tool would."""

from __future__ import annotations

from pathlib import Path

import duckdb


def rows(path: str | Path, sql: str, params=None) -> list[tuple]:
    """The rows of ``sql`` on the database at ``path``, opened read-only with times in UTC."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        con.execute("SET TimeZone = 'UTC'")
        return con.execute(sql, params).fetchall() if params is not None else con.execute(sql).fetchall()
    finally:
        con.close()

"""Short-lived DuckDB connections, lock retry, migrations and ``query()``.

DuckDB lets one process hold a database file at a time, so no payops call keeps a
connection between calls: each opens, works and closes. A call that meets another
process's lock retries with backoff until ``PAYOPS_DB_TIMEOUT`` (default 30 s) and then
raises :class:`~payops.errors.DatabaseBusy` naming the holder.

:func:`query` is the analysts' door and is sandboxed: one statement (a second one is
refused, not ignored), on a read-only connection with DuckDB's external access disabled and
its configuration locked, so a query cannot write, COPY, ATTACH, INSTALL/LOAD extensions or
read any other file (``read_csv('/etc/passwd')``).
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from payops.config import get_settings
from payops.errors import DatabaseBusy, DatabaseError, QueryRefused

__all__ = ["connect", "reuse", "transaction", "insert_frame", "query", "migrate", "MIGRATIONS", "database_path",
           "require", "missing", "sql_literal", "SANDBOX_CONFIG", "QUERY_STATEMENTS"]

def sql_literal(value: str | Path) -> str:
    """``value`` (text or a path) as a quoted SQL string literal, for the few places DuckDB takes
    no parameter (ATTACH, COPY ... TO, read_parquet file lists, json_transform shapes)."""
    return "'" + str(value).replace("'", "''") + "'"


_LOCK_RE = re.compile(r"Could not set lock on file|Conflicting lock is held", re.I)
_HOLDER_RE = re.compile(r"Conflicting lock is held in (?P<exe>\S+)(?: \(PID (?P<pid>\d+)\))?", re.I)


SQL_DIR = Path(__file__).parent / "sql"


def _load_migrations() -> list[tuple[int, str, str]]:
    out = []
    folder = SQL_DIR / "migrations"
    for entry in sorted(folder.iterdir(), key=lambda p: p.name):
        if entry.name.endswith(".sql"):
            number = int(entry.name.split("_", 1)[0])
            out.append((number, entry.name, entry.read_text()))
    return out


MIGRATIONS = _load_migrations()


def database_path(path: str | Path | None = None) -> Path:
    """The database file a call uses, absolute: ``path`` (relative: from the current directory) or
    the ``PAYOPS_DB`` setting (relative: from the folder of payops.toml, see :func:`payops.config.db_anchor`)."""
    return Path(path).expanduser().absolute() if path is not None else get_settings().db_path


def missing(path: Path) -> DatabaseError:
    """The error of a command that reads a database that is not there (it never creates one)."""
    return DatabaseError(f"no database at {path} (run `payops init` to create it, `payops sync` to fill it, "
                         "or `make demo` for a demo one; a relative PAYOPS_DB is taken from the folder of "
                         "payops.toml, else the current directory)")


def require(path: str | Path | None = None) -> Path:
    """The database file of ``path`` (see :func:`database_path`), which must exist.

    Raises:
        DatabaseError: there is no file there; nothing is created.
    """
    db = database_path(path)
    if not db.is_file():
        raise missing(db)
    return db


def _holder(message: str) -> str:
    m = _HOLDER_RE.search(message)
    if not m:
        return "another process"
    exe = Path(m.group("exe")).name
    return f"PID {m.group('pid')} ({exe})" if m.group("pid") else exe


def _open(path: Path, timeout: float, read_only: bool,
          config: dict[str, Any] | None = None) -> duckdb.DuckDBPyConnection:
    deadline = time.monotonic() + timeout
    delay = 0.05
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only, config=dict(config or {}))
        except duckdb.IOException as exc:
            message = str(exc)
            if not _LOCK_RE.search(message):
                raise DatabaseError(f"cannot open database {path}: {message.splitlines()[0]}") from None
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise DatabaseBusy(
                    f"database {path} is busy: held by {_holder(message)}; "
                    f"gave up after {timeout:g} s (PAYOPS_DB_TIMEOUT)"
                ) from None
            time.sleep(min(remaining, delay * (0.5 + random.random())))
            delay = min(delay * 2, 1.0)
        except duckdb.Error as exc:
            raise DatabaseError(f"cannot open database {path}: {str(exc).splitlines()[0]}") from None


def migrate(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Apply the numbered migrations not yet applied; returns their names. Idempotent."""
    con.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version INTEGER PRIMARY KEY, name VARCHAR NOT NULL, applied_at TIMESTAMPTZ NOT NULL)"
    )
    done = {row[0] for row in con.execute("SELECT version FROM schema_migrations").fetchall()}
    applied = []
    for number, name, sql in MIGRATIONS:
        if number in done:
            continue
        con.execute("BEGIN TRANSACTION")
        try:
            con.execute(sql)
            con.execute(
                "INSERT INTO schema_migrations VALUES (?, ?, now())", [number, name]
            )
            con.execute("COMMIT")
        except Exception:
            con.execute("ROLLBACK")
            raise
        applied.append(name)
    return applied


@contextmanager
def connect(
    path: str | Path | None = None,
    *,
    timeout: float | None = None,
    read_only: bool = False,
    migrate_schema: bool = True,
    create: bool = True,
) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the database for the duration of a ``with`` block, then close it.

    Creates the file (and its folder) and applies migrations on first use, unless ``create``
    is false (what every command that only reads passes): then a missing file is a
    :class:`~payops.errors.DatabaseError` naming its absolute path. Waits for another process's
    lock up to ``timeout`` seconds (default ``PAYOPS_DB_TIMEOUT``).
    """
    settings = get_settings()
    db = database_path(path)
    if timeout is None:
        timeout = settings.db_timeout
    if read_only or not create:
        if not db.is_file():
            raise missing(db)
    else:
        db.parent.mkdir(parents=True, exist_ok=True)
    con = _open(db, timeout, read_only)
    try:
        con.execute("SET TimeZone = 'UTC'")
        if migrate_schema and not read_only:
            migrate(con)  # one cheap SELECT once the schema is current
        yield con
    finally:
        con.close()


@contextmanager
def reuse(
    con: duckdb.DuckDBPyConnection | None,
    path: str | Path | None = None,
    *,
    read_only: bool = False,
    create: bool = True,
) -> Iterator[duckdb.DuckDBPyConnection]:
    """``con`` when the caller already has one open, else a short connection of this call's own.

    How library reads compose: a function that answers one user-visible step with several
    reads (a screen of the review app) opens one connection and hands it to each of them,
    instead of each opening its own. The caller's connection is left open (the caller's
    ``with`` closes it); an own connection is closed at the end of the block, as always.
    ``read_only`` and ``create`` are :func:`connect`'s, for an own connection.
    """
    if con is not None:
        yield con
        return
    with connect(path, read_only=read_only, create=create) as own:
        yield own


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """``BEGIN`` ... ``COMMIT`` on ``con``, rolled back if the block raises."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield con
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


def insert_frame(con: duckdb.DuckDBPyConnection, table: str, frame: Any) -> None:
    """``INSERT INTO table BY NAME`` every row of a DataFrame or Arrow table, matched by column name.

    The frame is registered on ``con`` for this one statement only. ``table`` is one of
    payops's own table names, never user input.
    """
    view = f"_payops_insert_{table}"
    con.register(view, frame)
    try:
        con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM {view}")
    finally:
        con.unregister(view)


# The analysts' sandbox. `enable_external_access` off: no COPY, ATTACH, INSTALL/LOAD, read_* of
# files, replacement scans of Python variables; `lock_configuration` last, so no SET/RESET can
# turn any of it back on from inside a query (it is set after TimeZone: see _sandboxed).
SANDBOX_CONFIG: dict[str, Any] = {
    "enable_external_access": False,
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
    "allow_community_extensions": False,
}


def _sandboxed(con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    # TimeZone belongs to the built-in ICU extension, which a connect-time config cannot name.
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET lock_configuration = true")
    return con
# What an analyst may run: a SELECT (also DESCRIBE, SHOW, FROM ..., WITH ...) or its EXPLAIN.
QUERY_STATEMENTS = ("SELECT", "EXPLAIN")


def _one_statement(sql: str) -> str:
    """The single statement ``sql`` holds, or :class:`~payops.errors.QueryRefused` saying why not."""
    if not isinstance(sql, str) or not sql.strip():
        raise QueryRefused("query refused: no SQL statement given")
    parser = _sandboxed(duckdb.connect(":memory:", config=dict(SANDBOX_CONFIG)))
    try:
        statements = parser.extract_statements(sql)
    except duckdb.Error as exc:
        raise QueryRefused(f"query refused: {str(exc).splitlines()[0]}") from None
    finally:
        parser.close()
    if len(statements) != 1:
        raise QueryRefused(f"query refused: it holds {len(statements)} statements; payops.query runs exactly one "
                           "(nothing was run)")
    kind = statements[0].type.name
    if kind not in QUERY_STATEMENTS:
        raise QueryRefused(f"query refused: {kind} statements are not allowed; analysts' queries only read "
                           "(SELECT, DESCRIBE, SHOW, EXPLAIN)")
    return sql


def _integers(df: pd.DataFrame, description: list) -> pd.DataFrame:
    """HUGEINT columns (what ``sum`` of a BIGINT gives, e.g. a money total) as integers, not floats."""
    for (_, type_code, *_), col in zip(description, df.columns, strict=False):
        values = df[col]
        # beyond 64 bits (never money) the column stays as DuckDB gave it
        if (str(type_code) in ("HUGEINT", "UHUGEINT") and values.dtype.kind == "f"
                and not (values.abs() >= 2**63).any()):
            df[col] = values.astype("Int64")
    return df


def query(sql: str, params: Any = None, *, db: str | Path | None = None) -> pd.DataFrame:
    """Run one read-only SQL statement and return its rows as a DataFrame.

    The statement runs in a sandbox: a read-only connection with DuckDB's external access
    off and its configuration locked, so it cannot change the database or touch any other
    file (no COPY, ATTACH, INSTALL/LOAD, ``read_csv`` of a path). The connection is closed
    before returning.

    Example: ``payops.query("SELECT currency, sum(amount) FROM charges GROUP BY 1")``.

    Args:
        sql: exactly one SELECT (or DESCRIBE / SHOW / EXPLAIN) statement.
        params: values for its ``?`` placeholders.
        db: database path (default ``PAYOPS_DB``).

    Raises:
        QueryRefused: more than one statement, or one that is not a read.
        DatabaseError: the statement failed (including a sandbox refusal such as reading a file).
    """
    _one_statement(sql)
    path = require(db)  # a query only reads: it never creates an empty database to answer from
    settings = get_settings()
    con = _open(path, settings.db_timeout, True, SANDBOX_CONFIG)
    try:
        _sandboxed(con)
        rel = con.execute(sql, params) if params is not None else con.execute(sql)
        return _integers(rel.df(), rel.description or [])
    except duckdb.Error as exc:
        raise DatabaseError(f"query failed: {str(exc).splitlines()[0]}") from None
    finally:
        con.close()

"""The daily metrics on Apache Spark, computed from the lake with the one definition DuckDB runs.

:func:`payops.metrics.daily_metrics_query` returns the DuckDB SQL text of the daily metrics
and its parameters. :func:`transpile` turns exactly that text into Spark SQL with sqlglot,
the parameters bound as literals; :func:`daily_metrics` runs it on a Spark session over the
lake's tables (registered through the lake's manifest), and :func:`compute_daily` stores the
rows as ``results/daily_metrics`` in the lake and, if asked, in the database's
``daily_metrics`` table. The rows are the DuckDB path's rows: integers exactly, rates within
1e-12 (Spark's percentile interpolates with another formula than DuckDB's ``quantile_cont``).

Why sqlglot and not ibis: the definition is SQL text that DuckDB runs as is and that the
``money`` owner keeps in ``payops/sql/daily_metrics.sql``. sqlglot transpiles that very text,
so there is still one definition, reviewable as SQL; the few DuckDB functions it does not map
to Spark faithfully are rewritten below, in one place. With ibis the metrics would have to
be written again as ibis expressions (a second definition, or a rewrite of the DuckDB path
that every other reader of the SQL would have to follow), for no gain on these queries.

Where Spark runs: ``master`` is ``local[*]`` by default (a Spark inside this process, which
needs Java 17+), a standalone cluster ``spark://host:7077``, YARN or Kubernetes as Spark
spells them, or a Spark Connect server ``sc://host:15002`` (pyspark's ``[connect]`` extra;
no local Java). Executors read the lake's files by path, so on a cluster the lake folder must
be on storage every executor mounts at the same path.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import pyarrow as pa
import sqlglot
from sqlglot import exp

from payops import lake as lake_mod
from payops import metrics
from payops.db import connect
from payops.errors import InvalidInput, TerminalError
from payops.periods import parse_date, timezone

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

__all__ = ["EngineError", "transpile", "session", "register_lake", "run_staged", "daily_metrics", "compute_daily",
           "SparkRun", "DEFAULT_MASTER"]

DEFAULT_MASTER = "local[*]"
RESULT = "daily_metrics"


class EngineError(TerminalError):
    """The Spark engine could not run."""


# =========================================================================== SQL
def _literal(name: str, value: Any) -> exp.Expression:
    """A parameter as a Spark literal (timestamps in UTC: the session runs in UTC)."""
    if value is None:
        return exp.Null()
    if isinstance(value, bool):
        return exp.Boolean(this=value)
    if isinstance(value, int):
        return exp.Literal.number(value)
    if isinstance(value, float):
        return exp.cast(exp.Literal.string(repr(value)), "DOUBLE")
    if isinstance(value, datetime):
        utc = value.astimezone(UTC) if value.tzinfo else value
        return exp.cast(exp.Literal.string(utc.strftime("%Y-%m-%d %H:%M:%S.%f")), "TIMESTAMP")
    if isinstance(value, date):
        return exp.cast(exp.Literal.string(value.isoformat()), "DATE")
    if isinstance(value, str):
        return exp.Literal.string(value)
    raise InvalidInput(f"cannot bind parameter ${name} of type {type(value).__name__} for Spark")


def _micros(arg: exp.Expression) -> exp.Expression:
    return exp.Anonymous(this="UNIX_MICROS", expressions=[arg])


def _to_spark(node: exp.Expression) -> exp.Expression:
    """DuckDB functions sqlglot does not carry over to Spark with the same meaning."""
    if isinstance(node, exp.Anonymous) and node.name.lower() == "epoch_us":
        return _micros(node.expressions[0])
    if isinstance(node, exp.TimeToUnix):
        # epoch(ts): seconds with microseconds; sqlglot's UNIX_TIMESTAMP would drop the fraction
        return exp.Div(this=exp.cast(_micros(node.this), "DOUBLE"), expression=exp.Literal.number(1_000_000))
    if isinstance(node, exp.UnixToTime) and node.args.get("scale") is None and node.args.get("format") is None:
        # to_timestamp(seconds): sqlglot goes through a formatted string; TIMESTAMP_SECONDS is exact
        return exp.Anonymous(this="TIMESTAMP_SECONDS", expressions=[node.this])
    if isinstance(node, exp.PercentileCont) and node.expression is not None:
        # quantile_cont(x, q): Spark's exact percentile() interpolates linearly, the same definition
        return exp.Anonymous(this="PERCENTILE", expressions=[node.this, node.expression])
    return node


def transpile(sql: str, params: Mapping[str, Any]) -> str:
    """DuckDB SQL with ``$name`` parameters -> Spark SQL with the values bound as literals.

    ``ts AT TIME ZONE tz`` becomes ``from_utc_timestamp(ts, tz)``, right for a session whose
    time zone is UTC (:func:`session` sets it).

    Raises:
        InvalidInput: a parameter the SQL uses is missing.
    """
    tree = sqlglot.parse_one(sql, read="duckdb")

    def bind(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Placeholder):
            if node.name not in params:
                raise InvalidInput(f"the SQL uses ${node.name}, which has no value")
            return _literal(node.name, params[node.name])
        return node

    # bind first: the rewrites build new nodes, whose children the same pass would not visit
    return tree.transform(bind).transform(_to_spark).sql(dialect="spark", pretty=True, comments=False)


def _tables(sql: str) -> list[str]:
    """The tables a query reads (not its CTEs)."""
    tree = sqlglot.parse_one(sql, read="spark")
    ctes = {c.alias_or_name for c in tree.find_all(exp.CTE)}
    return sorted({t.name for t in tree.find_all(exp.Table)} - ctes)


# =========================================================================== sessions
def _check_java() -> None:
    home = os.environ.get("JAVA_HOME")
    if shutil.which("java") is None and not (home and Path(home, "bin", "java").exists()):
        raise EngineError("Spark needs Java 17 or newer and none was found (on Debian: "
                          "apt-get install default-jre-headless), or use a Spark Connect server (--master sc://...)")


def session(master: str | None = None, *, app_name: str = "payops", conf: Mapping[str, str] | None = None
            ) -> SparkSession:
    """A Spark session for payops: ``master`` as Spark spells it, or ``sc://...`` for Spark Connect.

    The session's time zone is UTC (the metrics' SQL converts to the reporting zone itself).

    Raises:
        EngineError: pyspark is not installed, or Java is missing for a local/cluster driver.
    """
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise EngineError("the Spark engine needs pyspark: pip install pyspark") from None
    master = master or DEFAULT_MASTER
    builder: Any = SparkSession.builder.appName(app_name)
    if master.startswith("sc://"):
        builder = builder.remote(master)
    else:
        _check_java()
        builder = builder.master(master)
        defaults = {
            "spark.ui.enabled": "false", "spark.ui.showConsoleProgress": "false",
            "spark.driver.memory": "1g", "spark.executor.memory": "1g",
            # a handful of days x currencies: Spark's 200 shuffle partitions would be 200 tiny tasks
            "spark.sql.shuffle.partitions": "8" if master.startswith("local") else "32",
            # payops keeps no managed tables; without this Spark leaves ./spark-warehouse behind
            "spark.sql.warehouse.dir": str(Path(tempfile.gettempdir()) / "payops-spark-warehouse"),
        }
        if master.startswith("local"):
            # everything runs in this process: its driver listens on loopback only (else Spark
            # binds the address the host name resolves to, e.g. the machine's public one)
            defaults |= {"spark.driver.host": "127.0.0.1", "spark.driver.bindAddress": "127.0.0.1"}
        for key, value in {**defaults, **(conf or {})}.items():
            builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.conf.set("spark.sql.session.timeZone", "UTC")
    # partition values stay text, as in DuckDB and pyarrow (no "2026-11" guessed as a date)
    spark.conf.set("spark.sql.sources.partitionColumnTypeInference.enabled", "false")
    if not master.startswith("sc://"):
        spark.sparkContext.setLogLevel("ERROR")
    return spark


def register_lake(spark: SparkSession, lake: str | Path, names: list[str] | None = None) -> list[str]:
    """Register lake tables as Spark temporary views, reading the files the manifest names.

    Returns:
        The view names registered.
    """
    folder = Path(lake).resolve()
    doc = lake_mod.manifest(folder)
    done = []
    for name in sorted(doc["tables"]) if names is None else names:
        if name not in doc["tables"]:
            raise lake_mod.LakeError(f"the lake at {folder} has no table {name!r}")
        paths = [f"file://{p}" for p in lake_mod.files(folder, name, doc=doc)]
        frame = spark.read.option("basePath", f"file://{folder / name}").parquet(*paths)
        frame.createOrReplaceTempView(name)
        done.append(name)
    return done


def _stages(text: str) -> tuple[list[tuple[str, str]], str]:
    """Split a query into CTEs to compute once (name, Spark SQL), in order, and the final statement.

    A CTE is computed once when it is built from other CTEs and two or more parts of the query
    read it: that is where inlining multiplies (each reader would recompute all its inputs).
    Every other CTE (a plain scan and aggregate of one table) stays inline, in a WITH clause
    of the statements that read it.
    """
    tree = sqlglot.parse_one(text, read="spark")
    if not isinstance(tree, exp.Query):
        raise InvalidInput("not a query")
    bodies = {c.alias_or_name: c.this for c in tree.ctes}
    order = list(bodies)
    for cte in list(tree.ctes):
        cte.pop()

    def reads(node: exp.Expr) -> set[str]:
        return {t.name for t in node.find_all(exp.Table)} & set(bodies)

    deps = {name: reads(body) for name, body in bodies.items()}
    readers = {name: sum(name in d for d in deps.values()) + (name in reads(tree)) for name in bodies}
    shared = [n for n in order if readers[n] >= 2 and deps[n]]

    def with_inline(node: exp.Query) -> str:
        needed: set[str] = set()
        todo = list(reads(node) - set(shared))
        while todo:
            name = todo.pop()
            if name not in needed:
                needed.add(name)
                todo += list(deps[name] - set(shared))
        stmt = node.copy()
        for name in (n for n in order if n in needed):
            stmt = stmt.with_(name, as_=bodies[name].copy(), append=True)
        return stmt.sql(dialect="spark")

    return [(name, with_inline(bodies[name])) for name in shared], with_inline(tree)


def run_staged(spark: SparkSession, text: str) -> pd.DataFrame:
    """Run a query with its shared composite CTEs computed once (see :func:`_stages`); the rows as a DataFrame.

    Spark inlines every CTE wherever it is read. The metrics' day lookup is read by each
    per-table aggregate, which the keys union, which the final join reads again with the
    aggregates: inlined, the plan reads the big tables about a hundred times and takes more
    memory to plan than a small driver has. Each shared CTE is therefore computed on its own
    and checkpointed (its result kept by the executors, its plan cut), so the statements
    that read it see a small table. The text is the same; only the order of evaluation is
    spelled out.
    """
    stages, final = _stages(text)
    clash = {name for name, _ in stages} & {t.name for t in spark.catalog.listTables() if t.isTemporary}
    if clash:
        raise EngineError(f"the query's CTE names {sorted(clash)} clash with registered views")
    try:
        for name, body in stages:
            spark.sql(body).localCheckpoint(eager=True).createOrReplaceTempView(name)
        return spark.sql(final).toPandas()
    finally:
        for name, _ in stages:
            spark.catalog.dropTempView(name)


# =========================================================================== metrics
def daily_metrics(spark: SparkSession, lake: str | Path, start: date, end: date, tz: str) -> pd.DataFrame:
    """The daily metrics of local days ``start``..``end`` in ``tz``, computed by Spark from the lake.

    The same columns and rows as :func:`payops.metrics.compute` on the database the lake came from.
    """
    sql, params = metrics.daily_metrics_query(start, end, tz)
    text = transpile(sql, params)
    register_lake(spark, lake, _tables(text))
    df = run_staged(spark, text)
    if len(df):
        df["day"] = pd.to_datetime(df["day"]).dt.date
    return df


@dataclass
class SparkRun:
    """What :func:`compute_daily` did."""

    rows: int
    start: date | None
    end: date | None
    timezone: str
    master: str
    lake_version: int
    result_version: int | None
    loaded: bool
    seconds: float


def _lake_range(lake: Path, start: date | None, end: date | None, tz: str) -> tuple[date, date] | None:
    """The days to compute, by the database path's rules, read from the lake with DuckDB.

    Without dates: every day with data. Days whose objects retention cleanup archived are never
    recomputed (their rows are gone from the database, hence from the lake).
    """
    import duckdb

    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        lake_mod.duckdb_views(con, lake)
        return metrics.days_to_compute(con, start, end, tz)
    finally:
        con.close()


def _load(df: pd.DataFrame, start: date, end: date, db) -> None:
    """Replace the database's daily_metrics rows of ``start``..``end`` with ``df`` (one transaction)."""
    with connect(db, create=False) as con:
        metrics.replace_days(con, start, end, df)


def compute_daily(lake: str | Path, start: date | None = None, end: date | None = None, *,
                  master: str | None = None, tz: str | None = None, load: bool = False, db=None,
                  spark: SparkSession | None = None, now: datetime | None = None) -> SparkRun:
    """Compute the daily metrics with Spark from the lake; store them in the lake (and the database).

    Args:
        lake: the lake folder (``payops lake export --to``).
        start: first local day (default: the first day with data in the lake).
        end: last local day, inclusive (default: the last day with data).
        master: where Spark runs (see the module docstring); ignored when ``spark`` is given.
        tz: reporting timezone (default ``PAYOPS_TIMEZONE``).
        load: also replace those days' rows of the database's ``daily_metrics`` table.
        db: the database for ``load`` (default ``PAYOPS_DB``).
        spark: a session to use (left running); default: one made here and stopped after.
        now: the ``computed_at`` of the rows (default: the clock).

    Returns:
        What was computed and where it went.
    """
    began = time.monotonic()
    tz = timezone(tz)
    folder = Path(lake)
    version = lake_mod.manifest(folder)["version"]
    span = _lake_range(folder, parse_date(start), parse_date(end), tz)
    where = master or DEFAULT_MASTER
    if span is None:
        return SparkRun(0, None, None, tz, where, version, None, False, time.monotonic() - began)
    own = spark is None
    active = spark if spark is not None else session(master)
    try:
        df = daily_metrics(active, folder, span[0], span[1], tz)
    finally:
        if own:
            active.stop()
    stamp = pd.Timestamp(now or datetime.now(UTC))
    df["computed_at"] = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    meta = {"engine": "spark", "timezone": tz, "lake_version": version}
    result_version = lake_mod.write_result(folder, RESULT, pa.Table.from_pandas(df, preserve_index=False),
                                           replace=span, meta=meta)
    if load:
        _load(df, span[0], span[1], db)
    return SparkRun(len(df), span[0], span[1], tz, where, version, result_version, load, time.monotonic() - began)

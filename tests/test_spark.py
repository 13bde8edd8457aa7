"""The daily metrics on Apache Spark (local mode and a standalone cluster) equal DuckDB's.

One Spark session for the module (it takes seconds to start); the cluster test runs the
CLI in a child process, against a master and a worker started from pyspark's own scripts.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlglot
from click.testing import CliRunner

from payops import lake, metrics
from payops import spark as engine
from payops.cli import cli
from payops.demo import build_demo
from payops.errors import InvalidInput

AS_OF = date(2026, 11, 20)
ZONES = ("UTC", "Europe/Berlin", "Asia/Kolkata")  # whole-day, hourly and quarter-hour buckets

needs_java = pytest.mark.skipif(shutil.which("java") is None, reason="Spark needs Java (.ci/run installs it)")


def assert_same_metrics(got: pd.DataFrame, want: pd.DataFrame) -> None:
    """Row for row: integers exactly, rates and hours within 1e-12."""
    assert len(want) > 0
    assert list(got.columns[: len(want.columns)]) == list(want.columns)
    got = got.sort_values(["day", "currency"]).reset_index(drop=True)
    want = want.sort_values(["day", "currency"]).reset_index(drop=True)
    assert got[["day", "currency"]].astype(str).values.tolist() == want[["day", "currency"]].astype(str).values.tolist()
    for col in want.columns:
        a, b = want[col], got[col]
        if pd.api.types.is_float_dtype(a):
            x, y = a.astype(float).to_numpy(), b.astype(float).to_numpy()
            assert np.array_equal(np.isnan(x), np.isnan(y)), col
            assert np.allclose(x, y, rtol=0, atol=1e-12, equal_nan=True), col
        elif pd.api.types.is_integer_dtype(a):
            assert a.astype("int64").tolist() == b.astype("int64").tolist(), col
        else:
            assert a.astype(str).tolist() == b.astype(str).tolist(), col


# =========================================================================== no Spark needed
def test_transpile_binds_parameters_and_maps_duckdb_functions():
    sql, params = metrics.daily_metrics_query(date(2026, 11, 1), date(2026, 11, 20), "Asia/Kolkata")
    text = engine.transpile(sql, params)
    assert "$" not in text
    upper = text.upper()
    for duckdb_only in ("EPOCH_US(", "QUANTILE_CONT(", "TO_TIMESTAMP(", "AT TIME ZONE", "TIMESTAMPTZ"):
        assert duckdb_only not in upper, duckdb_only
    for spark in ("UNIX_MICROS(", "PERCENTILE(", "TIMESTAMP_SECONDS(", "FROM_UTC_TIMESTAMP(", "'ASIA/KOLKATA'"):
        assert spark in upper, spark
    assert "CAST('2026-10-31 18:30:00.000000' AS TIMESTAMP)" in text  # local midnight in UTC
    sqlglot.parse_one(text, read="spark")  # well-formed Spark SQL
    stages, final = engine._stages(text)
    names = [n for n, _ in stages]
    assert "qs" in names and "ch_q" not in names  # the shared day lookup once; per-table scans inline
    assert final.upper().startswith(("WITH", "SELECT"))


def test_transpile_refuses_an_unbound_parameter():
    with pytest.raises(InvalidInput, match=r"\$missing"):
        engine.transpile("SELECT $missing AS x", {})


# =========================================================================== local mode
@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """A demo database and its lake, made once."""
    root = tmp_path_factory.mktemp("spark-demo")
    db = root / "demo.duckdb"
    build_demo(db, seed=11, customers=120, days=45, as_of=AS_OF, progress=False)
    folder = root / "lake"
    lake.export(folder, db=db)
    return db, folder


@pytest.fixture(scope="module")
def spark():
    if shutil.which("java") is None:
        pytest.skip("Spark needs Java (.ci/run installs it)")
    session = engine.session("local[2]")
    yield session
    session.stop()


@pytest.mark.slow
@needs_java
def test_spark_reads_the_lake_as_is(spark, demo):
    db, folder = demo
    import duckdb

    con = duckdb.connect(str(db), read_only=True)
    want = con.execute("SELECT count(*), sum(amount), count(DISTINCT currency) FROM charges").fetchone()
    con.close()
    # Spark's own partition discovery on the folder, no manifest
    frame = spark.read.parquet(str(folder / "charges"))
    got = frame.selectExpr("count(*)", "sum(amount)", "count(DISTINCT currency)").collect()[0]
    assert tuple(got) == want
    assert {"currency", "month"} <= set(frame.columns)


@pytest.mark.slow
@needs_java
def test_spark_local_metrics_equal_duckdb(spark, demo):
    db, folder = demo
    start, end = date(2026, 10, 6), AS_OF
    for tz in ZONES:
        got = engine.daily_metrics(spark, folder, start, end, tz)
        want = metrics.compute(start, end, db=db, tz=tz)
        assert_same_metrics(got, want)


@pytest.mark.slow
@needs_java
def test_compute_daily_writes_the_lake_and_loads_the_database(spark, demo, tmp_path):
    db, folder = demo
    copy = tmp_path / "copy.duckdb"
    shutil.copy(db, copy)
    now = datetime(2026, 11, 20, 13, tzinfo=UTC)
    run = engine.compute_daily(folder, spark=spark, load=True, db=copy, tz="Europe/Berlin", now=now)
    assert run.rows > 0 and run.loaded and run.start < run.end
    entry = lake.manifest(folder)["results"]["daily_metrics"]
    assert entry["engine"] == "spark" and entry["rows"] == run.rows and entry["lake_version"] == run.lake_version
    want = metrics.compute(run.start, run.end, db=db, tz="Europe/Berlin")
    stored = lake.read(folder, "results/daily_metrics").to_pandas()
    stored["day"] = pd.to_datetime(stored["day"]).dt.date
    assert_same_metrics(stored[list(want.columns)], want)
    assert (pd.to_datetime(stored["computed_at"], utc=True) == pd.Timestamp(now)).all()
    loaded = metrics.daily(run.start, run.end, db=copy)
    assert_same_metrics(loaded[list(want.columns)], want)
    assert lake.verify(folder) == []


# =========================================================================== a standalone cluster
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(what: str, check, timeout: float, procs) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for p in procs:
            assert p.poll() is None, f"{what}: a Spark daemon exited with {p.returncode}"
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(1)
    raise AssertionError(f"timed out waiting for {what}")


def _workers_alive(ui_port: int) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{ui_port}/json/", timeout=5) as r:
        return sum(w.get("state") == "ALIVE" for w in json.load(r).get("workers", []))


@pytest.mark.slow
@needs_java
@pytest.mark.timeout(1200)
def test_standalone_cluster_computes_the_same_metrics(demo, tmp_path, monkeypatch):
    import pyspark

    db, folder = demo
    spark_class = Path(pyspark.__file__).parent / "bin" / "spark-class"
    port, ui, worker_ui = _free_port(), _free_port(), _free_port()
    env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1", "SPARK_HOME": str(spark_class.parent.parent),
           "SPARK_WORKER_DIR": str(tmp_path / "work"), "SPARK_LOG_DIR": str(tmp_path / "logs"),
           "PYSPARK_PYTHON": sys.executable}
    monkeypatch.setenv("SPARK_LOCAL_IP", "127.0.0.1")
    logs = [open(tmp_path / "master.log", "w"), open(tmp_path / "worker.log", "w")]  # noqa: SIM115 closed below
    procs: list[subprocess.Popen] = []
    try:
        procs.append(subprocess.Popen(
            [str(spark_class), "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1", "--port", str(port),
             "--webui-port", str(ui)], env=env, start_new_session=True, stdout=logs[0], stderr=subprocess.STDOUT))
        _wait("the master", lambda: socket.create_connection(("127.0.0.1", port), timeout=2).close() is None,
              240, procs)
        procs.append(subprocess.Popen(
            [str(spark_class), "org.apache.spark.deploy.worker.Worker", f"spark://127.0.0.1:{port}",
             "--host", "127.0.0.1", "--webui-port", str(worker_ui), "--cores", "1", "--memory", "1g"],
            env=env, start_new_session=True, stdout=logs[1], stderr=subprocess.STDOUT))
        _wait("the worker to register", lambda: _workers_alive(ui) == 1, 240, procs)

        out = subprocess.run(
            [sys.executable, "-m", "payops", "analytics", "--engine", "spark", "--lake", str(folder),
             "--master", f"spark://127.0.0.1:{port}", "--from", "2026-10-06", "--to", AS_OF.isoformat()],
            env={**env, "PAYOPS_TIMEZONE": "Asia/Kolkata"}, capture_output=True, text=True, timeout=900)
        assert out.returncode == 0, out.stderr[-3000:]
        assert f"Spark, spark://127.0.0.1:{port}" in out.stdout
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(timeout=30)
        for f in logs:
            f.close()
    assert all(p.poll() is not None for p in procs)
    want = metrics.compute(date(2026, 10, 6), AS_OF, db=db, tz="Asia/Kolkata")
    stored = lake.read(folder, "results/daily_metrics").to_pandas()
    stored = stored[stored["timezone"] == "Asia/Kolkata"]
    stored["day"] = pd.to_datetime(stored["day"]).dt.date
    assert_same_metrics(stored[list(want.columns)], want)


def test_analytics_spark_needs_a_lake():
    out = CliRunner().invoke(cli, ["analytics", "--engine", "spark"])
    assert out.exit_code == 2 and "--lake" in out.output

"""The lake on the 1,000,000-payment demo: export time and size, DuckDB vs Spark metrics.

Builds the demo once (``payops demo --customers 140000``, cached under ``data/bench/``),
exports it into a fresh lake (time, size), reruns the export with nothing changed and with
one charge changed (the incremental path), then computes the daily metrics of every day with
DuckDB on the database and with Spark in local mode on the lake, in the same run, checks the
rows are identical (integers exactly, rates within 1e-12) and prints the times and their
ratio. Spark on two shared cores is slower; the point is identical results and the path to
a cluster. The last line is JSON.

    .venv/bin/python bench/lake.py [--customers 140000] [--master 'local[*]'] [--tz Europe/Berlin]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from datetime import date
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from payops import lake, metrics  # noqa: E402
from payops import spark as engine  # noqa: E402
from payops.demo import build_demo  # noqa: E402

AS_OF = date(2026, 11, 20)


def demo_db(folder: Path, customers: int, seed: int) -> tuple[Path, float | None]:
    """The cached demo database (built under a temporary name, renamed when complete)."""
    path = folder / f"demo-{customers}-seed{seed}-{AS_OF}.duckdb"
    if path.exists():
        return path, None
    tmp = path.with_name(path.name + ".building")
    tmp.unlink(missing_ok=True)
    began = time.perf_counter()
    build_demo(tmp, seed=seed, customers=customers, as_of=AS_OF, progress=True)
    os.replace(tmp, path)
    return path, time.perf_counter() - began


def same(got: pd.DataFrame, want: pd.DataFrame) -> int:
    """Rows compared; raises if any integer differs or a float differs by more than 1e-12."""
    got = got.sort_values(["day", "currency"]).reset_index(drop=True)
    want = want.sort_values(["day", "currency"]).reset_index(drop=True)
    assert len(got) == len(want), (len(got), len(want))
    for col in want.columns:
        a, b = want[col], got[col]
        if pd.api.types.is_float_dtype(a):
            assert np.allclose(a.astype(float), b.astype(float), rtol=0, atol=1e-12, equal_nan=True), col
        elif pd.api.types.is_integer_dtype(a):
            assert a.astype("int64").tolist() == b.astype("int64").tolist(), col
        else:
            assert a.astype(str).tolist() == b.astype(str).tolist(), col
    return len(want)


def timed(fn, *args, **kwargs):
    began = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - began


def touch_one_charge(db: Path, delta: int) -> None:
    con = duckdb.connect(str(db))
    try:
        con.execute("UPDATE charges SET version = version + ? WHERE id = (SELECT min(id) FROM charges)", [delta])
    finally:
        con.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=140_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--master", default="local[*]")
    parser.add_argument("--tz", default="Europe/Berlin")
    parser.add_argument("--cache", type=Path, default=REPO / "data" / "bench")
    args = parser.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("PAYOPS_DB_TIMEOUT", "120")

    db, built_s = demo_db(args.cache, args.customers, args.seed)
    con = duckdb.connect(str(db), read_only=True)
    payments, charges = con.execute("SELECT (SELECT count(*) FROM payment_intents), "
                                    "(SELECT count(*) FROM charges)").fetchone()
    con.close()
    db_bytes = db.stat().st_size
    print(f"demo: {db} ({payments:,} payments, {charges:,} charges, {db_bytes / 1e6:,.0f} MB)"
          + (f", built in {built_s:.0f} s" if built_s else ", cached"))

    folder = args.cache / f"lake-{args.customers}"
    shutil.rmtree(folder, ignore_errors=True)
    full, export_s = timed(lake.export, folder, db=db, progress=True)
    lake_bytes = sum(t["bytes"] for t in lake.manifest(folder)["tables"].values())
    print(f"export: {full.rows:,} rows, {full.partitions:,} partitions, {lake_bytes / 1e6:,.0f} MB of Parquet "
          f"in {export_s:.1f} s ({full.rows / export_s:,.0f} rows/s)")
    noop, noop_s = timed(lake.export, folder, db=db)
    assert not noop.changed
    touch_one_charge(db, +1)
    try:
        one, one_s = timed(lake.export, folder, db=db)
    finally:
        touch_one_charge(db, -1)
    assert one.written == 1, one.written
    print(f"rerun: nothing changed {noop_s:.1f} s; one charge changed {one_s:.1f} s "
          f"({one.written} partition rewritten of {one.partitions})")

    con = duckdb.connect(str(db), read_only=True)
    start, end = metrics._data_range(con, args.tz)
    con.close()
    want, duck_s = timed(metrics.compute, start, end, db=db, tz=args.tz)
    print(f"DuckDB: daily metrics {start}..{end} in {args.tz}: {len(want):,} rows in {duck_s:.2f} s")

    session, session_s = timed(engine.session, args.master)
    try:
        got, spark_s = timed(engine.daily_metrics, session, folder, start, end, args.tz)
        again, spark_warm_s = timed(engine.daily_metrics, session, folder, start, end, args.tz)
    finally:
        session.stop()
    rows = same(got, want)
    same(again, want)
    print(f"Spark ({args.master}): session {session_s:.1f} s, metrics {spark_s:.1f} s (warm {spark_warm_s:.1f} s); "
          f"{rows:,} rows identical to DuckDB's")
    ratio = spark_warm_s / duck_s
    print(f"Spark / DuckDB time: {ratio:.1f}x (warm), {spark_s / duck_s:.1f}x (first run)")
    print(json.dumps({
        "bench": "lake", "payments": payments, "charges": charges, "db_mb": round(db_bytes / 1e6, 1),
        "export_s": round(export_s, 2), "export_rows": full.rows, "lake_mb": round(lake_bytes / 1e6, 1),
        "partitions": full.partitions, "rerun_unchanged_s": round(noop_s, 2), "rerun_one_change_s": round(one_s, 2),
        "metrics_rows": rows, "duckdb_s": round(duck_s, 3), "spark_session_s": round(session_s, 2),
        "spark_s": round(spark_s, 2), "spark_warm_s": round(spark_warm_s, 2),
        "ratio_spark_to_duckdb": round(ratio, 2), "ratio_first_run": round(spark_s / duck_s, 2),
        "identical": True, "master": args.master, "timezone": args.tz, "cpus": os.cpu_count(),
    }))


if __name__ == "__main__":
    main()

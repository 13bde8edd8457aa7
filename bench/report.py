"""Benchmark: `payops report daily` and `payops analytics` on a ~1,000,000-payment demo database.

Measures, in one run:

- ``report_s``: wall time of the ``payops report daily`` command (a new process: metrics for the
  day and the day before, papermill with the ``payops`` kernel, HTML, metrics.json, CSVs, index);
- ``floor_s``: wall time of a new process in which papermill executes an empty notebook with the
  same kernel (the floor: Python start, papermill import, kernel start and shutdown);
- ``analytics_s``: :func:`payops.metrics.compute_daily` over the whole range (what
  ``payops analytics`` runs), including opening the database;
- ``groupby_s``: one plain DuckDB ``GROUP BY`` (local day, currency) over the same charges,
  also including opening the database.

Goals: report within floor + 5 s; analytics within 3x the single GROUP BY.
Usage: ``.venv/bin/python bench/report.py [DB]`` (default /tmp/big.duckdb; built with
``payops demo --customers 140000`` when missing). The last line is JSON.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
sys.path.insert(0, str(REPO))

import nbformat  # noqa: E402

from payops import metrics  # noqa: E402
from payops.config import get_settings  # noqa: E402
from payops.db import connect  # noqa: E402

REPEAT = 3


def best(fn, n=REPEAT) -> float:
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def cpu_of_children(fn) -> float:
    """CPU seconds (user + system) used by the processes ``fn`` runs (the machine is shared:
    CPU time shows the work done, whatever the other load)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    fn()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    db = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/big.duckdb")
    if not db.exists():
        print(f"building the demo database {db} (140,000 customers, ~1M payments) ...", flush=True)
        subprocess.run([str(BIN / "payops"), "demo", "--customers", "140000", "--db", str(db), "--replace"], check=True)
    tz = get_settings().timezone
    with connect(db, read_only=True) as con:
        payments = con.execute("SELECT count(*) FROM payment_intents").fetchone()[0]
        charges = con.execute("SELECT count(*) FROM charges").fetchone()[0]
        last = con.execute("SELECT max(created) FROM charges").fetchone()[0]
    print(f"database {db}: {payments:,} payments ({charges:,} charges), timezone {tz}")

    def groupby():
        with connect(db, read_only=True) as con:
            con.execute(
                "SELECT (created AT TIME ZONE ?)::DATE AS day, currency, count(*) AS attempts, "
                "sum(amount_captured) FILTER (WHERE status = 'succeeded') AS gross "
                "FROM charges GROUP BY ALL", [tz]).fetchall()

    groupby()  # warm the file cache for both
    groupby_s = best(groupby)
    rows = metrics.compute_daily(db=db)
    analytics_s = best(lambda: metrics.compute_daily(db=db))
    print(f"analytics (compute_daily, {rows:,} rows): {analytics_s:.3f} s; one plain GROUP BY: {groupby_s:.3f} s; "
          f"ratio {analytics_s / groupby_s:.2f}x (goal <= 3x)")

    with tempfile.TemporaryDirectory(prefix="payops-bench-") as tmp:
        tmp = Path(tmp)
        empty = tmp / "empty.ipynb"
        nb = nbformat.v4.new_notebook()
        nb.metadata["kernelspec"] = {"name": "payops", "display_name": "payops", "language": "python"}
        nbformat.write(nb, empty)
        floor_code = (
            "import papermill; papermill.execute_notebook("
            f"{str(empty)!r}, {str(tmp / 'empty-out.ipynb')!r}, kernel_name='payops', language='python', "
            "progress_bar=False)"
        )
        env = {**os.environ, "PAYOPS_DB": str(db), "PAYOPS_REPORTS_DIR": str(tmp / "reports")}
        day = last.astimezone(get_settings().tz).date().isoformat()

        def floor():
            subprocess.run([sys.executable, "-c", floor_code], check=True, env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def report():
            subprocess.run([str(BIN / "payops"), "report", "daily", "--date", day, "--no-progress"], check=True,
                           env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        floor()  # warm imports
        floor_s = best(floor)
        report_s = best(report)
        floor_cpu = cpu_of_children(floor)
        report_cpu = cpu_of_children(report)
    print(f"payops report daily --date {day}: {report_s:.2f} s; papermill empty notebook (floor): {floor_s:.2f} s; "
          f"report - floor = {report_s - floor_s:.2f} s (goal <= 5 s)")
    print(f"CPU time (user + system, all processes): report {report_cpu:.2f} s, floor {floor_cpu:.2f} s; "
          f"load average now {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    print(json.dumps({
        "bench": "report", "payments": payments, "report_s": round(report_s, 3), "floor_s": round(floor_s, 3),
        "analytics_s": round(analytics_s, 4), "groupby_s": round(groupby_s, 4),
        "analytics_ratio": round(analytics_s / groupby_s, 2),
    }))


if __name__ == "__main__":
    main()

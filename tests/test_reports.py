"""papermill report runs with a real kernel on a small demo database; nbval on report.ipynb."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import date
from pathlib import Path

import nbformat
import pytest
from click.testing import CliRunner

from payops import metrics, reports
from payops.cli import cli

FAKE_KEY = "sk_test_PAYOPSFAKEKEY_51Hc0ffee0000deadbeef"
# A fixed "now" for the demo and fixed report dates, so no test depends on the day it runs.
# 2026-03-01 is a Sunday: the daily report of that day and the weekly report of its ISO week
# end on the same day (the tie the index must break the same way every time); February ends
# the day before.
AS_OF = date(2026, 3, 4)
RUNS = {"daily": "2026-03-01", "weekly": "2026-02-25", "monthly": "2026-02-10"}
SOME_DAY = date(2026, 3, 2)


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory) -> Path:
    from payops.demo import build_demo

    path = tmp_path_factory.mktemp("demo") / "demo.duckdb"
    build_demo(path, seed=7, days=45, customers=120, as_of=AS_OF, replace=True, progress=False)
    return path


@pytest.fixture
def env(demo_db, tmp_path, monkeypatch):
    monkeypatch.setenv("PAYOPS_DB", str(demo_db))
    monkeypatch.setenv("PAYOPS_TIMEZONE", "America/New_York")
    monkeypatch.setenv("STRIPE_API_KEY", FAKE_KEY)
    return tmp_path / "reports"


def _no_secret_anywhere(root: Path):
    for path in root.rglob("*"):
        if path.is_file():
            assert FAKE_KEY.encode() not in path.read_bytes(), f"{path} contains the API key"
            assert FAKE_KEY[-12:].encode() not in path.read_bytes(), f"{path} contains part of the API key"


@pytest.mark.slow
def test_each_period_publishes_html_json_csv_and_index(env, demo_db):
    runner = CliRunner()
    folders = {}
    for kind, day in RUNS.items():
        result = runner.invoke(cli, ["report", kind, "--date", day], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        p = metrics.period(kind, day)
        folder = env / kind / p.label
        folders[kind] = (p, folder)
        assert str(folder / "report.html") in result.output
        names = {x.name for x in folder.iterdir()}
        assert {"report.ipynb", "report.html", "metrics.json", "payments.csv", "refunds.csv",
                "refund_requests.csv", "customers.csv", "daily_metrics.csv"} <= names
        page = (folder / "report.html").read_text()
        # the charts are there (one image per chart cell at least) and no code cell is
        assert len(re.findall(r"<img[^>]+src=\"data:image/png;base64", page)) >= 6
        for code in ("from payops.reports import Report", "report.volume_chart()", "db_path =", "%matplotlib"):
            assert code not in page
        assert "Volume and success rate over time" in page and p.label in page
        # metrics.json equals daily_metrics for the same days
        doc = json.loads((folder / "metrics.json").read_text())
        assert doc["report"]["start"] == p.start.isoformat() and doc["report"]["end"] == p.end.isoformat()
        table = metrics.daily(p.start, p.end, db=demo_db)
        assert len(doc["daily_metrics"]) == len(table) > 0
        for got, want in zip(doc["daily_metrics"], table.to_dict(orient="records"), strict=False):
            assert got["day"] == want["day"].isoformat() and got["currency"] == want["currency"]
            for col in metrics.ADDITIVE + ("pending_requests",):
                assert got[col] == want[col], (kind, got["day"], col)
            for col in ("success_rate", "conversion_rate", "processing_hours_p90"):
                assert (got[col] is None and want[col] != want[col]) or got[col] == pytest.approx(want[col])
        assert {k["name"] for k in doc["kpis"]} >= {"success_rate", "pending_requests"}
        # the executed notebook got the parameters, and no secret
        nb = nbformat.read(folder / "report.ipynb", as_version=4)
        injected = next(c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", []))
        assert f'period = "{kind}"' in injected.source and str(demo_db) in injected.source
    index = (env / "index.html").read_text()
    # newest end first; the weekly report above the daily one that ends the same day
    assert [folders[k][0].end for k in ("weekly", "daily", "monthly")] == [date(2026, 3, 1)] * 2 + [date(2026, 2, 28)]
    positions = [index.index(f"{folders[k][0].kind}/{folders[k][0].label}/report.html")
                 for k in ("weekly", "daily", "monthly")]
    assert positions == sorted(positions), "index.html is not newest first, monthly/weekly/daily on a tie"
    _no_secret_anywhere(env)


def _published(root: Path, kind: str, day: str, generated_at: str) -> metrics.Period:
    p = metrics.period(kind, day)
    folder = root / kind / p.label
    folder.mkdir(parents=True)
    (folder / "report.html").write_text("<p>report</p>")
    (folder / reports.MANIFEST).write_text(json.dumps(
        {"report": {**p.as_dict(), "generated_at": generated_at}, "alerts": 0,
         "files": ["report.html", reports.MANIFEST]}))
    return p


def test_index_order_is_total_and_ignores_when_reports_ran(tmp_path):
    # run in an order (and at times) that disagree with the index order
    published = [
        _published(tmp_path, "daily", "2026-03-01", "2026-03-05T09:00:00+00:00"),
        _published(tmp_path, "monthly", "2026-03-31", "2026-03-01T09:00:00+00:00"),
        _published(tmp_path, "daily", "2026-03-31", "2026-04-01T06:00:00+00:00"),
        _published(tmp_path, "weekly", "2026-02-25", "2026-03-02T09:00:00+00:00"),
        _published(tmp_path, "monthly", "2026-02-01", "2026-03-09T09:00:00+00:00"),
        _published(tmp_path, "weekly", "2026-03-30", "2026-04-06T09:00:00+00:00"),
    ]
    page = reports.write_index(tmp_path).read_text()
    shown = re.findall(r'href="(\w+/[\w-]+)/report.html"', page)
    assert shown == ["weekly/2026-W14", "monthly/2026-03", "daily/2026-03-31",
                     "weekly/2026-W09", "daily/2026-03-01", "monthly/2026-02"]
    assert sorted(published, key=lambda p: reports.index_key(p.as_dict())) == [
        published[i] for i in (5, 1, 2, 3, 0, 4)]
    # a folder without its manifest (never finished) is left out; a damaged manifest too
    (tmp_path / "daily" / "2026-03-01" / reports.MANIFEST).unlink()
    (tmp_path / "weekly" / "2026-W14" / reports.MANIFEST).write_text("{not json")
    shown = re.findall(r'href="(\w+/[\w-]+)/report.html"', reports.write_index(tmp_path).read_text())
    assert shown == ["monthly/2026-03", "daily/2026-03-31", "weekly/2026-W09", "monthly/2026-02"]


@pytest.mark.slow
def test_report_kernel_never_sees_the_api_key(env, demo_db, tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell('period = "daily"\ndate = ""\ndb_path = ""\ntimezone = ""\noutput_dir = ""',
                                  metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell('import os\nprint("key:", os.environ.get("STRIPE_API_KEY"))'),
    ]
    path = tmp_path / "probe.ipynb"
    nbformat.write(nb, path)
    r = reports.run_report("daily", SOME_DAY, db=demo_db, reports_dir=env, notebook=path)
    out = nbformat.read(r.notebook, as_version=4)
    assert "key: None" in out.cells[-1].outputs[0]["text"]
    _no_secret_anywhere(env)


@pytest.mark.slow
def test_a_failing_cell_names_its_error_and_the_partial_notebook(env, demo_db, tmp_path):
    nb = nbformat.read(reports.NOTEBOOK, as_version=4)
    nb.cells.insert(4, nbformat.v4.new_code_cell('raise ValueError("the fee table is on fire")'))
    broken = tmp_path / "broken.ipynb"
    nbformat.write(nb, broken)
    result = CliRunner().invoke(cli, ["report", "daily", "--date", SOME_DAY.isoformat(),
                                      "--notebook", str(broken)])
    assert result.exit_code != 0
    assert "ValueError: the fee table is on fire" in result.output
    partial = re.search(r"partial notebook: (\S+\.ipynb)", result.output).group(1)
    assert Path(partial).is_file() and "Traceback" not in result.output
    executed = nbformat.read(partial, as_version=4)
    assert any(o.get("ename") == "ValueError" for c in executed.cells for o in c.get("outputs", []))


@pytest.mark.slow
def test_nbval_passes_on_the_report_notebook(demo_db, repo, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PAYOPS_", "STRIPE_"))}
    env.update(PAYOPS_DB=str(demo_db), PAYOPS_REPORTS_DIR=str(tmp_path / "reports"))
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "--nbval-lax", "--nbval-kernel-name", "payops", "-p", "no:cacheprovider",
         "-q", "--rootdir", str(repo), str(repo / "notebooks" / "report.ipynb")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout

"""A report a finance lead can trust, built atomically, from hostile data (issue 13 items 4, 5 and reports).

A real demo database with a customer named like an XSS payload and one whose name is broken
mathtext, a real papermill run with the real kernel, and the published report.html parsed:
no script, no NaN, no resource from the internet, Stripe links only to well-formed ids. Then
a run that fails and a run killed with SIGKILL: the previous report and the index stay whole.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from datetime import UTC, date, datetime
from html.parser import HTMLParser
from pathlib import Path

import factories as F
import nbformat
import pytest

from payops import metrics, outputs, reports
from payops.ingest import ingest_objects

AS_OF = date(2026, 3, 4)
DAY = "2026-03-01"
XSS_NAME = "<img src=x onerror=alert(1)>"
MATH_NAME = r"Bo $\frac{1}{$ Chen"
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
CHROMIUM = Path("/usr/bin/chromium")

pytestmark = pytest.mark.slow


def _ts(hour: int) -> int:
    return int(datetime(2026, 3, 1, hour, 0, tzinfo=UTC).timestamp())


@pytest.fixture(scope="module")
def hostile_demo(tmp_path_factory) -> Path:
    from payops.demo import build_demo

    path = tmp_path_factory.mktemp("demo") / "demo.duckdb"
    build_demo(path, seed=7, days=45, customers=120, as_of=AS_OF, replace=True, progress=False)
    ingest_objects([
        F.customer("cus_xss", name=XSS_NAME, email='"><svg onload=alert(2)>@example.com'),
        F.customer("cus_math", name=MATH_NAME, email="bo@example.com"),
        # the biggest spenders of the day, so both are in the top-customers chart and table
        F.charge("ch_xss", customer="cus_xss", payment_intent="pi_xss", amount=9_000_000, amount_captured=9_000_000,
                 application_fee_amount=0, balance_transaction=None, created=_ts(15)),
        F.charge("ch_math", customer="cus_math", payment_intent="pi_math", amount=8_000_000,
                 amount_captured=8_000_000, application_fee_amount=0, balance_transaction=None, created=_ts(16)),
        F.refund("re_xss", charge="ch_xss", payment_intent="pi_xss", amount=7_000_000, created=_ts(17),
                 balance_transaction=None),
    ], db=path)
    return path


@pytest.fixture(scope="module")
def published(hostile_demo, tmp_path_factory):
    root = tmp_path_factory.mktemp("reports")
    mp = pytest.MonkeyPatch()
    mp.setenv("PAYOPS_TIMEZONE", "America/New_York")
    try:
        result = reports.run_report("daily", DAY, db=hostile_demo, reports_dir=root)
    finally:
        mp.undo()
    return result


class Page(HTMLParser):
    """Start tags with attributes, and the text of every table cell."""

    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.cells: list[str] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.cells.append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def _parse(html: str) -> Page:
    page = Page()
    page.feed(html)
    return page


def test_report_html_is_inert_offline_and_shows_hostile_names_as_text(published):
    html = published.html.read_text()
    page = _parse(html)
    for tag, attrs in page.tags:
        assert tag not in {"script", "iframe", "svg", "object", "embed", "link"}, (tag, attrs)
        assert not any(name.startswith("on") for name in attrs), (tag, attrs)
        if tag == "img":
            assert attrs["src"].startswith("data:image/png;base64,"), attrs
        if "href" in attrs and not attrs["href"].startswith("#"):
            href = attrs["href"]
            assert href.startswith("https://dashboard.stripe.com/test/"), href
            assert outputs.STRIPE_ID.fullmatch(href.rsplit("/", 1)[-1]), href
    # nothing is loaded from the internet (require.js and MathJax were)
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html.replace(
        'href="https://dashboard.stripe.com/', "")), "a resource from the internet"
    assert "Content-Security-Policy" in html
    # the hostile names are there, as text
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert '&gt;&lt;svg onload=alert(2)&gt;@example.com' in html  # (nbconvert writes &quot; back as ")
    # links to payments and customers
    assert 'href="https://dashboard.stripe.com/test/customers/cus_xss"' in html
    assert 'href="https://dashboard.stripe.com/test/refunds/re_xss"' in html
    assert 'href="https://dashboard.stripe.com/test/payments/ch_xss"' in html


def test_report_tables_have_no_nan_and_are_sorted_within_each_currency(published):
    page = _parse(published.html.read_text())
    assert page.cells, "no table in the report"
    for cell in page.cells:
        assert cell not in {"nan", "NaN", "<NA>", "None", "NaT"}, cell
        assert "nan%" not in cell.lower() and "<NA>" not in cell
    nb = nbformat.read(published.notebook, as_version=4)
    text = "\n".join(o.get("data", {}).get("text/html", "") for c in nb.cells for o in c.get("outputs", []))
    assert "NaN" not in text and "&lt;NA&gt;" not in text and ">nan<" not in text
    # the success rate always carries its count
    assert re.search(r"\d+\.\d% of [\d,]+ decided", text)


def test_report_tables_sorted_within_currency(published, hostile_demo, monkeypatch):
    monkeypatch.setenv("PAYOPS_TIMEZONE", "America/New_York")
    r = reports.Report("daily", DAY, db=hostile_demo)
    for styler in (r.top_customers(), r.biggest_refunds()):
        df = styler.data
        assert list(df["currency"]) == sorted(df["currency"])
        key = "spend" if "spend" in df else "amount"
        for _, part in df.groupby("currency"):
            amounts = [int(re.sub(r"\D", "", v)) for v in part[key]]
            assert amounts == sorted(amounts, reverse=True), (key, amounts)
    assert r.top_customers().data.iloc[0]["name"] == XSS_NAME


def _index_rows(root: Path) -> list[str]:
    return re.findall(r'href="([^"]+/report.html)"', (root / "index.html").read_text())


def _broken(tmp_path: Path, cell: str) -> Path:
    nb = nbformat.read(reports.NOTEBOOK, as_version=4)
    nb.cells.insert(4, nbformat.v4.new_code_cell(cell))
    path = tmp_path / "broken.ipynb"
    nbformat.write(nb, path)
    return path


def test_a_failed_run_leaves_the_previous_report_and_the_index_whole(published, hostile_demo, tmp_path,
                                                                      monkeypatch):
    monkeypatch.setenv("PAYOPS_TIMEZONE", "America/New_York")
    root = published.folder.parents[1]
    before = {f.name: f.read_bytes() for f in published.folder.iterdir()}
    index_before = (root / "index.html").read_bytes()
    with pytest.raises(reports.ReportError) as err:
        reports.run_report("daily", DAY, db=hostile_demo, reports_dir=root,
                           notebook=_broken(tmp_path, 'raise RuntimeError("half-way")'))
    assert "RuntimeError: half-way" in str(err.value)
    partial = Path(re.search(r"partial notebook: (\S+\.ipynb)", str(err.value)).group(1))
    assert partial.is_file() and partial.parent.name.startswith(".")
    assert {f.name: f.read_bytes() for f in published.folder.iterdir()} == before
    assert (root / "index.html").read_bytes() == index_before
    reports.write_index(root)
    assert _index_rows(root) == [f"daily/{published.period.label}/report.html"]


def test_a_report_killed_mid_run_leaves_the_previous_report_and_the_index_whole(published, hostile_demo,
                                                                               tmp_path):
    root = published.folder.parents[1]
    before = {f.name: f.read_bytes() for f in published.folder.iterdir()}
    index_before = (root / "index.html").read_bytes()
    started = tmp_path / "started"
    slow = _broken(tmp_path, f"import pathlib, time\npathlib.Path({str(started)!r}).touch()\ntime.sleep(120)")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PAYOPS_", "STRIPE_"))}
    env.update(PAYOPS_DB=str(hostile_demo), PAYOPS_REPORTS_DIR=str(root), PAYOPS_TIMEZONE="America/New_York")
    proc = subprocess.Popen([sys.executable, "-m", "payops", "report", "daily", "--date", DAY, "--notebook",
                             str(slow)], env=env, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        for _ in range(1200):  # the kernel is inside the notebook, half of it executed
            if started.exists() or proc.poll() is not None:
                break
            time.sleep(0.1)
        assert started.exists(), "the report never reached the slow cell"
        building = list(published.folder.parent.glob(f".{published.period.label}.*.building"))
        assert building and (building[0] / "metrics.json").exists() or building
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the CLI and its kernel, as a machine losing power would
        proc.wait()
    assert {f.name: f.read_bytes() for f in published.folder.iterdir()} == before
    assert (root / "index.html").read_bytes() == index_before
    reports.write_index(root)  # the next run's index does not list the half-built folder either
    assert _index_rows(root) == [f"daily/{published.period.label}/report.html"]
    # and a later run sweeps it away once it is clearly dead; a run still building stays
    left = list(published.folder.parent.glob(f".{published.period.label}.*.building"))
    assert left
    live = published.folder.parent / f".{published.period.label}.live.building"
    live.mkdir()
    later = max(d.stat().st_mtime for d in left) + reports.LEFTOVER_SECONDS + 1
    os.utime(live, (later, later))
    assert sorted(reports.sweep_leftovers(published.folder.parent, now=later)) == sorted(left)
    assert live.exists() and not any(d.exists() for d in left)
    assert (published.folder / "report.html").exists()
    shutil.rmtree(live)


@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed")
def test_report_screenshot(published):
    """A picture of report.html for a person to look at (test-artifacts/report-daily.png)."""
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "report-daily.png"
    shot.unlink(missing_ok=True)
    subprocess.run([str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    "--window-size=1200,6000", f"--screenshot={shot}", published.html.as_uri()],
                   check=True, capture_output=True, timeout=120)
    assert shot.stat().st_size > 50_000
    assert metrics.period("daily", DAY).label in published.html.read_text()

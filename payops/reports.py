"""Scheduled reports: papermill runs of ``notebooks/report.ipynb``, HTML, metrics.json, CSVs, index.

:func:`run_report` publishes one report into ``<reports dir>/<period>/<label>/``:

- ``report.ipynb``: the executed notebook (parameters: period, date, db_path, timezone,
  output_dir; never a secret),
- ``report.html``: rendered without code cells or prompts,
- ``metrics.json``: the period, its ``daily_metrics`` rows, per-currency summaries of the
  period and the previous one, and the KPIs,
- ``payments.csv``, ``refunds.csv``, ``refund_requests.csv``, ``customers.csv``,
  ``daily_metrics.csv``: the period's exports,

- ``report.json``: what the report is and which files it has, written last: a folder without
  it is not a complete report,

and rewrites ``<reports dir>/index.html`` linking every complete report, newest first
(:func:`index_key`). A report is built in a hidden folder next to its place
(``<period>/.<label>.<random>.building``) and renamed into place when complete, so a run that
fails or is killed never leaves a half-built report behind the index's links, and the
previous run's report stays whole until the new one replaces it. A failed run's files are
kept in ``<period>/.<label>.failed`` for a look at the partial notebook.

:class:`Report` is what the notebook calls: each method is one table or one chart, all per
currency, so the notebook reads like a report and holds no business logic.
"""

from __future__ import annotations

import html
import os
import shutil
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import orjson
import pandas as pd

from payops import cash, charts, exports, insights, metrics, money, outputs, periods
from payops.config import get_settings
from payops.db import database_path, require
from payops.errors import ReportError
from payops.money import format_amount

__all__ = ["KERNEL_NAME", "NOTEBOOK", "SECRET_ENV", "INDEX_PERIOD_ORDER", "MANIFEST", "ReportResult", "run_report",
           "render_html", "write_index", "index_key", "Report"]

#: the Jupyter kernel reports run under (``make setup`` registers it into .venv)
KERNEL_NAME = "payops"
#: the report notebook shipped with the repository
NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "report.ipynb"
#: environment variables the report kernel never receives (a report needs no Stripe access)
SECRET_ENV = ("STRIPE_API_KEY", "STRIPE_WEBHOOK_SECRET")
EXPORTS = ("payments", "refunds", "refund-requests", "customers", "daily-metrics")
#: the file a report's folder gets last, when everything else is written: the index lists
#: only folders that have it
MANIFEST = "report.json"
#: the nbconvert template of report.html (JupyterLab's, loading nothing from the internet)
TEMPLATE = Path(__file__).resolve().parent / "templates" / "report.html.j2"


@dataclass
class ReportResult:
    """What :func:`run_report` published."""

    period: metrics.Period
    folder: Path
    notebook: Path
    html: Path
    metrics_json: Path
    exports: list[Path] = field(default_factory=list)
    index: Path | None = None
    alerts: list[dict] = field(default_factory=list)
    seconds: float = 0.0


def _kernel_manager_class():
    """A kernel manager that starts the kernel without the Stripe secrets in its environment."""
    from jupyter_client.manager import AsyncKernelManager

    class NoSecretsKernelManager(AsyncKernelManager):
        def __init__(self, **kw):
            # over IPC (a Unix socket only this user can open), not TCP: ipykernel warns
            # "running over TCP without encryption" into every report run's log otherwise
            kw.setdefault("transport", "ipc")
            super().__init__(**kw)

        async def _async_pre_start_kernel(self, **kw):
            env = dict(kw.pop("env", None) or os.environ)
            for name in SECRET_ENV:
                env.pop(name, None)
            return await super()._async_pre_start_kernel(env=env, **kw)

    return NoSecretsKernelManager


def render_html(notebook: Path, out: Path) -> Path:
    """Render an executed notebook to HTML without code cells or prompts.

    The page loads nothing from the internet and runs no script (:data:`TEMPLATE`: no
    require.js, MathJax, mermaid or widget manager; a Content-Security-Policy without scripts).
    """
    import nbformat
    from nbconvert import HTMLExporter

    nb = nbformat.read(str(notebook), as_version=4)
    exporter = HTMLExporter(exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True,
                            extra_template_paths=[str(TEMPLATE.parent)], template_file=TEMPLATE.name)
    body, _ = exporter.from_notebook_node(nb)
    out.write_text(body, encoding="utf-8")
    return out


def _json_default(value):
    if isinstance(value, (datetime, date, pd.Timestamp)):
        return value.isoformat()
    if pd.isna(value):
        return None
    raise TypeError


def _records(df: pd.DataFrame) -> list[dict]:
    clean = df.astype(object).where(df.notna(), None)
    return clean.to_dict(orient="records")


def _metrics_json(p: metrics.Period, db, tz: str, path: Path) -> list[dict]:
    rows = metrics.daily(p.start, p.end, db=db)
    (current, previous), _ = metrics.summaries([(p.start, p.end), (p.previous_start, p.previous_end)], db=db, tz=tz)
    k = metrics.kpis_of(current)
    alerts = [x for x in k if not x["ok"]]
    doc = {
        "report": {**p.as_dict(), "timezone": tz, "generated_at": datetime.now(UTC).isoformat(),
                   "database": str(database_path(db))},
        "daily_metrics": _records(rows),
        "summary": _records(current),
        "previous_summary": _records(previous),
        "kpis": k,
        "alerts": alerts,
    }
    path.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY,
                                  default=_json_default) + b"\n")
    return alerts


def run_report(kind: str, day: str | date | None = None, *, db=None, reports_dir: str | Path | None = None,
               notebook: str | Path | None = None, kernel_name: str = KERNEL_NAME, progress: bool = False,
               today: date | None = None) -> ReportResult:
    """Publish the ``kind`` report (daily, weekly, monthly) for the period containing ``day``.

    Args:
        kind: ``daily``, ``weekly`` or ``monthly``.
        day: a day in the period (default: the last complete period, see :func:`payops.metrics.period`).
        db: database path (default ``PAYOPS_DB``).
        reports_dir: where to publish (default ``PAYOPS_REPORTS_DIR``).
        notebook: the notebook to run (default ``notebooks/report.ipynb``).
        kernel_name: the Jupyter kernel (default ``payops``).
        progress: show papermill's progress bar.
        today: the local "today" the default period counts from.

    Raises:
        ReportError: the notebook failed (the message names the cell's error and the path
            of the partially executed notebook) or could not be run.
    """
    began = time.monotonic()
    settings = get_settings()
    tz = settings.timezone
    p = metrics.period(kind, day, today=today, tz=tz)
    db_path = require(db)
    root = Path(reports_dir or settings.reports_dir).resolve()
    folder = root / p.kind / p.label
    source = Path(notebook) if notebook else NOTEBOOK
    if not source.is_file():
        raise ReportError(f"no report notebook at {source}")
    folder.parent.mkdir(parents=True, exist_ok=True)
    sweep_leftovers(folder.parent)
    # built beside its place (same file system, so the rename below is atomic), hidden
    work = Path(tempfile.mkdtemp(prefix=f".{p.label}.", suffix=".building", dir=folder.parent))
    try:
        alerts, written = _build(p, work, source, db_path, tz, kernel_name, progress)
    except BaseException as exc:  # a failed run, or Ctrl-C: never in place, kept for a look
        kept = _keep_failed(work, folder)
        if isinstance(exc, ReportError):
            raise ReportError(str(exc).replace(str(work), str(kept))) from None
        raise
    _publish(work, folder)
    index = write_index(root)
    moved = [folder / f.name for f in written]
    return ReportResult(p, folder, folder / "report.ipynb", folder / "report.html", folder / "metrics.json", moved,
                        index, alerts, time.monotonic() - began)


def _build(p: metrics.Period, work: Path, source: Path, db_path: Path, tz: str, kernel_name: str,
           progress: bool) -> tuple[list[dict], list[Path]]:
    """Every file of one report in ``work``, the manifest last."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    out_nb = work / "report.ipynb"
    params = {"period": p.kind, "date": p.start.isoformat(), "db_path": str(db_path),
              "timezone": tz, "output_dir": str(work)}

    # Written while the kernel starts and runs the notebook: daily_metrics for the period
    # and the one before (a short write; the kernel's read-only connections wait for it, and
    # the notebook computes its figures with the same SQL), then metrics.json and the CSVs.
    def side_files():
        metrics.compute_daily(p.previous_start, p.end, db=db_path, tz=tz)
        alerts = _metrics_json(p, db_path, tz, work / "metrics.json")
        written = [
            exports.export(k, "csv", start=p.start, end=p.end, db=db_path, tz=tz,
                           out=work / f"{k.replace('-', '_')}.csv")
            for k in EXPORTS
        ]
        return alerts, written

    pool = ThreadPoolExecutor(max_workers=1)
    side = pool.submit(side_files)
    try:
        papermill.execute_notebook(
            str(source), str(out_nb), parameters=params, kernel_name=kernel_name,
            language="python", progress_bar=progress, log_output=False, cwd=os.getcwd(),
            kernel_manager_class=_kernel_manager_class(),
        )
    except PapermillExecutionError as exc:
        raise ReportError(
            f"the {p.kind} report failed in cell {exc.exec_count}: {exc.ename}: {exc.evalue}; "
            f"partial notebook: {out_nb}"
        ) from None
    except Exception as exc:  # kernel missing, notebook unreadable, ...
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        hint = " (run `make setup` to register the kernel)" if "kernel" in first.lower() else ""
        raise ReportError(f"the {p.kind} report could not run: {first}{hint} (notebook {out_nb})") from None
    finally:
        pool.shutdown(wait=True)
    render_html(out_nb, work / "report.html")
    alerts, written = side.result()
    _write_manifest(p, work, alerts)
    return alerts, [Path(w) for w in written if w is not None]


def _write_manifest(p: metrics.Period, work: Path, alerts: list[dict]) -> None:
    files = sorted(f.name for f in work.iterdir() if f.is_file())
    doc = {"report": {**p.as_dict(), "generated_at": datetime.now(UTC).isoformat()},
           "alerts": len(alerts), "files": files}
    tmp = work / f".{MANIFEST}.tmp"
    tmp.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2) + b"\n")
    os.replace(tmp, work / MANIFEST)


def _publish(work: Path, folder: Path) -> None:
    """Put the complete report ``work`` at ``folder``, replacing the previous run's."""
    old = None
    if folder.exists():
        old = folder.with_name(f".{folder.name}.{uuid.uuid4().hex[:8]}.replaced")
        folder.rename(old)
    work.rename(folder)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


#: a hidden build or replaced folder this old belongs to a run that was killed (kill -9, power)
LEFTOVER_SECONDS = 6 * 3600


def sweep_leftovers(period_dir: Path, now: float | None = None) -> list[Path]:
    """Remove what killed runs left in ``period_dir``: ``.*.building`` and ``.*.replaced``
    folders untouched for :data:`LEFTOVER_SECONDS` (a run still building is younger).

    Returns:
        The folders removed. ``.<label>.failed`` (the last failure, kept for a look) stays.
    """
    limit = (time.time() if now is None else now) - LEFTOVER_SECONDS
    gone = []
    for d in period_dir.glob(".*"):
        if not d.name.endswith((".building", ".replaced")) or not d.is_dir():
            continue
        try:
            if d.stat().st_mtime < limit:
                shutil.rmtree(d)
                gone.append(d)
        except OSError:  # another run removed or renamed it meanwhile
            continue
    return gone


def _keep_failed(work: Path, folder: Path) -> Path:
    """Keep a failed run's files at ``<period>/.<label>.failed`` (the last failure only)."""
    kept = folder.with_name(f".{folder.name}.failed")
    shutil.rmtree(kept, ignore_errors=True)
    try:
        work.rename(kept)
    except OSError:
        return work
    return kept


#: the order of reports that end on the same day in the index: the longer period first
INDEX_PERIOD_ORDER = ("monthly", "weekly", "daily")


def index_key(info: dict) -> tuple:
    """The sort key of one report in ``index.html``: a total order, independent of run times.

    Newest ``end`` day first; reports ending on the same day in :data:`INDEX_PERIOD_ORDER`
    (monthly, weekly, daily: the wider period above the days it covers); then the label,
    newest first. ``(period, label)`` names one folder, so no two reports compare equal, and
    re-running a report never moves it.
    """
    end = date.fromisoformat(info["end"])
    kind = info["period"]
    rank = INDEX_PERIOD_ORDER.index(kind) if kind in INDEX_PERIOD_ORDER else len(INDEX_PERIOD_ORDER)
    label = str(info.get("label", ""))
    return (-end.toordinal(), rank, kind, tuple(-ord(ch) for ch in label))


def _complete_reports(root: Path) -> list[tuple[dict, int, Path, list[str]]]:
    """(report info, alerts, folder, files) of every complete report under ``root``."""
    entries = []
    for manifest in root.glob(f"*/*/{MANIFEST}"):
        folder = manifest.parent
        if folder.name.startswith("."):  # being built, failed, or being replaced
            continue
        try:
            doc = orjson.loads(manifest.read_bytes())
            info = doc["report"]
            index_key(info)
            files = [str(f) for f in doc["files"]]
            n_alerts = int(doc["alerts"])
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, OSError):
            continue
        entries.append((info, n_alerts, folder, files))
    entries.sort(key=lambda e: index_key(e[0]))
    return entries


def write_index(reports_dir: str | Path | None = None) -> Path:
    """Rewrite ``index.html`` in the reports folder: every complete report, in :func:`index_key` order.

    A report is complete when its folder has :data:`MANIFEST` (written last by
    :func:`run_report`); the index is replaced in one rename, never seen half-written.
    """
    root = Path(reports_dir or get_settings().reports_dir)
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    e = outputs.text
    for info, n_alerts, folder, files in _complete_reports(root):
        rel = e(folder.relative_to(root).as_posix())
        shown = ["report.ipynb", "metrics.json"] + sorted(f for f in files if f.endswith(".csv"))
        links = " ".join(f'<a href="{rel}/{e(name)}">{e(name)}</a>' for name in shown if name in files)
        status = f'<span class="bad">{n_alerts} alert{"s" if n_alerts != 1 else ""}</span>' if n_alerts else "ok"
        rows.append(
            f"<tr><td>{e(info['period'])}</td>"
            f'<td><a href="{rel}/report.html">{e(info["label"])}</a></td>'
            f"<td>{e(info['start'])} to {e(info['end'])}</td><td>{status}</td>"
            f"<td>{e(str(info.get('generated_at', ''))[:19].replace('T', ' '))} UTC</td><td>{links}</td></tr>"
        )
    body = "\n".join(rows) or '<tr><td colspan="6">No reports yet: run <code>payops report daily</code>.</td></tr>'
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>payops reports</title>
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem; }}
table {{ border-collapse: collapse; }}
td, th {{ padding: .3rem .8rem; border-bottom: 1px solid #ddd; text-align: left; }}
.bad {{ color: #b00020; font-weight: bold; }}
</style></head>
<body>
<h1>payops reports</h1>
<p>Every published report, newest first (reports ending the same day: monthly, weekly, daily).
Each links its HTML report, the executed notebook,
<code>metrics.json</code> and the period's CSV exports.</p>
<table>
<thead><tr><th>period</th><th>report</th><th>days</th><th>KPIs</th><th>generated</th><th>files</th></tr></thead>
<tbody>
{body}
</tbody></table>
</body></html>
"""
    index = root / "index.html"
    tmp = root / f".index.html.{uuid.uuid4().hex[:8]}.tmp"
    tmp.write_text(page, encoding="utf-8")
    os.replace(tmp, index)
    return index


# --- what the notebook calls -----------------------------------------------------------
_HEADLINE = (
    ("attempts", "Payments", "count"), ("success_rate", "Success rate", "rate"),
    *((name, label, "money") for name, (label, _) in money.FIGURES.items()),
    ("conversion_rate", "Intent conversion", "rate"), ("requests_opened", "Refund requests opened", "count"),
    ("requests_processed", "Refund requests processed", "count"),
    ("processing_hours_median", "Processing time (median h)", "hours"),
    ("pending_requests", "Pending requests (end)", "count"),
)


# a rate is shown with the count it is a rate of: 0% of 1 payment is not 0% of 500
_RATE_OF = {
    "success_rate": (("succeeded", "failed"), "decided"),
    "failed_rate": (("attempts",), "attempts"),
    "conversion_rate": (("intents_created",), "intents"),
}


def _count_of(rate: str, row) -> int | None:
    """How many the rate ``rate`` of a summary row is a rate of (None if unknown)."""
    if rate not in _RATE_OF or row is None:
        return None
    columns, _ = _RATE_OF[rate]
    try:
        values = [row[c] for c in columns]
    except (KeyError, IndexError):
        return None
    return None if any(pd.isna(v) for v in values) else int(sum(values))


def _show_rate(value, rate: str, row) -> str:
    shown = _show(value, "rate", "")
    n = _count_of(rate, row)
    if shown == "-" or n is None:
        return shown
    return f"{shown} of {n:,} {_RATE_OF[rate][1]}"


def _show(value, kind: str, currency: str) -> str:
    if value is None or pd.isna(value):
        return "-"
    if kind == "money":
        return format_amount(int(value), currency)
    if kind == "rate":
        return f"{value * 100:.1f}%"
    if kind == "hours":
        return f"{value:.1f} h"
    return f"{int(value):,}"


def _change(cur, prev, kind: str) -> str:
    if cur is None or prev is None or pd.isna(cur) or pd.isna(prev):
        return "-"
    if kind == "rate":
        return f"{(cur - prev) * 100:+.1f} pts"
    if prev == 0:
        return "new" if cur else "="
    return f"{(cur - prev) / abs(prev) * 100:+.0f}%"


def _by_currency(summary: pd.DataFrame) -> dict:
    """The rows of a summary frame by currency."""
    return {row["currency"]: row for _, row in summary.iterrows()} if len(summary) else {}


def _markdown_text(value: str) -> str:
    # a file name is shown as text, never as Markdown or HTML
    marked = "".join("\\" + ch if ch in "\\`*_[]()#+-.!|{}" else ch for ch in value)
    return html.escape(marked, quote=False)


class Report:
    """The data and charts of one report, for ``notebooks/report.ipynb``.

    Args:
        period: ``daily``, ``weekly`` or ``monthly``.
        date: a day in the period (default: the last complete one).
        db: database path (default ``PAYOPS_DB``).
        timezone: reporting timezone (default ``PAYOPS_TIMEZONE``).
    """

    def __init__(self, period: str = "daily", date: str | date | None = None, *, db=None,
                 timezone: str | None = None):
        self.tz = periods.timezone(timezone or None)
        self.db = require(db or None)
        self.period = metrics.period(period, date or None, tz=self.tz)
        p = self.period
        # One query gives both periods' summaries and the days of the volume chart; the other
        # charts' data is fetched in a background thread while the notebook renders tables
        # and earlier charts (DuckDB releases the GIL while it queries).
        db, tz = self.db, self.tz
        jobs = {
            "refunds": lambda: insights.refund_requests_breakdown(p.start, p.end, db=db, tz=tz),
            "processing": lambda: metrics.processing_times(p.start, p.end, db=db, tz=tz),
            "failures": lambda: insights.failure_codes(p.start, p.end, db=db, tz=tz),
            "top": lambda: insights.top_customers(p.start, p.end, limit=10, db=db, tz=tz),
            "biggest": lambda: insights.biggest_refunds(p.start, p.end, limit=10, db=db, tz=tz),
        }
        pool = ThreadPoolExecutor(max_workers=1)
        self._data = {name: pool.submit(job) for name, job in jobs.items()}
        pool.shutdown(wait=False)
        (self._current, self._previous), days = metrics.summaries(
            [(p.start, p.end), (p.previous_start, p.previous_end)], extra=(p.trend_start, p.end), db=db, tz=tz)
        self._trend = days[days["day"] >= p.trend_start] if len(days) else days
        self._kpis = metrics.kpis_of(self._current)
        self._kpis_prev = metrics.kpis_of(self._previous)
        self.currencies = sorted(self._current["currency"]) if len(self._current) else []

    # tables -------------------------------------------------------------------------
    def title(self):
        """The report's heading as Markdown."""
        from IPython.display import Markdown

        p = self.period
        span = p.start.isoformat() if p.days == 1 else f"{p.start} to {p.end}"
        return Markdown(
            f"# {p.kind.capitalize()} payments report: {p.label}\n\n"
            f"{span} ({self.tz}), compared with {p.previous_start}"
            + (f" to {p.previous_end}" if p.previous_end != p.previous_start else "")
            + f". Database {_markdown_text(self.db.name)}; generated {datetime.now(UTC):%Y-%m-%d %H:%M} UTC."
        )

    def kpis(self) -> pd.DataFrame:
        """The KPIs with their status, the previous period's value and the change.

        A rate is shown with its count ("0.0% of 1 decided"), this period and the previous one.
        """
        prev = {(k["name"], k["currency"]): k for k in self._kpis_prev}
        cur_rows, prev_rows = _by_currency(self._current), _by_currency(self._previous)
        rows = []
        for k in self._kpis:
            kind = "rate" if "rate" in k["name"] else ("hours" if "hours" in k["name"] else "count")
            before = prev.get((k["name"], k["currency"]), {}).get("value")
            limit = _show(k["threshold"], kind, "usd")
            if kind == "rate":
                value = _show_rate(k["value"], k["name"], cur_rows.get(k["currency"]))
                previous = _show_rate(before, k["name"], prev_rows.get(k["currency"]))
            else:
                value, previous = _show(k["value"], kind, "usd"), _show(before, kind, "usd")
            rows.append({
                "KPI": k["label"], "currency": (k["currency"] or "all").upper(),
                "value": value, "threshold": limit,
                "status": "OK" if k["ok"] else "BREACHED",
                "previous": previous, "change": _change(k["value"], before, kind),
            })
        return pd.DataFrame(rows).set_index(["KPI", "currency"]) if rows else pd.DataFrame(rows)

    def alerts(self) -> pd.DataFrame:
        """The breached KPIs of the period (empty when all is well)."""
        bad = [k["message"] for k in self._kpis if not k["ok"]]
        messages = bad or ["No KPI breached: every KPI is within its threshold."]
        return pd.DataFrame({"alert": messages}, index=pd.RangeIndex(1, len(messages) + 1))

    def headline(self) -> pd.DataFrame:
        """Every metric per currency: this period, the previous one, and the change."""
        cur = self._current.set_index("currency")
        prev = self._previous.set_index("currency")
        rows = []
        for c in self.currencies:
            now_row = cur.loc[c] if c in cur.index else None
            before_row = prev.loc[c] if c in prev.index else None
            for col, label, kind in _HEADLINE:
                now = now_row[col] if now_row is not None else None
                before = before_row[col] if before_row is not None else None
                if kind == "rate":
                    shown_now, shown_before = _show_rate(now, col, now_row), _show_rate(before, col, before_row)
                else:
                    shown_now, shown_before = _show(now, kind, c), _show(before, kind, c)
                rows.append({"currency": c.upper(), "metric": label, "this period": shown_now,
                             "previous": shown_before, "change": _change(now, before, kind)})
        return pd.DataFrame(rows).set_index(["currency", "metric"]) if rows else pd.DataFrame(rows)

    def _top(self, limit: int) -> pd.DataFrame:
        # one query serves the chart and the table
        if limit <= 10:
            return self._data["top"].result().groupby("currency", group_keys=False).head(limit)
        return insights.top_customers(self.period.start, self.period.end, limit=limit, db=self.db, tz=self.tz)

    def top_customers(self, limit: int = 10):
        """The biggest spenders of the period per currency (biggest first within each), linked to Stripe."""
        df = self._top(limit)
        if df.empty:
            return pd.DataFrame({"customer": ["No succeeded payments in this period."]})
        df = df.sort_values(["currency", "spend", "customer"], ascending=[True, False, True])
        table = pd.DataFrame({
            "currency": df["currency"].str.upper(), "customer": df["customer"], "name": df["name"],
            "email": df["email"], "payments": df["payments"],
            "spend": [format_amount(int(v), c) for v, c in zip(df["spend"], df["currency"], strict=True)],
            "refunded": [format_amount(int(v), c) for v, c in zip(df["refunded_amount"], df["currency"], strict=True)],
            "payment method": df["preferred_payment_method"], "livemode": df["livemode"],
        })
        return outputs.table(table, link_columns=["customer"], hide=["livemode"])

    def biggest_refunds(self, limit: int = 10):
        """The biggest refunds of the period per currency (biggest first within each), linked to Stripe."""
        df = self._data["biggest"].result().groupby("currency", group_keys=False).head(limit) if limit <= 10 \
            else insights.biggest_refunds(self.period.start, self.period.end, limit=limit, db=self.db, tz=self.tz)
        if df.empty:
            return pd.DataFrame({"refund": ["No refunds in this period."]})
        df = df.sort_values(["currency", "amount", "refund"], ascending=[True, False, True])
        table = pd.DataFrame({
            "currency": df["currency"].str.upper(),
            "amount": [format_amount(int(v), c) for v, c in zip(df["amount"], df["currency"], strict=True)],
            "refund": df["refund"], "payment": df["charge"], "customer": df["customer"],
            "reason": df["reason"], "status": df["status"],
            "request": df["payops_request_id"].astype("Int64"),
            "created": df["created"].dt.tz_convert(self.tz).dt.strftime("%Y-%m-%d %H:%M"),
            "livemode": df["livemode"],
        })
        return outputs.table(table, link_columns=["refund", "payment", "customer"], hide=["livemode"])

    # charts (drawn by payops.charts from the data above) ------------------------------
    def volume_chart(self):
        """Success rate per day (one line per currency), then gross volume per day per currency."""
        return charts.volume(self._trend, self.period, get_settings().kpis.min_success_rate)

    def fee_chart(self):
        """Where gross volume went (:data:`payops.money.GROSS_PARTS`), each bar 100% of gross volume."""
        return charts.gross_split(self._current, self._previous)

    def refunds_chart(self):
        """Refund requests opened in the period, by currency and status, stacked by priority."""
        return charts.refund_requests(self._data["refunds"].result())

    def processing_chart(self):
        """Distribution of request -> processed hours in the period, one outline per currency."""
        return charts.processing(self._data["processing"].result(), get_settings().kpis.max_processing_hours)

    def failures_chart(self):
        """Failed payments of the period by failure code, one bar per currency."""
        return charts.failures(self._data["failures"].result())

    def waterfall(self) -> pd.DataFrame:
        """The money waterfall of the period per currency (:mod:`payops.ledger`), from balance transactions."""
        return cash.waterfall_table(self._current)

    def waterfall_chart(self):
        """Gross volume and where it went, per currency: the bars sum to gross volume exactly."""
        return cash.waterfall_chart(self._current)

    def cash_payouts(self) -> pd.DataFrame:
        """The payouts of the period (UTC days), each reconciled against its balance transactions or not."""
        return cash.payouts_table(self.period.start, self.period.end, db=self.db)

    def cash_balance(self) -> pd.DataFrame:
        """The balance per currency (available / pending) at the end of the period."""
        return cash.balance_table(self.period.end, db=self.db)

    def top_customers_chart(self, limit: int = 5):  # the table below shows ten
        """The biggest spenders of the period, per currency."""
        return charts.top_customers(self._top(10).groupby("currency", group_keys=False).head(limit))

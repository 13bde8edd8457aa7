"""Metrics, exports and reports: ``payops analytics``, ``payops export``, ``payops report``."""

from __future__ import annotations

from pathlib import Path

import click

from payops.cli.core import DB_OPTION, date_option
from payops.exports import FORMATS, KINDS
from payops.periods import PERIODS
from payops.text import plural


@click.command()
@date_option("--from", "start", "First day (YYYY-MM-DD, reporting timezone); default: the first day with data.")
@date_option("--to", "end", "Last day, inclusive; default: the last day with data.")
@DB_OPTION
@click.option("--engine", type=click.Choice(["duckdb", "spark"]), default="duckdb", show_default=True,
              help="duckdb: the database; spark: Apache Spark over a lake (--lake), same definition.")
@click.option("--lake", "lake_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="The lake Spark reads (`payops lake export --to DIR`); results go to DIR/results/daily_metrics.")
@click.option("--master", default=None, help="Spark master: local[*] (default), spark://host:7077, sc://host:15002.")
@click.option("--load", is_flag=True, help="With --engine spark: also store the rows in the database's daily_metrics.")
def analytics(start, end, db: Path | None, engine: str, lake_dir: Path | None, master: str | None,
              load: bool) -> None:
    """Recompute daily_metrics (per day in PAYOPS_TIMEZONE and currency) and show the KPIs."""
    import time

    if engine == "spark":
        from payops.cli.lake import analytics_on_spark

        return analytics_on_spark(start, end, lake_dir, master, load, db)

    from payops import metrics
    from payops.config import get_settings

    began = time.monotonic()
    n = metrics.compute_daily(start, end, db=db)
    took = time.monotonic() - began
    tz = get_settings().timezone
    span = f"{start or 'first day'} to {end or 'last day'}"
    click.echo(f"daily_metrics: {plural(n, 'row')} (day x currency) for {span} in {tz}, computed in {took:.2f} s.")
    if n:
        from payops.money import format_amount

        first, last = metrics.stored_range(db=db) or (start, end)
        frame = metrics.summary(start or first, end or last, db=db)
        for r in frame.itertuples(index=False):
            rate = f"{r.success_rate * 100:.1f}%" if r.success_rate == r.success_rate else "-"
            click.echo(
                f"  {r.currency.upper():<5}{plural(int(r.attempts), 'payment'):>18}  {rate:>6} succeeded  "
                f"gross {format_amount(int(r.gross_volume), r.currency)}  net {format_amount(int(r.net), r.currency)}"
            )


@click.command(name="export")
@click.argument("kind", type=click.Choice(KINDS))
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="csv", show_default=True, help="File format.")
@date_option("--from", "start", "First day (YYYY-MM-DD, reporting timezone).")
@date_option("--to", "end", "Last day, inclusive.")
@click.option("--out", "out", type=click.Path(dir_okay=False), default=None,
              help="File to write, or - for stdout (csv/json); default <kind>[_<from>_<to>].<format>.")
@click.option("--mask-pii", is_flag=True, help="Mask emails, names, phones and addresses (for sharing).")
@DB_OPTION
def export_cmd(kind, fmt, start, end, out, mask_pii, db) -> None:
    """Export payments, refunds, refund requests, customers or daily metrics as CSV, JSON or Parquet."""
    from payops.exports import export

    path = export(kind, fmt, start=start, end=end, out=out, db=db, mask_pii=mask_pii)
    if path is not None:
        click.echo(f"Wrote {path}", err=True)


@click.command()
@click.argument("period", type=click.Choice(PERIODS))
@date_option("--date", "day", "A day inside the period (YYYY-MM-DD); default: yesterday / last complete week / "
             "last complete month.")
@click.option("--notebook", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
              help="Report notebook to run (default: notebooks/report.ipynb).")
@click.option("--reports-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where to publish (default: $PAYOPS_REPORTS_DIR or reports/).")
@click.option("--progress/--no-progress", default=None, help="Show the cell progress bar (default: on a terminal).")
@DB_OPTION
def report(period, day, notebook, reports_dir, progress, db) -> None:
    """Run the report notebook for a daily, weekly or monthly period and publish HTML, JSON and CSV."""
    import sys

    from payops.reports import run_report

    if progress is None:
        progress = sys.stderr.isatty()
    r = run_report(period, day, db=db, reports_dir=reports_dir, notebook=notebook, progress=progress)
    click.echo(f"{r.period.kind} report {r.period.label} ({r.period.start} to {r.period.end}) in {r.seconds:.1f} s:")
    click.echo(f"  {r.html}")
    click.echo(f"  {r.metrics_json}  + {plural(len(r.exports), 'CSV export')}, executed notebook {r.notebook.name}")
    click.echo(f"  index: {r.index}")
    for a in r.alerts:
        click.secho(f"  ! {a['message']}", fg="red")


def register(cli: click.Group) -> None:
    cli.add_command(analytics)
    cli.add_command(export_cmd)
    cli.add_command(report)

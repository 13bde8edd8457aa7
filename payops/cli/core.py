"""Core commands: init, status, query."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from payops.db import connect, database_path, migrate
from payops.db import query as run_query
from payops.errors import PayopsError
from payops.outputs import write_csv
from payops.text import plural

# Where a command takes a count or an id: a number DuckDB can hold (BIGINT), so an absurd one is
# a usage error naming the option, not an overflow deep in a query.
COUNT = click.IntRange(min=1, max=1_000_000_000)
ROW_ID = click.IntRange(min=1, max=2**63 - 1)
# Dates the periods can be computed around (a day before and after stay valid dates).
FIRST_DATE, LAST_DATE = "1970-01-01", "9998-12-30"

DB_OPTION = click.option(
    "--db", "db", type=click.Path(dir_okay=False, path_type=Path), default=None,
    help="Database file (default: $PAYOPS_DB or data/payops.duckdb).",
)


def _date(ctx: click.Context, param: click.Parameter, value: str | None):
    from datetime import date

    from payops.periods import parse_date

    try:
        day = parse_date(value)
    except PayopsError as exc:  # InvalidInput -> a click usage error naming the option
        raise click.BadParameter(exc.message) from None
    if day is not None and not date.fromisoformat(FIRST_DATE) <= day <= date.fromisoformat(LAST_DATE):
        raise click.BadParameter(f"{day.isoformat()} is out of range (payops handles {FIRST_DATE} to {LAST_DATE})")
    return day


def date_option(flag: str, name: str, text: str):
    """A ``--flag YYYY-MM-DD`` option parsed into a date (a bad date is a usage error)."""
    return click.option(flag, name, callback=_date, metavar="YYYY-MM-DD", help=text)


def _fmt_ts(value) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value is not None else "-"


@click.command()
@DB_OPTION
def init(db: Path | None) -> None:
    """Create the database, or bring its schema up to date."""
    path = database_path(db)
    with connect(path, migrate_schema=False) as con:
        applied = migrate(con)
    if applied:
        click.echo(f"Database {path}: applied {', '.join(applied)}.")
    else:
        click.echo(f"Database {path} is up to date.")


def render_status(ov) -> str:
    """The status overview as terminal text."""
    lines = []
    mode = "single-user mode (no payops.toml: you hold every role)" if ov.single_user \
        else f"roles: {', '.join(ov.roles) or 'none'}"
    lines.append(click.style("payops status", bold=True) + f"  database {ov.db_path}")
    lines.append(f"user {ov.user}: {mode}; reporting timezone {ov.timezone}")
    if ov.snapshot:
        lines.append(f"snapshot of {ov.snapshot['source']} taken {_fmt_ts(ov.snapshot['taken_at'])} "
                     f"by {ov.snapshot['taken_by']} (a copy: later changes are not in it)")
    lines.append("")
    lines.append(click.style("Tables", bold=True))
    lines.append(f"  {'table':<22}{'rows':>10}  {'newest object':<22}{'last synced':<22}")
    for table, n in ov.tables.items():
        newest = ov.newest.get(table)
        extra = f"  {_fmt_ts(newest['created']):<22}{_fmt_ts(newest['synced_at']):<22}" if newest else ""
        lines.append(f"  {table:<22}{n:>10,}{extra}")
    lines.append("")
    lines.append(click.style("Sync", bold=True))
    if ov.sync:
        for s in ov.sync:
            lines.append(
                f"  {s['stream']:<22}{s['done']}/{s['windows']} windows done, "
                f"{int(s['objects'] or 0):,} objects, last {_fmt_ts(s['updated_at'])}"
            )
    else:
        lines.append("  never synced (run `payops sync`)")
    lines.append("")
    p = ov.pending_by_priority
    lines.append(click.style("Pending refund requests", bold=True) + f"  {ov.pending_total:,} in all")
    from payops.refunds.queue import pending_parts

    by_age, by_amount = pending_parts(p)
    lines.append("  by age: " + "   ".join(f"{k} {n:,}" for k, n in by_age)
                 + "      by amount: " + "   ".join(f"{k} {n:,}" for k, n in by_amount))
    lines.append("")
    lines.append(click.style(f"Payments on {ov.yesterday}", bold=True))
    if ov.yesterday_payments:
        for r in ov.yesterday_payments:
            rate = f"{r['success_rate'] * 100:.1f}%" if r["success_rate"] is not None else "-"
            lines.append(
                f"  {r['currency'].upper():<5}{plural(r['attempts'], 'payment'):>16}  {rate:>6} succeeded  "
                f"gross {r['gross_volume_display']}"
            )
    else:
        lines.append("  none")
    if ov.alerts:
        lines.append("")
        lines.append(click.style("Alerts", bold=True, fg="red"))
        for a in ov.alerts:
            lines.append(click.style(f"  ! {a['message']}", fg="red"))
    return "\n".join(lines)


@click.command()
@DB_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print the overview as JSON.")
@click.option("--check", is_flag=True,
              help="Exit 1 when a KPI is breached (printing which), 0 when healthy, 3 when it cannot check.")
@date_option("--date", "day", "The day whose payments and KPIs to show (default: yesterday).")
def status(db: Path | None = None, as_json: bool = False, check: bool = False, day=None) -> None:
    """The overview: rows per table, last sync, pending refunds by priority, yesterday's payments."""
    from payops.status import overview

    if check:
        # cron and monitoring read the exit code: 1 is reserved for "a KPI is breached"
        try:
            ov = overview(db, day=day)
        except PayopsError as exc:
            click.secho(f"Error: {exc.message}", fg="red", err=True)
            sys.exit(3)
        if as_json:
            click.echo(json.dumps(ov.as_dict(), default=str, indent=2))
        for a in ov.alerts:
            click.echo(f"KPI breached: {a['message']}")
        if not as_json and not ov.alerts:
            click.echo("OK: every KPI is within its threshold.")
        sys.exit(1 if ov.alerts else 0)
    ov = overview(db, day=day)
    if as_json:
        click.echo(json.dumps(ov.as_dict(), default=str, indent=2))
    else:
        click.echo(render_status(ov))


@click.command()
@click.argument("sql")
@DB_OPTION
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True)
def query(sql: str, db: Path | None, fmt: str) -> None:
    """Run one SQL query against the database and print the result."""
    df = run_query(sql, db=db)
    if fmt == "csv":
        write_csv(df, sys.stdout)  # text cells neutralised, numbers stay numbers
    elif fmt == "json":
        click.echo(df.to_json(orient="records", date_format="iso"))
    else:
        click.echo(df.to_string(index=False) if len(df) else "(no rows)")


def register(cli: click.Group) -> None:
    cli.add_command(init)
    cli.add_command(status)
    cli.add_command(query)

"""The ``payops demo`` command: build the deterministic demo marketplace."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import click

from payops.cli.core import DB_OPTION, status


def _as_of(ctx: click.Context, param: click.Parameter, value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date like 2026-11-20 (YYYY-MM-DD)") from None


@click.command()
@click.option("--seed", type=int, default=42, show_default=True,
              help="Random seed: the same seed and --as-of always give identical data.")
@click.option("--days", type=click.IntRange(min=1, max=3660), default=90, show_default=True,
              help="Days of history before --as-of.")
@click.option("--customers", type=click.IntRange(min=1, max=10_000_000), default=400, show_default=True,
              help="Number of customers (students); each books ~0.08 sessions a day, "
                   "so 400 give ~2,900 payments over 90 days and 140000 give ~1,000,000.")
@click.option("--as-of", "as_of", callback=_as_of, metavar="YYYY-MM-DD", default=None,
              help="The demo's 'today' (data ends at 12:00 UTC that day). Default: today (UTC).")
@click.option("--replace", is_flag=True, help="Delete the database file first if it exists.")
@DB_OPTION
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@click.pass_context
def demo(ctx: click.Context, seed: int, days: int, customers: int, as_of: date | None, replace: bool,
         db: Path | None, quiet: bool) -> None:
    """Fill the database with a deterministic demo marketplace (tutoring payments).

    Generates Stripe-shaped customers, payments, charges (with declines), refunds, disputes,
    payouts and events, feeds them through the normal ingest path, and adds bookings,
    refund requests in every status and priority, and their audit trail. Refuses to touch
    a database that already holds charges unless --replace is given. Ends with the status
    overview of the new database.
    """
    from payops.demo import build_demo  # pyarrow and the generator load only for this command

    summary = build_demo(db, seed=seed, days=days, customers=customers, as_of=as_of,
                         replace=replace, progress=not quiet)
    click.echo(str(summary))
    click.echo("")
    ctx.invoke(status, db=summary.path)


def register(cli: click.Group) -> None:
    cli.add_command(demo)

"""Payouts against the ledger: ``payops payouts`` (list), ``reconcile``, ``export``, ``balance``."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import click

from payops.cli.core import DB_OPTION


def _date(ctx, param, value):
    from payops.metrics import parse_date

    try:
        return parse_date(value)
    except Exception as exc:  # InvalidInput -> a click usage error naming the option
        raise click.BadParameter(str(exc)) from None


@click.group(invoke_without_command=True)
@click.option("--from", "start", callback=_date, help="First day payouts were created (YYYY-MM-DD, UTC).")
@click.option("--to", "end", callback=_date, help="Last day, inclusive.")
@click.option("--transactions/--no-transactions", default=False, help="Also list each payout's transactions.")
@DB_OPTION
@click.pass_context
def payouts(ctx, start, end, transactions: bool, db: Path | None) -> None:
    """Payouts with their verdict: the amount equals the sum of the net of the transactions it settled."""
    if ctx.invoked_subcommand is not None:
        return
    from payops import payouts as P
    from payops.money import format_amount

    found = P.verdicts(start, end, db=db)
    if not found:
        click.echo("No payouts in that range.")
        return
    for v in found:
        click.echo(P.terminal_safe(v.line()))
        if transactions:
            for r in P.items(v.id, db=db).itertuples(index=False):
                click.echo(P.terminal_safe(f"    {r.group:<10} {r.balance_transaction}  {r.type:<16} "
                                     f"{format_amount(int(r.net), r.currency):>14}  {r.source or ''}"))


@payouts.command()
@click.option("--from", "start", callback=_date, help="First day payouts were created (YYYY-MM-DD, UTC).")
@click.option("--to", "end", callback=_date, help="Last day, inclusive.")
@DB_OPTION
def reconcile(start, end, db: Path | None) -> None:
    """One line per payout; exits 1 when a paid or in-transit payout does not reconcile."""
    from payops import payouts as P

    ok, found = P.reconcile(start, end, db=db)
    for v in found:
        click.echo(P.terminal_safe(v.line()))
    bad = sum(v.problem for v in found)
    # the rest are not cash to reconcile (yet, or ever): said by status, so the parts add up
    rest = Counter(v.status for v in found if not v.reconciled and not v.problem)
    others = "".join(f", {n} {status}" for status, n in sorted(rest.items()))
    click.echo(f"{len(found)} payout(s): {sum(v.reconciled for v in found)} reconciled, {bad} not reconciled"
               f"{others}.")
    if not ok:
        raise SystemExit(1)


@payouts.command()
@click.argument("payout_ids", nargs=-1)
@click.option("--from", "start", callback=_date, help="Every payout created from this day (instead of ids).")
@click.option("--to", "end", callback=_date, help="... to this day, inclusive.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="CSV file to write.")
@DB_OPTION
def export(payout_ids, start, end, out: Path, db: Path | None) -> None:
    """The itemised transactions of payouts (charges, refunds, disputes, transfers, fees) as CSV."""
    from payops import payouts as P

    ids = list(payout_ids) or [v.id for v in P.verdicts(start, end, db=db)]
    n = P.export_items(ids, out, db=db)
    click.echo(f"{n:,} transactions of {len(ids)} payout(s) written to {out}.")


@payouts.command()
@DB_OPTION
def balance(db: Path | None) -> None:
    """The balance per currency (available / pending) from balance transactions."""
    from payops import payouts as P
    from payops.money import format_amount

    frame = P.balance(db=db)
    for r in frame.itertuples(index=False):
        click.echo(f"{r.currency.upper():<5} available {format_amount(int(r.available), r.currency):>14}  "
                   f"pending {format_amount(int(r.pending), r.currency):>14}")


def register(cli: click.Group) -> None:
    cli.add_command(payouts)

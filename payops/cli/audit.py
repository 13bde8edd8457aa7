"""`payops audit`: read the audit trail (subcommands such as `verify` attach to this group)."""

from __future__ import annotations

from datetime import UTC, datetime, time
from pathlib import Path

import click

from payops.audit import list_rows
from payops.cli.core import COUNT, DB_OPTION


@click.group(invoke_without_command=True)
@click.option("--entity", help="Only this kind of entity, e.g. refund_request or booking.")
@click.option("--id", "entity_id", help="Only this entity id.")
@click.option("--since", type=click.DateTime(formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"]),
              help="Only rows at or after this date (UTC), YYYY-MM-DD.")
@click.option("--actor", help="Only rows by this actor.")
@click.option("--limit", type=COUNT, default=50, show_default=True)
@DB_OPTION
@click.pass_context
def audit(ctx: click.Context, entity, entity_id, since, actor, limit, db: Path | None) -> None:
    """Show the audit trail, newest first (who did what, when, before and after)."""
    if ctx.invoked_subcommand is not None:
        return
    if since is not None:
        since = since.replace(tzinfo=UTC) if since.time() != time(0) else \
            datetime.combine(since.date(), time(0), tzinfo=UTC)
    df = list_rows(entity=entity, entity_id=entity_id, since=since, actor=actor, limit=limit, db=db)
    if df.empty:
        click.echo("No audit rows match.")
        return
    for row in df.itertuples(index=False):
        when = row.at.strftime("%Y-%m-%d %H:%M:%S")
        click.echo(f"#{row.id:<6} {when}  {row.actor:<12} {row.action:<28} {row.entity} {row.entity_id or ''}"
                   + (f"  note: {row.note}" if row.note else ""))


def register(cli: click.Group) -> None:
    cli.add_command(audit)

"""`payops snapshot`: publish a read-only copy of the database for analysts (cron in single-user mode)."""

from __future__ import annotations

from pathlib import Path

import click

from payops.cli.core import DB_OPTION


@click.command()
@click.option("--to", "dest", required=True, type=click.Path(path_type=Path),
              help="The snapshot file to write (its folder must exist); replaced atomically.")
@DB_OPTION
def snapshot(dest: Path, db: Path | None) -> None:
    """Copy the database to a snapshot file that analysts read instead of the live one.

    The copy is consistent (one transaction) and complete (tables, views, sequences); it is
    built under a hidden name beside PATH and renamed into place, so readers never see half of
    one and a killed run leaves the previous snapshot. `snapshot_info` in it says when it was taken.
    """
    from payops.snapshot import snapshot as take

    click.echo(take(dest, db).summary())


def register(cli: click.Group) -> None:
    cli.add_command(snapshot)

"""`payops serve`: the one writer of team mode, run by JupyterHub as a managed service."""

from __future__ import annotations

from pathlib import Path

import click

from payops.cli.core import DB_OPTION


@click.command()
@click.option("--host", default=None, help="Address (default: from JUPYTERHUB_SERVICE_URL, else 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port (default: from JUPYTERHUB_SERVICE_URL, else 8791).")
@DB_OPTION
@click.option("--snapshot", "snapshot", type=click.Path(path_type=Path), default=None,
              help="Publish the analysts' read-only snapshot to this file: at start, then on a schedule.")
@click.option("--snapshot-every", "every", type=click.FloatRange(min=0.01), default=None, metavar="MINUTES",
              help="Minutes between snapshots (default 15; needs --snapshot).")
def serve(host: str | None, port: int | None, db: Path | None, snapshot: Path | None, every: float | None) -> None:
    """Run the team-mode writer: refund decisions and webhooks, as the hub user of each request.

    JupyterHub starts it (hub/jupyterhub_config.py); it needs [roles] in payops.toml, the audit
    key (PAYOPS_AUDIT_KEY_FILE) and the hub's service environment. SIGINT/SIGTERM stops it.
    """
    from payops.service.app import DEFAULT_SNAPSHOT_MINUTES, SnapshotSchedule, run

    if every is not None and snapshot is None:
        raise click.UsageError("--snapshot-every needs --snapshot PATH (the file to publish)")
    schedule = SnapshotSchedule(snapshot, every or DEFAULT_SNAPSHOT_MINUTES) if snapshot else None
    run(host=host, port=port, db=db, log=lambda line: click.echo(line), snapshot=schedule)


def register(cli: click.Group) -> None:
    cli.add_command(serve)

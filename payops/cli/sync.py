"""Sync commands: ``payops sync``, ``payops webhooks serve``, ``payops events apply``."""

from __future__ import annotations

import json
from pathlib import Path

import click

from payops.cli.core import DB_OPTION
from payops.streams import STREAMS
from payops.text import plural


@click.command()
@click.option("--full", is_flag=True, help="Re-list every selected stream (a backfill); an "
              "interrupted full run is finished instead, without listing again what it finished.")
@click.option("--streams", default=None, metavar="A,B",
              help=f"Only these streams (comma-separated): {', '.join(STREAMS)}.")
@click.option("--workers", type=click.IntRange(1, 64), default=None,
              help="Concurrent HTTP workers (they share one rate limiter); default: enough to keep "
                   "the rate limit busy at 0.5 s a request (8, or rate/2 above 16 requests/s).")
@click.option("--since", default=None, metavar="DATE",
              help="Only objects created (backfill) or events (incremental) since DATE (YYYY-MM-DD).")
@click.option("--no-progress", is_flag=True, help="No progress bars.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@DB_OPTION
def sync(full: bool, streams: str | None, workers: int | None, since: str | None, no_progress: bool,
         as_json: bool, db: Path | None) -> None:
    """Sync Stripe into the database.

    The first run (or --full) backfills every stream in parallel, resumably; later runs read
    the Events API since the last cursor. Needs STRIPE_API_KEY (STRIPE_API_BASE for a test server).
    """
    from payops.sync import run

    summary = run(full=full, streams=streams, workers=workers, since=since, db=db,
                  progress=not no_progress)
    if as_json:
        click.echo(json.dumps(summary.as_dict(), indent=2, default=str))
    else:
        click.echo(summary.table())


@click.group()
def webhooks() -> None:
    """Receive Stripe webhooks."""


@webhooks.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=int, default=8787, show_default=True, help="Port to listen on.")
@DB_OPTION
def webhooks_serve(host: str, port: int, db: Path | None) -> None:
    """Serve a webhook endpoint: verify (STRIPE_WEBHOOK_SECRET), store, apply; Ctrl-C stops."""
    from payops.webhooks import serve

    click.echo(f"Listening for Stripe webhooks on http://{host}:{port}/ (Ctrl-C stops)")
    serve(host, port, db=db, log=lambda line: click.echo(line))


@click.group()
def events() -> None:
    """Work with Stripe events."""


@events.command("apply")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@DB_OPTION
def events_apply(file: Path, db: Path | None) -> None:
    """Apply the events in FILE (JSON array, {"data": [...]} list, or NDJSON), idempotently."""
    from payops.webhooks import apply_file

    s = apply_file(file, db=db)
    changed = ", ".join(f"{t}: {c['new']} new, {c['updated']} updated"
                        for t, c in sorted(s.tables.items()))
    click.echo(f"{plural(s.events_new, 'new event')}, {s.events_duplicate} already applied"
               + (f"; {changed}" if changed else ""))


def register(cli: click.Group) -> None:
    cli.add_command(sync)
    cli.add_command(webhooks)
    cli.add_command(events)

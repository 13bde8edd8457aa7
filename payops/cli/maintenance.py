"""Maintenance commands: fix, cleanup, restore, erase-customer, audit verify."""

from __future__ import annotations

from pathlib import Path

import click

from payops import maintenance
from payops.cli.core import DB_OPTION
from payops.text import plural


@click.command()
@click.option("--dry-run", is_flag=True, help="Report what is wrong; change nothing.")
@click.option("--stuck-after", metavar="AGE", default=None,
              help="PROCESSING longer than this is stuck, e.g. 1h or 2d (default: [refunds] stuck_processing_hours).")
@click.option("--kind", "kinds", multiple=True, metavar="KIND",
              help="Only this kind of check (repeatable): " + ", ".join(maintenance.FIX_KINDS) + ".")
@click.option("--archive", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Archive folder whose objects count as present (default: $PAYOPS_ARCHIVE_DIR).")
@DB_OPTION
def fix(dry_run: bool, stuck_after: str | None, kinds: tuple[str, ...], archive: Path | None, db: Path | None) -> None:
    """Find inconsistencies and repair them (one line per finding, an audit row per repair).

    Exits 1 when something is left that could not be repaired (with --dry-run: when
    anything was found).
    """
    findings = maintenance.fix(dry_run=dry_run, stuck_after=stuck_after, kinds=kinds or None, archive=archive, db=db)
    for f in findings:
        click.echo(f.line(dry_run))
    if not findings:
        click.echo("No inconsistencies found.")
        return
    left = [f for f in findings if not f.repaired]
    repaired = len(findings) - len(left)
    if dry_run:
        click.echo(f"{plural(len(findings), 'finding')}; nothing changed (--dry-run).")
        raise SystemExit(1)
    click.echo(f"{plural(len(findings), 'finding')}: {repaired} repaired, {len(left)} left for a person.")
    if left:
        raise SystemExit(1)


@click.command()
@click.option("--older-than", "older_than", metavar="AGE", default="365d", show_default=True,
              help="Archive and delete Stripe objects and events created before now minus AGE (e.g. 365d, 52w, 2y).")
@click.option("--archive", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Archive folder (default: $PAYOPS_ARCHIVE_DIR, data/archive).")
@click.option("--dry-run", is_flag=True, help="Count what would be archived; write and delete nothing.")
@DB_OPTION
def cleanup(older_than: str, archive: Path | None, dry_run: bool, db: Path | None) -> None:
    """Move old Stripe objects and events to a Parquet archive, verify it, then delete them.

    Refund requests, audit rows, bookings and daily_metrics are never deleted.
    """
    result = maintenance.cleanup(older_than, archive=archive, dry_run=dry_run, db=db, progress=True)
    verb = "would archive" if dry_run else "archived and deleted"
    click.echo(f"Cutoff {result.cutoff:%Y-%m-%d %H:%M} UTC, archive {result.archive}")
    for table, n in result.tables.items():
        if n:
            click.echo(f"  {table:<22}{n:>10,}")
    click.echo(f"{plural(result.total, 'row')} {verb}" + (f" ({plural(len(result.files), 'archive file')} written)."
                                                    if not dry_run else "."))


@click.command()
@click.argument("archive", type=click.Path(exists=True, file_okay=False, path_type=Path))
@DB_OPTION
def restore(archive: Path, db: Path | None) -> None:
    """Bring an archive folder back into the database (newer-wins; running it twice is harmless)."""
    result = maintenance.restore(archive, db=db)
    for table, c in result.tables.items():
        click.echo(f"  {table:<22}{c['new']:>8,} new {c['updated']:>8,} updated {c['unchanged']:>8,} unchanged")
    click.echo(f"Restored {result.new:,} new and {result.updated:,} newer row(s) from {archive}.")


@click.command("erase-customer")
@click.argument("customer")
@click.option("--dry-run", is_flag=True, help="Count what would be erased; change nothing.")
@click.option("--archive", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Archive folder to scrub too (default: $PAYOPS_ARCHIVE_DIR).")
@click.option("--exports", "exports", multiple=True, type=click.Path(path_type=Path),
              help="Export folder or file to scrub (repeatable; default: $PAYOPS_REPORTS_DIR and ./exports).")
@click.option("--lake", "lakes", multiple=True, type=click.Path(file_okay=False, path_type=Path),
              help="Parquet lake to scrub too (repeatable): `payops lake export` folders.")
@DB_OPTION
def erase_customer(customer: str, dry_run: bool, archive: Path | None, exports: tuple[Path, ...],
                   lakes: tuple[Path, ...], db: Path | None) -> None:
    """Remove one customer's personal data from every table, the archive and exports (amounts and ids stay)."""
    r = maintenance.erase_customer(customer, dry_run=dry_run, archive=archive, exports=list(exports) or None, db=db)
    verb = "would be scrubbed" if dry_run else "scrubbed"
    for table, n in r.tables.items():
        click.echo(f"  {table:<22}{plural(n, 'row'):>13}")
    click.echo(f"  {'archive files':<22}{r.archive_files:>8,}")
    click.echo(f"  {'export files':<22}{r.export_files:>8,}")
    click.echo(f"Customer {customer}: {plural(sum(r.tables.values()), 'row')} and "
               f"{plural(r.archive_files + r.export_files, 'file')} {verb}.")
    if r.audit_rows_mentioning:
        click.echo(f"Note: this customer's email is in {plural(r.audit_rows_mentioning, 'audit row')}; the audit log "
                   "is append-only and hash-chained, so they were left as they are.")
    from payops.cli.lake import erase_in_lakes

    erase_in_lakes(customer, lakes, dry_run)


@click.command()
@DB_OPTION
def verify(db: Path | None) -> None:
    """Check the audit log's hash chain and that every refund request follows from its history (exit 1)."""
    from payops.service.actions import verify_report  # team mode without the key: asks payops serve

    report = verify_report(db)
    chain = report["chain"]
    if not chain["ok"]:
        click.secho(f"Error: audit chain broken: {chain['message']}", fg="red", err=True)
        raise SystemExit(1)
    click.echo(chain["message"])
    for req in report["requests"]:
        click.echo(req["message"])
    if report["requests"]:
        click.secho(f"Error: {len(report['requests'])} refund request(s) do not follow from their audit history",
                    fg="red", err=True)
        raise SystemExit(1)


def register(cli: click.Group) -> None:
    cli.add_command(fix)
    cli.add_command(cleanup)
    cli.add_command(restore)
    cli.add_command(erase_customer)
    # payops.cli.audit has registered the group already: modules register in name order.
    group = cli.commands.get("audit")
    if not isinstance(group, click.Group):
        raise RuntimeError("the `payops audit` group must be registered before `payops audit verify`")
    group.add_command(verify)

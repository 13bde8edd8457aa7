"""The Parquet lake: ``payops lake export``, ``payops lake show``, ``payops lake verify``."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from payops.cli.core import DB_OPTION

LAKE_DIR = click.argument("lake_dir", metavar="DIR", type=click.Path(file_okay=False, path_type=Path))


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KB", "MB"):
        if value < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"


@click.group()
def lake() -> None:
    """The Parquet lake: every table as Parquet files that DuckDB, Spark and pandas read."""


@lake.command("export")
@click.option("--to", "to", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="The lake folder (new and empty, or a lake exported before: only what changed is rewritten).")
@click.option("--mask-pii", is_flag=True, help="Mask emails, names, phones and addresses, as `payops export` does.")
@click.option("--progress/--no-progress", default=None, help="Show a progress bar (default: on a terminal).")
@DB_OPTION
def export_cmd(to: Path, mask_pii: bool, progress: bool | None, db: Path | None) -> None:
    """Export every table as Hive-partitioned Parquet with a manifest; rewrite only partitions that changed."""
    from payops import lake as lake_mod

    r = lake_mod.export(to, db=db, mask_pii=mask_pii, progress=sys.stderr.isatty() if progress is None else progress)
    verb = f"manifest version {r.version}" if r.changed else f"unchanged, still version {r.version}"
    click.echo(f"Lake {r.lake}: {verb}; {r.rows:,} rows in {r.partitions:,} partitions, "
               f"{r.written:,} partition(s) written ({_size(r.bytes_written)}) in {r.seconds:.1f} s.")
    for t in r.tables.values():
        if t.written or t.removed:
            click.echo(f"  {t.table:<22}{t.rows:>10,} rows  {t.written:>4} written  {t.unchanged:>4} unchanged"
                       f"  {t.removed:>4} removed")


@lake.command("show")
@LAKE_DIR
def show(lake_dir: Path) -> None:
    """Show what the lake's manifest holds: tables, rows, partitions, size, results."""
    from payops import lake as lake_mod

    doc = lake_mod.manifest(lake_dir)
    pii = ", personal data masked" if doc.get("mask_pii") else ""
    click.echo(f"Lake {lake_dir}: manifest version {doc['version']}, exported {doc['exported_at']}, "
               f"schema version {doc['schema_version']}{pii}.")
    for section in ("tables", lake_mod.RESULTS):
        for name, e in sorted(doc.get(section, {}).items()):
            label = name if section == "tables" else f"{section}/{name}"
            by = ", ".join(e["partition_by"]) or "-"
            click.echo(f"  {label:<28}{e['rows']:>10,} rows  {len(e['partitions']):>4} partitions ({by})"
                       f"  {_size(e['bytes']):>9}  checksum {e['checksum']}")


@lake.command("verify")
@LAKE_DIR
def verify(lake_dir: Path) -> None:
    """Check every file against the manifest (SHA-256, rows, checksums); exit 1 on a problem."""
    from payops import lake as lake_mod

    problems = lake_mod.verify(lake_dir)
    for p in problems:
        click.secho(f"  {p}", fg="red")
    if problems:
        raise click.exceptions.Exit(1)
    click.echo(f"Lake {lake_dir}: every file and partition matches the manifest.")


def register(cli: click.Group) -> None:
    cli.add_command(lake)


def analytics_on_spark(start, end, lake_dir: Path | None, master: str | None, load: bool, db: Path | None) -> None:
    """``payops analytics --engine spark``: the daily metrics computed by Spark from the lake."""
    if lake_dir is None:
        raise click.UsageError("--engine spark needs --lake DIR (a lake made by `payops lake export --to DIR`)")
    from payops import spark

    r = spark.compute_daily(lake_dir, start, end, master=master, load=load, db=db)
    if r.rows == 0:
        click.echo(f"daily_metrics (Spark, {r.master}): no days with data in the lake {lake_dir}.")
        return
    click.echo(f"daily_metrics (Spark, {r.master}): {r.rows:,} rows (day x currency) for {r.start} to {r.end} "
               f"in {r.timezone}, from lake version {r.lake_version}, in {r.seconds:.1f} s.")
    click.echo(f"  written to {lake_dir}/results/daily_metrics (manifest version {r.result_version})")
    if r.loaded:
        click.echo("  loaded into the database's daily_metrics")


def erase_in_lakes(customer: str, lakes: tuple[Path, ...] | list[Path], dry_run: bool) -> None:
    """``payops erase-customer --lake DIR``: the same erasure in each lake named."""
    from payops import lake as lake_mod

    for folder in lakes:
        r = lake_mod.erase_customer(folder, customer, dry_run=dry_run)
        verb = "would be rewritten" if dry_run else "rewritten"
        version = f" (manifest version {r.version})" if r.version is not None else ""
        click.echo(f"  lake {folder}: {r.files:,} file(s) {verb}{version}")

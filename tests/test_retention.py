"""`payops cleanup` / `payops restore`: archive, verify, delete; bring back exactly; survive a kill."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import factories as f
import pytest
from click.testing import CliRunner

from payops.cli import cli
from payops.db import connect
from payops.ingest import ingest_objects
from payops.maintenance import ARCHIVE_TABLES, cleanup, restore

DAY = 86400
OLD = f.BASE_TS - 400 * DAY
NOW = datetime.fromtimestamp(f.BASE_TS + DAY, UTC)
TABLES = ARCHIVE_TABLES + ("bookings", "refund_requests", "daily_metrics")


def snapshot() -> dict[str, list[tuple]]:
    with connect() as con:
        return {t: con.execute(f"SELECT * FROM {t} ORDER BY ALL").fetchall() for t in TABLES}


def _payment(n: int, created: int, customer: str) -> list[dict]:
    pi, ch, txn = f"pi_{n}", f"ch_{n}", f"txn_{n}"
    return [
        f.payment_intent(pi, customer=customer, latest_charge=ch, created=created),
        f.charge(ch, payment_intent=pi, customer=customer, balance_transaction=txn, created=created),
        f.balance_transaction(txn, source=ch, created=created),
    ]


@pytest.fixture
def data():
    objs = [f.customer("cus_old", created=OLD - DAY), f.customer("cus_new", created=OLD - DAY)]
    objs += _payment(1, OLD, "cus_old") + _payment(2, OLD + 3 * DAY, "cus_new") + _payment(3, f.BASE_TS, "cus_new")
    objs += [f.refund("re_1", charge="ch_1", payment_intent="pi_1", created=OLD + DAY, balance_transaction=None),
             f.payout("po_1", created=OLD), f.payout("po_2", created=f.BASE_TS)]
    objs.append(f.event(f.charge("ch_1", payment_intent="pi_1", customer="cus_old", created=OLD),
                        id="evt_old", created=OLD + 10))
    ingest_objects(objs)
    with connect() as con:
        con.execute("INSERT INTO refund_requests (payment_intent, charge, customer, amount, currency, reason, status, "
                    "requested_by, requested_at, updated_at) VALUES ('pi_1', 'ch_1', 'cus_old', 1000, 'usd', "
                    "'duplicate', 'PROCESSED', 'ana', ?, ?)", [datetime.fromtimestamp(OLD, UTC)] * 2)
        con.execute("INSERT INTO daily_metrics (day, currency, attempts, succeeded, gross_volume, timezone, "
                    "computed_at) VALUES (?, 'usd', 1, 1, 4500, 'UTC', now())",
                    [datetime.fromtimestamp(OLD, UTC).date()])
    return objs


def ids(table: str) -> list[str]:
    with connect() as con:
        return [r[0] for r in con.execute(f"SELECT id FROM {table} ORDER BY id").fetchall()]


def archived(archive: Path, table: str) -> list[str]:
    files = sorted((archive / table).glob("year=*/month=*/*.parquet"))
    if not files:
        return []
    con = duckdb.connect()
    return [r[0] for r in con.execute(
        "SELECT id FROM read_parquet(?, hive_partitioning = false) ORDER BY id", [[str(p) for p in files]]).fetchall()]


def test_cleanup_archives_then_deletes_and_restore_brings_back(data, tmp_path):
    before = snapshot()
    archive = tmp_path / "arch"
    r = cleanup("365d", archive=archive, now=NOW)
    assert r.tables["payment_intents"] == 2 and r.tables["charges"] == 2 and r.tables["events"] == 1
    assert r.tables["refunds"] == 1 and r.tables["payouts"] == 1
    assert r.tables["customers"] == 0  # cus_old is still named by a refund request
    assert ids("charges") == ["ch_3"] and ids("payouts") == ["po_2"]
    assert archived(archive, "charges") == ["ch_1", "ch_2"]
    assert (archive / "charges" / "year=2024" / "month=09" / "data.parquet").exists()
    after = snapshot()
    # never deleted: refund requests, audit rows, daily metrics, bookings
    assert after["refund_requests"] == before["refund_requests"]
    assert after["daily_metrics"] == before["daily_metrics"]
    with connect() as con:
        (action, after_json) = con.execute(
            "SELECT action, CAST(after AS VARCHAR) FROM audit_log ORDER BY id DESC LIMIT 1").fetchone()
    assert action == "maintenance.cleanup" and '"charges":2' in after_json

    res = restore(archive)
    assert res.new == r.total and res.updated == 0
    assert snapshot() == before
    again = restore(archive)
    assert again.new == 0 and again.updated == 0 and again.audit_id is None
    assert snapshot() == before


def test_old_customer_goes_when_nothing_points_to_it(data, tmp_path):
    with connect() as con:
        con.execute("UPDATE refund_requests SET customer = NULL")
    before = snapshot()
    r = cleanup("365d", archive=tmp_path / "a", now=NOW)
    assert r.tables["customers"] == 1 and ids("customers") == ["cus_new"]
    assert archived(tmp_path / "a", "customers") == ["cus_old"]
    restore(tmp_path / "a")
    assert snapshot() == before


def test_open_refund_request_keeps_its_payment(data, tmp_path):
    with connect() as con:
        con.execute("UPDATE refund_requests SET status = 'PENDING'")
    cleanup("365d", archive=tmp_path / "a", now=NOW)
    assert "pi_1" in ids("payment_intents") and "ch_1" in ids("charges")


def test_dry_run_changes_nothing(data, tmp_path):
    before = snapshot()
    result = CliRunner().invoke(cli, ["cleanup", "--older-than", "30d", "--archive", str(tmp_path / "a"), "--dry-run"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "would archive" in result.output
    assert snapshot() == before and not (tmp_path / "a").exists()


def test_restore_is_newer_wins(data, tmp_path):
    archive = tmp_path / "a"
    cleanup("365d", archive=archive, now=NOW)
    # Stripe sends a newer version of an archived charge after the cleanup.
    ingest_objects([f.charge("ch_1", payment_intent="pi_1", customer="cus_old", created=OLD, amount_refunded=1000)],
                   version=datetime.now(UTC))
    res = restore(archive)
    assert res.tables["charges"] == {"new": 1, "updated": 0, "unchanged": 1}
    with connect() as con:
        assert con.execute("SELECT amount_refunded FROM charges WHERE id = 'ch_1'").fetchone()[0] == 1000


def test_bad_age_is_one_line():
    result = CliRunner().invoke(cli, ["cleanup", "--older-than", "soon"], catch_exceptions=False)
    assert result.exit_code == 2 and result.output.startswith("Error: not an age")


def test_killed_between_archive_and_delete_loses_nothing(data, tmp_path, db_path):
    before = snapshot()
    archive = tmp_path / "arch"
    script = textwrap.dedent(f"""
        import os, signal
        from datetime import datetime, timezone
        from payops.maintenance import cleanup
        cleanup("365d", archive={str(archive)!r}, now=datetime.fromtimestamp({NOW.timestamp()}, timezone.utc),
                on_archived=lambda: os.kill(os.getpid(), signal.SIGKILL))
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert archived(archive, "charges") == ["ch_1", "ch_2"]
    assert snapshot() == before  # killed before deleting: nothing gone

    # rerun: completes, and the archive holds each row once
    r = cleanup("365d", archive=archive, now=NOW)
    assert r.tables["charges"] == 2
    assert archived(archive, "charges") == ["ch_1", "ch_2"]
    assert archived(archive, "events") == ["evt_old"]
    restore(archive)
    assert snapshot() == before


def test_demo_cleanup_then_restore_gives_back_the_same_rows(tmp_path):
    from payops.demo import build_demo
    from payops.metrics import compute_daily, daily

    # `payops cleanup` counts from the real now: the demo ends yesterday, so none of it is in the future
    yesterday = (datetime.now(UTC) - timedelta(days=1)).date()
    build_demo(seed=42, days=400, customers=60, as_of=yesterday, replace=True, progress=False)
    compute_daily()
    before = snapshot()
    archive = tmp_path / "archive"
    runner = CliRunner()
    result = runner.invoke(cli, ["cleanup", "--older-than", "365d", "--archive", str(archive)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "archived and deleted" in result.output
    with connect() as con:
        # what is older than the cutoff and left is only what an open refund request needs
        (left,) = con.execute(
            "SELECT count(*) FROM charges c WHERE c.created < now() - INTERVAL 365 DAY AND NOT EXISTS ("
            " SELECT 1 FROM refund_requests r WHERE r.status IN ('PENDING', 'APPROVED', 'PROCESSING')"
            " AND (r.charge = c.id OR r.payment_intent = c.payment_intent))").fetchone()
    assert left == 0
    middle = snapshot()
    assert len(middle["charges"]) < len(before["charges"])
    # reports of an archived period still render from daily_metrics
    assert middle["daily_metrics"] == before["daily_metrics"]
    old_day = yesterday - timedelta(days=390)
    shown = daily(old_day, old_day + timedelta(days=7))
    assert len(shown) > 0 and shown["gross_volume"].sum() > 0

    result = runner.invoke(cli, ["restore", str(archive)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert snapshot() == before
    result = runner.invoke(cli, ["restore", str(archive)], catch_exceptions=False)
    assert "Restored 0 new and 0 newer" in result.output
    assert snapshot() == before
    result = runner.invoke(cli, ["audit", "verify"], catch_exceptions=False)
    assert result.exit_code == 0


def test_restore_of_an_empty_folder_is_one_line(tmp_path):
    (tmp_path / "empty").mkdir()
    result = CliRunner().invoke(cli, ["restore", str(tmp_path / "empty")], catch_exceptions=False)
    assert result.exit_code == 1 and result.output.startswith("Error: no payops archive")


def test_never_deleted_tables_are_not_archived():
    assert not {"refund_requests", "audit_log", "daily_metrics", "bookings"} & set(ARCHIVE_TABLES)


def test_recomputing_metrics_after_cleanup_keeps_archived_days(data, tmp_path):
    """`payops analytics` after a cleanup must not wipe the archived days' figures."""
    from payops.metrics import compute_daily

    compute_daily()
    before = snapshot()["daily_metrics"]
    old_days = {r[0] for r in before if r[0] < (NOW - timedelta(days=365)).date()}
    assert old_days, "the fixture should have metrics for archived days"
    cleanup("365d", archive=tmp_path / "archive", now=NOW, progress=False)
    compute_daily(min(old_days), NOW.date())  # e.g. a report of an archived period
    after = snapshot()["daily_metrics"]
    assert [r for r in after if r[0] in old_days] == [r for r in before if r[0] in old_days]
    # once restored, the days can be recomputed from their data again
    restore(tmp_path / "archive")
    assert compute_daily() >= len(before)

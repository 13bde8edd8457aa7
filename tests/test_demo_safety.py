"""Issue 13, safety 2 and 6: the demo deletes nothing a user made, and nothing it makes is in the future."""

from __future__ import annotations

import subprocess
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner

from payops import refunds
from payops.cli import cli
from payops.db import connect
from payops.demo import build_demo
from payops.errors import InvalidInput
from payops.streams import STREAMS

AS_OF = date(2026, 11, 20)
SMALL = dict(customers=60, days=20, progress=False)
# 03:00 UTC: the demo used to put its "now" at 12:00 of the day, nine hours ahead of the clock
EARLY = datetime(2026, 11, 20, 3, 7, 30, tzinfo=UTC)


def count(path: Path, sql: str) -> int:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute(sql).fetchone()[0]  # type: ignore[index]  # count(*) always returns a row
    finally:
        con.close()


@pytest.fixture
def demo_db(tmp_path: Path) -> Path:
    path = tmp_path / "demo.duckdb"
    build_demo(path, seed=5, as_of=AS_OF, **SMALL)
    return path


# ------------------------------------------------------------------ safety 2: --replace deletes no user data

def test_replace_of_an_untouched_demo_works(demo_db: Path):
    build_demo(demo_db, seed=6, as_of=AS_OF, replace=True, **SMALL)
    assert count(demo_db, "SELECT count(*) FROM demo_builds WHERE seed = 6") == 1
    assert count(demo_db, "SELECT count(*) FROM demo_builds") == 1


def test_replace_refuses_a_database_with_synced_data(demo_db: Path):
    with connect(demo_db) as con:
        con.execute("INSERT INTO sync_state (stream, \"key\", updated_at) VALUES ('charges', 'all', now())")
    charges = count(demo_db, "SELECT count(*) FROM charges")
    with pytest.raises(InvalidInput, match=r"refusing to replace .*1 sync_state rows \(payops sync\).*nothing was "
                                           r"deleted"):
        build_demo(demo_db, seed=6, as_of=AS_OF, replace=True, **SMALL)
    assert count(demo_db, "SELECT count(*) FROM charges") == charges


def test_replace_refuses_a_database_with_a_users_decision(demo_db: Path):
    pending = refunds.queue(db=demo_db, now=datetime(2026, 11, 20, 12, tzinfo=UTC))
    [result] = refunds.approve(int(pending["id"].iloc[0]), user="ana", note="ok", db=demo_db)
    assert result.ok, result
    audit = count(demo_db, "SELECT count(*) FROM audit_log")
    result = CliRunner().invoke(cli, ["demo", "--replace", "--db", str(demo_db), "--as-of", "2026-11-20", "-q"])
    assert result.exit_code == 2
    assert "refusing to replace" in result.output and "audit rows added after the demo was built" in result.output
    assert "Traceback" not in result.output
    assert count(demo_db, "SELECT count(*) FROM audit_log") == audit


def test_replace_refuses_a_database_that_never_was_a_demo(tmp_path: Path):
    from factories import charge

    from payops.ingest import ingest_objects

    path = tmp_path / "ops.duckdb"
    ingest_objects([charge("ch_1")], db=path)
    with pytest.raises(InvalidInput, match="refusing to replace .*charges rows"):
        build_demo(path, as_of=AS_OF, replace=True, **SMALL)
    assert count(path, "SELECT count(*) FROM charges") == 1


def test_make_demo_builds_its_own_file(repo: Path):
    out = subprocess.run(["make", "-n", "demo"], cwd=repo, capture_output=True, text=True, timeout=60,
                         env={"PATH": "/usr/bin:/bin", "HOME": str(repo)})
    demo_lines = [line for line in out.stdout.splitlines() if " demo " in f" {line} " and "payops" in line]
    assert demo_lines, out.stdout + out.stderr
    for line in demo_lines:
        assert "data/demo.duckdb" in line and "demo.payops.toml" in line, line
    assert "data/payops.duckdb" not in out.stdout


# ------------------------------------------------------------------ safety 6: the demo's clock

TIMES = {
    **{t: ("created", "synced_at") for t in STREAMS},
    "events": ("created", "applied_at"),
    "refund_requests": ("requested_at", "decided_at", "processed_at", "updated_at"),
    "audit_log": ('"at"',),
    "bookings": ("updated_at",),
}


def _latest(path: Path) -> dict[str, datetime]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        con.execute("SET TimeZone = 'UTC'")
        out = {}
        for table, cols in TIMES.items():
            for col in cols:
                value = con.execute(f"SELECT max({col}) FROM {table}").fetchone()[0]  # type: ignore[index]  # max() always returns a row
                if isinstance(value, int):
                    value = datetime.fromtimestamp(value, UTC)
                if value is not None:
                    out[f"{table}.{col}"] = value
        return out
    finally:
        con.close()


@pytest.mark.parametrize("as_of", [None, AS_OF], ids=["default as_of", "as_of today"])
def test_nothing_the_demo_makes_is_after_the_real_clock(tmp_path: Path, as_of: date | None):
    path = tmp_path / "early.duckdb"
    summary = build_demo(path, seed=5, as_of=as_of, now=EARLY, **SMALL)
    assert summary.as_of == AS_OF
    latest = _latest(path)
    assert latest["charges.created"] > EARLY - timedelta(days=1)  # the data does reach "today"
    late = {k: v for k, v in latest.items() if v > EARLY}
    assert not late, f"in the future of {EARLY}: {late}"


def test_an_as_of_in_the_future_is_refused(tmp_path: Path):
    with pytest.raises(InvalidInput, match="in the future"):
        build_demo(tmp_path / "f.duckdb", as_of=date(2026, 11, 21), now=EARLY, **SMALL)


def test_fix_right_after_the_demo_finds_nothing(tmp_path: Path):
    from payops import maintenance, metrics

    path = tmp_path / "fix.duckdb"
    build_demo(path, seed=5, now=EARLY, **SMALL)
    metrics.compute_daily(db=path)  # what `make demo` runs next (payops analytics)
    found = maintenance.fix(dry_run=True, db=path, now=EARLY + timedelta(minutes=5))
    # nothing of any kind: the demo's pending refund, pending SEPA charge and authorised-only
    # (uncaptured, or released) charges are states Stripe has, not inconsistencies
    assert [f.line(dry_run=True) for f in found] == []
    out = CliRunner().invoke(cli, ["fix", "--dry-run", "--db", str(path)])
    assert "charge_" not in out.output, out.output
    assert count(path, "SELECT count(*) FROM refund_requests WHERE status = 'PROCESSING'") >= 1


def test_status_alerts_and_queue_agree_on_pending(tmp_path: Path):
    from payops import metrics
    from payops.status import overview

    path = tmp_path / "pending.duckdb"
    build_demo(path, seed=5, now=EARLY, **SMALL)
    now = EARLY + timedelta(minutes=5)
    ov = overview(path, now=now)
    queue = refunds.queue_count(status=("PENDING",), db=path, now=now)
    by_priority = refunds.pending_by_priority(db=path, now=now)
    [kpi] = [k for k in metrics.alerts(db=path, now=now) + metrics.kpis(
        EARLY.date() - timedelta(days=1), EARLY.date() - timedelta(days=1), db=path, as_of=now)
        if k["name"] == "pending_requests"][:1]
    assert ov.pending_total == queue == kpi["value"] > 0
    assert sum(v for k, v in by_priority.items() if k in ("URGENT", "HIGH", "NORMAL")) <= queue


def test_make_help_shows_no_make_variables(repo: Path):
    out = subprocess.run(["make", "-s", "help"], cwd=repo, capture_output=True, text=True, timeout=60,
                         env={"PATH": "/usr/bin:/bin", "HOME": str(repo)})
    assert out.returncode == 0 and "demo" in out.stdout
    assert "$(" not in out.stdout, out.stdout

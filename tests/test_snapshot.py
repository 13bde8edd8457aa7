"""Snapshots for analysts (issue 11, item 5): complete, consistent, atomic, and published by the writer."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner
from servers import free_port, wait_for_port
from test_refunds import write_toml

from payops.cli import cli
from payops.db import connect
from payops.demo import build_demo
from payops.errors import InvalidInput
from payops.snapshot import SNAPSHOT_TABLE, snapshot, snapshot_info

AS_OF = date(2026, 11, 20)
NOW = datetime(2026, 11, 21, 9, 30, tzinfo=UTC)
PAYOPS = str(Path(sys.executable).with_name("payops"))


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("snapshot") / "demo.duckdb"
    build_demo(path, seed=5, customers=40, days=20, as_of=AS_OF, progress=False)
    return path


def fingerprint(path: Path) -> dict[str, object]:
    """Per table: row count and a checksum of every row's content; plus views and sequences."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        tables = [r[0] for r in con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'main' ORDER BY 1").fetchall()]
        out: dict[str, object] = {}
        for t in tables:
            row = "CAST(r AS VARCHAR)"
            out[t] = con.execute(f"SELECT count(*), md5(coalesce(string_agg({row}, chr(10) ORDER BY {row}), '')) "
                                 f'FROM "{t}" AS r').fetchall()[0]
        out["views"] = con.execute("SELECT view_name, sql FROM duckdb_views() WHERE NOT internal ORDER BY 1").fetchall()
        out["sequences"] = con.execute(
            "SELECT sequence_name, start_value, last_value FROM duckdb_sequences() ORDER BY 1").fetchall()
        return out
    finally:
        con.close()


def test_a_snapshot_equals_its_source_table_for_table(demo, tmp_path):
    snap = tmp_path / "snap.duckdb"
    result = snapshot(snap, demo, now=NOW)
    source, copy = fingerprint(demo), fingerprint(snap)
    assert copy.pop(SNAPSHOT_TABLE)[0] == 1  # type: ignore[index]
    assert copy == source
    assert len([t for t in source if t not in ("views", "sequences")]) == result.tables - 1
    assert source["refund_requests"][0] > 0 and source["views"] and source["sequences"]  # type: ignore[index]
    with connect(snap, read_only=True) as con:
        assert snapshot_info(con) == {"taken_at": NOW, "source": str(demo), "taken_by": "payops snapshot"}
        # the sequences continue where the source's stand: a new id never repeats one in the copy
        top = con.execute("SELECT max(id) FROM refund_requests").fetchall()[0][0]
    with connect(demo, read_only=True) as con:
        assert snapshot_info(con) is None
    with connect(snap) as con:
        assert con.execute("SELECT nextval('refund_request_ids')").fetchall()[0][0] > top
    assert not list(tmp_path.glob(".payops-snapshot-*")), "no temporary file is left behind"


def test_a_snapshot_of_a_snapshot_describes_itself(demo, tmp_path):
    first, second = tmp_path / "a.duckdb", tmp_path / "b.duckdb"
    snapshot(first, demo, now=NOW)
    later = NOW.replace(hour=10)
    snapshot(second, first, now=later, taken_by="cron")
    with connect(second, read_only=True) as con:
        assert con.execute(f"SELECT count(*) FROM {SNAPSHOT_TABLE}").fetchall()[0][0] == 1
        assert snapshot_info(con) == {"taken_at": later, "source": str(first), "taken_by": "cron"}


def test_a_snapshot_replaces_the_previous_one_and_readers_of_the_old_file_keep_it(demo, tmp_path):
    snap = tmp_path / "snap.duckdb"
    snapshot(snap, demo, now=NOW)
    reader = duckdb.connect(str(snap), read_only=True)  # an analyst in the middle of a long query
    try:
        later = NOW.replace(hour=11)
        snapshot(snap, demo, now=later)
        assert reader.execute(f"SELECT taken_at FROM {SNAPSHOT_TABLE}").fetchall()[0][0] == NOW
    finally:
        reader.close()
    with connect(snap, read_only=True) as con:
        assert snapshot_info(con)["taken_at"] == later  # type: ignore[index]


def test_a_snapshot_reads_while_the_live_file_is_held(demo, tmp_path):
    """The point of it: the live file is held by a writer, the snapshot is not."""
    snap = tmp_path / "snap.duckdb"
    snapshot(snap, demo)
    live = tmp_path / "live.duckdb"
    shutil.copyfile(demo, live)
    env = {**os.environ, "PAYOPS_DB_TIMEOUT": "0.5"}
    holder = duckdb.connect(str(live))  # what payops serve's writer holds during a change
    try:
        out = subprocess.run([PAYOPS, "query", "--db", str(snap), "--format", "csv",
                              "SELECT count(*) AS n FROM refund_requests"],
                             env=env, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        assert out.stdout.split() == ["n", str(fingerprint(demo)["refund_requests"][0])]  # type: ignore[index]
        busy = subprocess.run([PAYOPS, "query", "--db", str(live), "SELECT 1"], env=env, capture_output=True,
                              text=True, timeout=120)
        assert busy.returncode != 0 and "busy" in busy.stderr
    finally:
        holder.close()


def test_status_shows_when_a_snapshot_was_taken(demo, tmp_path):
    snap = tmp_path / "snap.duckdb"
    snapshot(snap, demo, now=NOW)
    out = CliRunner().invoke(cli, ["status", "--db", str(snap), "--date", "2026-11-19"], catch_exceptions=False)
    assert out.exit_code == 0, out.output
    assert f"snapshot of {demo} taken 2026-11-21 09:30 UTC by payops snapshot" in out.output
    live = CliRunner().invoke(cli, ["status", "--db", str(demo), "--date", "2026-11-19"], catch_exceptions=False)
    assert "snapshot of" not in live.output


def test_the_cli_takes_a_snapshot(demo, tmp_path):
    snap = tmp_path / "snap.duckdb"
    out = CliRunner().invoke(cli, ["snapshot", "--to", str(snap), "--db", str(demo)], catch_exceptions=False)
    assert out.exit_code == 0, out.output
    assert out.output.startswith(f"snapshot {snap}: ") and "rows of" in out.output
    assert fingerprint(snap)["charges"] == fingerprint(demo)["charges"]


@pytest.mark.parametrize("case", ["missing db", "missing folder", "a folder", "the database itself"])
def test_cli_errors_are_one_line(demo, tmp_path, case):
    db, dest = str(demo), str(tmp_path / "snap.duckdb")
    expected = {"missing db": "no database at", "missing folder": "does not exist (create it first)",
                "a folder": "is a folder", "the database itself": "is the database itself"}[case]
    if case == "missing db":
        db = str(tmp_path / "nothing.duckdb")
    elif case == "missing folder":
        dest = str(tmp_path / "no" / "such" / "snap.duckdb")
    elif case == "a folder":
        dest = str(tmp_path)
    else:
        dest = str(demo.parent / "." / demo.name)
    out = subprocess.run([PAYOPS, "snapshot", "--to", dest, "--db", db], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode in (1, 2)
    assert out.stdout == "" and "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and expected in lines[0], out.stderr
    assert not Path(tmp_path / "nothing.duckdb").exists(), "a snapshot never creates the database it copies"
    assert not list(tmp_path.glob(".payops-snapshot-*"))


def test_the_library_refuses_the_same_bad_destinations(demo, tmp_path):
    for dest in (tmp_path, tmp_path / "no" / "x.duckdb", demo):
        with pytest.raises(InvalidInput):
            snapshot(dest, demo)


_LOOP = """
import sys
from payops.snapshot import snapshot
for i in range(10_000):
    snapshot(sys.argv[2], sys.argv[1])
    print(i, flush=True)
"""


@pytest.mark.slow
def test_a_killed_snapshot_leaves_the_previous_one(tmp_path):
    """kill -9 while a copy is being written: the published snapshot stays whole, the leftover goes."""
    big = tmp_path / "big.duckdb"
    build_demo(big, seed=3, progress=False)  # the default demo's size
    snap = tmp_path / "out" / "snap.duckdb"
    snap.parent.mkdir()
    snapshot(snap, big, now=NOW)
    before = fingerprint(snap)
    proc = subprocess.Popen([sys.executable, "-c", _LOOP, str(big), str(snap)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "0"  # one whole snapshot done
        deadline = time.monotonic() + 120
        while not list(snap.parent.glob(".payops-snapshot-*")):  # the next one is being written
            assert proc.poll() is None and time.monotonic() < deadline, "no snapshot in progress was seen"
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    after = fingerprint(snap)
    # whichever snapshot is in place (the one before, or one that was renamed just before the kill) is whole
    after.pop(SNAPSHOT_TABLE)
    before.pop(SNAPSHOT_TABLE)
    assert after == before
    assert not Path(f"{snap}.wal").exists()
    snapshot(snap, big)  # the next run sweeps what the killed one left
    assert not list(snap.parent.glob(".payops-snapshot-*"))


ROLES = {"viewer": ["vic"], "reviewer": ["ana", "ben"], "senior": ["carla"], "processor": ["ben"]}


def _wait(predicate, what: str, proc: subprocess.Popen, log: Path, timeout: float = 120.0):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if proc.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"{what}: not seen (service log: {log.read_text()[-2000:]})")
        time.sleep(0.1)


def _taken_at(snap: Path) -> str | None:
    out = subprocess.run([PAYOPS, "query", "--db", str(snap), "--format", "csv",
                          f"SELECT taken_at, taken_by FROM {SNAPSHOT_TABLE}"], capture_output=True, text=True,
                         timeout=120)
    return out.stdout.splitlines()[1] if out.returncode == 0 and "payops serve" in out.stdout else None


@pytest.mark.slow
def test_payops_serve_publishes_snapshots_on_its_schedule(tmp_path, db_path):
    build_demo(db_path, seed=4, customers=30, days=10, as_of=AS_OF, progress=False)
    write_toml(tmp_path, ROLES)
    folder = tmp_path / "published"
    folder.mkdir()
    snap = folder / "payops.duckdb"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTERHUB_", "PAYOPS_AUDIT"))}
    env.update(PAYOPS_AUDIT_KEY="snapshot-test-audit-key-0123456789", JUPYTERHUB_API_TOKEN="t",
               JUPYTERHUB_API_URL="http://127.0.0.1:9/hub/api", JUPYTERHUB_SERVICE_NAME="payops",
               JUPYTERHUB_SERVICE_URL=f"http://127.0.0.1:{port}", JUPYTERHUB_SERVICE_PREFIX="/services/payops/")
    # a bad snapshot path stops it at start, in one line
    bad = subprocess.run([PAYOPS, "serve", "--snapshot", str(tmp_path / "nope" / "x.duckdb")], env=env,
                         capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert bad.returncode == 2 and "does not exist" in bad.stderr and "Traceback" not in bad.stderr
    log = tmp_path / "serve.log"
    with log.open("w") as out:
        proc = subprocess.Popen([PAYOPS, "serve", "--snapshot", str(snap), "--snapshot-every", "0.02"], env=env,
                                cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for_port("127.0.0.1", port, timeout=120, proc=proc)
        first = _wait(lambda: _taken_at(snap), "the snapshot taken at start", proc, log)
        # read with `payops query` while the service runs; then a newer one on the schedule
        _wait(lambda: (t := _taken_at(snap)) and t != first, "a second, scheduled snapshot", proc, log)
        # a failing snapshot is one log line, and the service goes on
        shutil.rmtree(folder)
        _wait(lambda: "failed" in log.read_text(), "the failure logged", proc, log)
        folder.mkdir()
        _wait(lambda: _taken_at(snap), "a snapshot after the failure", proc, log)
        assert proc.poll() is None
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    text = log.read_text()
    assert "Traceback" not in text and "snapshot-test-audit-key" not in text
    assert f"snapshot to {snap} failed: snapshot destination folder {folder} does not exist" in text
    # the snapshot's audit rows and refund requests are the live ones (the writer sealed the chain at start)
    assert fingerprint(snap)["audit_log"] == fingerprint(db_path)["audit_log"]

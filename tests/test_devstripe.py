"""Issue 13, the whole product offline: `make demo-stripe`'s stand-in (payops/devstripe.py).

The stand-in and the webhook receiver run as the Makefile runs them (``python -m
payops.devstripe ... --env-file F`` and ``payops webhooks serve``, separate processes on
127.0.0.1); ``payops sync`` and ``payops refunds process`` run as commands against them.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from servers import free_port, wait_for_port

from payops.db import connect
from payops.demo import build_demo
from payops.devstripe import API_KEY, sign

pytestmark = pytest.mark.slow

AS_OF = date(2026, 11, 20)
PAYOPS = str(Path(sys.executable).with_name("payops"))


def test_sign_is_stripes_scheme():
    header = sign(b'{"id": "evt_1"}', "whsec_x", 1700000000)
    mac = hmac.new(b"whsec_x", b'1700000000.{"id": "evt_1"}', hashlib.sha256).hexdigest()
    assert header == f"t=1700000000,v1={mac}"


def read_env(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        name, _, value = line.removeprefix("export ").partition("=")
        out[name] = value
    return out


def stop(proc: subprocess.Popen) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
    return proc.wait(timeout=10)


@pytest.fixture
def offline(tmp_path: Path) -> Iterator[dict]:
    """A demo database (loaded by the stand-in), a fresh copy of it (the one synced), both servers."""
    demo = tmp_path / "demo.duckdb"
    build_demo(demo, seed=5, as_of=AS_OF, customers=60, days=20, progress=False)
    db = tmp_path / "copy.duckdb"
    shutil.copy(demo, db)
    stripe_port, hook_port = free_port(), free_port()
    env_file = tmp_path / "devstripe.env"
    stand_in = subprocess.Popen(
        [sys.executable, "-m", "payops.devstripe", "--db", str(demo), "--port", str(stripe_port),
         "--webhook-url", f"http://127.0.0.1:{hook_port}/webhooks", "--env-file", str(env_file)],
        stdout=open(tmp_path / "devstripe.log", "wb"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    receiver = None
    try:
        deadline = time.monotonic() + 60
        while not env_file.exists():
            assert stand_in.poll() is None, (tmp_path / "devstripe.log").read_text()
            assert time.monotonic() < deadline, "the stand-in wrote no env file"
            time.sleep(0.1)
        env = {**os.environ, **read_env(env_file), "PAYOPS_DB": str(db)}
        receiver = subprocess.Popen([PAYOPS, "webhooks", "serve", "--port", str(hook_port)], env=env,
                                    stdout=open(tmp_path / "webhooks.log", "wb"), stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL)
        wait_for_port("127.0.0.1", hook_port, 30, proc=receiver)
        yield {"env": env, "db": db, "tmp": tmp_path, "env_file": env_file, "stripe_port": stripe_port}
    finally:
        assert receiver is None or stop(receiver) in (0, -signal.SIGTERM)
        assert stop(stand_in) == 0
    assert not env_file.exists()  # the stand-in removes its env file (and secret) when it stops


def run(args: list[str], env: dict) -> str:
    out = subprocess.run([PAYOPS, *args], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def events_of(db: Path, refund_id: str) -> list[tuple[str, str]]:
    with connect(db, read_only=True, timeout=30) as con:
        return con.execute("SELECT id, type FROM events WHERE object_id = ? ORDER BY id", [refund_id]).fetchall()


def test_sync_process_and_a_signed_webhook_offline(offline: dict):
    env, db = offline["env"], offline["db"]
    assert read_env(offline["env_file"]) == {
        "STRIPE_API_BASE": f"http://127.0.0.1:{offline['stripe_port']}", "STRIPE_API_KEY": API_KEY,
        "STRIPE_WEBHOOK_SECRET": env["STRIPE_WEBHOOK_SECRET"]}
    assert env["STRIPE_WEBHOOK_SECRET"].startswith("whsec_")

    run(["sync", "--no-progress"], env)
    with connect(db, read_only=True) as con:
        synced = con.execute("SELECT count(*) FROM charges WHERE synced_at IS NOT NULL").fetchone()
    assert synced is not None and synced[0] > 0

    with connect(db, read_only=True) as con:
        approved = con.execute("SELECT id FROM refund_requests WHERE status = 'APPROVED' ORDER BY id").fetchall()
    assert approved, "the demo has approved requests to process"
    rid = approved[0][0]
    run(["refunds", "process"], env)
    with connect(db, read_only=True, timeout=30) as con:
        row = con.execute("SELECT status, stripe_refund_id FROM refund_requests WHERE id = ?", [rid]).fetchone()
    assert row is not None and row[0] == "PROCESSED" and row[1].startswith("re_"), row
    refund_id = row[1]

    deadline = time.monotonic() + 60
    while not any(t == "refund.created" for _, t in events_of(db, refund_id)):
        assert time.monotonic() < deadline, (offline["tmp"] / "devstripe.log").read_text()
        time.sleep(0.2)
    [(event_id, _)] = [e for e in events_of(db, refund_id) if e[1] == "refund.created"]
    with connect(db, read_only=True, timeout=30) as con:
        [(n_webhook,)] = con.execute(
            "SELECT count(*) FROM audit_log WHERE action = 'events.apply' AND after->>'source' = 'webhook'").fetchall()
    assert n_webhook >= 1
    hook_log = (offline["tmp"] / "webhooks.log").read_text()
    assert f"200 refund.created {event_id}" in hook_log
    # the same event read again by an incremental sync is a duplicate: still stored once
    run(["sync", "--no-progress"], env)
    assert [e for e in events_of(db, refund_id) if e[0] == event_id] == [(event_id, "refund.created")]

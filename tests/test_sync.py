"""payops.sync against the project's fake Stripe server (real HTTP on 127.0.0.1)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import orjson
import pytest
from click.testing import CliRunner
from fake_stripe import FakeStripe, build_account

from payops import query
from payops.cli import cli
from payops.errors import InvalidInput
from payops.stripe_api import get_client
from payops.sync import STREAM_OBJECTS, STREAMS, run
from payops.webhooks import apply_events

pytestmark = pytest.mark.slow  # every test starts a fake Stripe HTTP server

KEY = "sk_test_payopssync00wxyz"
DAY = 86400


def make_fake(n_payments=400, *, seed=11, **kw) -> FakeStripe:
    now = int(time.time())
    f = FakeStripe(seed=seed, **kw)
    build_account(f, 40, n_payments, now - 90 * DAY, now - 120, seed=seed)
    return f


@pytest.fixture
def env(monkeypatch):
    def setup(fake: FakeStripe, rps: str = "1000"):
        monkeypatch.setenv("STRIPE_API_KEY", KEY)
        monkeypatch.setenv("STRIPE_API_BASE", fake.url)
        monkeypatch.setenv("PAYOPS_STRIPE_RPS", rps)
    return setup


def assert_exact(fake: FakeStripe) -> None:
    """Every stream holds exactly the server's objects, with the server's contents."""
    for stream, otype in STREAM_OBJECTS.items():
        want = {o["id"]: o for o in fake.objects(otype)}
        rows = query(f"SELECT id, raw FROM {stream}")
        got = {i: orjson.loads(r) for i, r in zip(rows["id"], rows["raw"], strict=False)}
        assert set(got) == set(want), f"{stream}: {len(got)} rows, server has {len(want)}"
        for oid, obj in want.items():
            assert got[oid] == obj, f"{stream} {oid} differs from the server"
    # every settled automatic payout's balance transactions (GET /v1/balance_transactions?payout=)
    links = query("SELECT payout, balance_transaction FROM payout_transactions")
    got_links: dict[str, set] = {}
    for po, txn in zip(links["payout"], links["balance_transaction"], strict=True):
        got_links.setdefault(po, set()).add(txn)
    want_links = {p["id"]: set(fake.payout_txns(p["id"]) or ()) for p in fake.objects("payout")
                  if p["status"] in ("paid", "in_transit") and fake.payout_txns(p["id"])}
    assert got_links == want_links


def test_parallel_backfill_is_exact_and_split_into_windows(env):
    with make_fake() as fake:
        env(fake)
        # Charges alone first: its window is the only one open, so a split is always wanted
        # (with every stream open at once, whether charges is split depends on timing).
        first = run(streams="charges", workers=4, progress=False)
        assert first.mode == "backfill" and first.streams["charges"]["new"] == 400
        windows = query("SELECT stream, count(*) AS n FROM sync_state WHERE key LIKE 'w-%' "
                        "GROUP BY stream").set_index("stream")["n"]
        assert windows["charges"] > 1  # the range was split and fetched concurrently

        summary = run(workers=4, progress=False)  # the other streams, all at once
        assert_exact(fake)
        # charges had a cursor (events), the others were backfilled
        assert summary.mode == "mixed" and summary.requests > 0 and not summary.fallbacks
        assert summary.streams["charges"]["new"] == 0
        cursors = query("SELECT count(*) AS n FROM sync_state WHERE key = 'events'")["n"][0]
        assert cursors == len(STREAMS)

        again = run(workers=4, progress=False)  # incremental: nothing changed
        assert again.new == 0 and again.updated == 0
        assert_exact(fake)


def test_thirty_percent_429s_still_exact(env):
    with make_fake(300, seed=12) as fake:
        env(fake)
        fake.fail_429_ratio = 0.3
        api = get_client(backoff=0.01, max_attempts=40)
        summary = run(full=True, workers=6, api=api, progress=False)
        assert summary.rate_limited > 0
        assert_exact(fake)


def test_killed_sync_resumes_to_exactly_the_server(env, tmp_path, db_path):
    with make_fake(900, seed=13, latency=0.05) as fake:
        environ = {**os.environ, "STRIPE_API_KEY": KEY, "STRIPE_API_BASE": fake.url,
                   "PAYOPS_STRIPE_RPS": "20", "PAYOPS_DB": str(db_path)}
        proc = subprocess.Popen([sys.executable, "-m", "payops", "sync", "--full", "--workers", "3",
                                 "--no-progress"], env=environ, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while sum(1 for r in list(fake.requests) if r["status"] == 200) < 15:
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline
            time.sleep(0.02)
        time.sleep(0.3)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        stored = sum(query(f"SELECT count(*) AS n FROM {s}")["n"][0] for s in STREAMS)
        total = sum(len(fake.objects(t)) for t in STREAM_OBJECTS.values())
        assert stored < total  # killed mid-way
        open_windows = query("SELECT count(*) AS n FROM sync_state WHERE key LIKE 'w-%' AND NOT done")["n"][0]
        assert open_windows > 0

        env(fake)
        summary = run(full=True, workers=3, progress=False)
        assert any("resumed" in n for n in summary.notes)
        assert_exact(fake)
        # resumed, not restarted: only what was missing was fetched (every committed page
        # was committed with its checkpoint, so nothing is fetched twice; a stream the killed
        # run had finished is not listed again)
        assert summary.new == total - stored
        assert sum(r["unchanged"] for r in summary.streams.values()) == 0


def test_late_refund_and_out_of_order_duplicate_events_end_newest(env):
    with make_fake(200, seed=14) as fake:
        env(fake)
        run(workers=4, progress=False)
        charge = next(c for c in fake.objects("charge") if c["status"] == "succeeded"
                      and not c["refunded"] and not c["disputed"] and c["amount_refunded"] == 0)
        # later: the fake's clock moves on, the refund's events are newer than the backfill
        fake.set_now(int(time.time()) + 5)
        refund = get_client().create_refund(charge=charge["id"], amount=charge["amount"] // 2,
                                            idempotency_key="late-1")
        summary = run(workers=4, progress=False)
        assert summary.events_new >= 3
        row = query("SELECT amount_refunded, refunded FROM charges WHERE id = ?", [charge["id"]])
        assert row["amount_refunded"][0] == charge["amount"] // 2 and not row["refunded"][0]
        assert query("SELECT amount FROM refunds WHERE id = ?", [refund["id"]])["amount"][0] == refund["amount"]

        # two later snapshots of the charge, delivered newest first and twice
        t = fake.now()
        full = dict(charge, amount_refunded=charge["amount"], refunded=True)
        older = fake.add_event("charge.refunded", dict(charge, amount_refunded=charge["amount"] - 1), created=t + 10)
        newer = fake.add_event("charge.refunded", full, created=t + 20)
        s = apply_events([newer, older, newer])
        assert s.events_new == 2
        apply_events([older])
        row = query("SELECT amount_refunded, refunded FROM charges WHERE id = ?", [charge["id"]])
        assert row["amount_refunded"][0] == charge["amount"] and row["refunded"][0]
        n = query("SELECT count(*) AS n FROM events WHERE object_id = ?", [charge["id"]])["n"][0]
        again = run(workers=4, progress=False)  # the same events again from Stripe: no change
        assert again.updated == 0
        assert query("SELECT count(*) AS n FROM events WHERE object_id = ?", [charge["id"]])["n"][0] == n


def test_cursor_older_than_retention_relists_and_loses_nothing(env):
    now = int(time.time())
    with make_fake(200, seed=15) as fake:
        fake.set_now(now)
        env(fake)
        run(workers=4, progress=False, now=now)
        # 40 days pass: a refund on an old charge and a new customer; their events exist,
        # but the cursor is past Stripe's retention, so only a re-list can be trusted
        later = now + 40 * DAY
        fake.set_now(later)
        charge = next(c for c in fake.objects("charge") if c["status"] == "succeeded"
                      and not c["refunded"] and not c["disputed"] and c["amount_refunded"] == 0)
        get_client().create_refund(charge=charge["id"], idempotency_key="gap-1")
        summary = run(workers=4, progress=False, now=later)
        assert any("retention" in n and "charges" in n for n in summary.notes)
        assert summary.streams["charges"]["how"].startswith("relist")
        assert_exact(fake)


def test_streams_and_since_narrow_a_run(env):
    with make_fake(150, seed=16) as fake:
        env(fake)
        run(streams="customers,payouts", progress=False)
        assert query("SELECT count(*) AS n FROM customers")["n"][0] == len(fake.objects("customer"))
        assert query("SELECT count(*) AS n FROM charges")["n"][0] == 0
        cutoff = sorted(c["created"] for c in fake.objects("charge"))[75]
        run(full=True, streams=["charges"], since=cutoff, progress=False)
        assert query("SELECT count(*) AS n FROM charges")["n"][0] == sum(
            1 for c in fake.objects("charge") if c["created"] >= cutoff)
        with pytest.raises(InvalidInput, match="unknown stream 'nope'"):
            run(streams="nope", progress=False)


def test_cli_sync_summary_and_rejected_key(env, monkeypatch):
    with make_fake(60, seed=17) as fake:
        env(fake)
        result = CliRunner().invoke(cli, ["sync", "--no-progress", "--workers", "2"],
                                    catch_exceptions=False)
        assert result.exit_code == 0, result.output
        assert "charges" in result.output and "requests" in result.output and "429s" in result.output
        status = CliRunner().invoke(cli, ["status"], catch_exceptions=False)
        assert "windows done" in status.output and "never synced" not in status.output

        monkeypatch.setenv("STRIPE_API_KEY", "rk_bad_key_value_abcd")
        result = CliRunner().invoke(cli, ["sync", "--no-progress"])
        assert result.exit_code == 1
        assert result.output.strip() == "Error: Stripe rejected the API key ending in ...abcd"
        assert "rk_bad_key" not in result.output and "Traceback" not in result.output


def test_a_busy_day_of_events_is_paged_concurrently_and_ends_newest(env):
    """An incremental sync of ~1,500 events: split by created and read side by side."""
    now = int(time.time())
    with make_fake(300, seed=18) as fake:
        fake.set_now(now)
        env(fake)
        run(workers=4, progress=False, now=now)
        before = len(fake.requests)
        later = now + 3600
        fake.set_now(later)
        charges = sorted(fake.objects("charge"), key=lambda c: c["id"])
        # two snapshots per charge, spread over the hour: the newer (higher amount_refunded
        # marker in metadata) must win wherever the two land in the split
        for i, c in enumerate(charges):
            t_old = now + 1 + (i * 7) % 1700
            t_new = now + 1800 + (i * 11) % 1700
            fake.add_event("charge.updated", dict(c, metadata={"seen": "newer"}), created=t_new)
            fake.add_event("charge.updated", dict(c, metadata={"seen": "older"}), created=t_old)
        for c in charges[:50]:  # and events of another stream, at one moment
            fake.add_event("customer.updated", fake.get(c["customer"]), created=now + 60)
        summary = run(workers=4, progress=False, now=later + 3600)
        assert summary.events_new == 2 * len(charges) + 50
        assert set(query("SELECT DISTINCT json_extract_string(metadata, '$.seen') AS s FROM charges")["s"]) == {"newer"}
        windows = {(r["query"].get("created", {}).get("gte"), r["query"].get("created", {}).get("lt"))
                   for r in fake.requests[before:] if r["path"] == "/v1/events"}
        assert len(windows) > 2  # the events list was split by created, not one page chain
        newest = max(e["created"] for e in fake.events())
        cursor = int(query("SELECT cursor FROM sync_state WHERE stream = 'charges' AND key = 'events'")["cursor"][0])
        assert cursor == min(newest, later + 3600 - 180) - 300

        again = run(workers=4, progress=False, now=later + 3600)  # the overlap is re-read: harmless
        assert again.events_new == 0 and again.updated == 0

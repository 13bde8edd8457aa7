"""Roles, four-eyes, and two processes deciding the same request at once."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner
from test_refunds import audit_rows, seed_payment, write_toml

from payops import refunds as R
from payops.cli import cli
from payops.db import connect

ROLES = {"viewer": ["eve"], "reviewer": ["ana", "ben"], "senior": ["carla", "dora"], "processor": ["ben"]}


@pytest.fixture
def roles(tmp_path):
    write_toml(tmp_path, ROLES)


def test_missing_role_is_refused_and_changes_nothing(roles):
    seed_payment()
    r = R.request("pi_1", reason="duplicate", amount=1000, requested_by="sam")
    [res] = R.approve(r["id"], user="eve")
    assert not res.ok and "eve lacks the reviewer or senior role" in res.message
    [res] = R.reject(r["id"], user="eve", note="no")
    assert not res.ok and "reviewer" in res.message
    assert R.get(r["id"])["status"] == "PENDING" and len(audit_rows(r["id"])) == 1
    [res] = R.approve(r["id"], user="ana")
    assert res.ok
    [res] = R.process(user="ana", api=object())
    assert not res.ok and "ana lacks the processor role" in res.message
    assert R.get(r["id"])["status"] == "APPROVED"
    assert R.reconcile(user="ana", api=object()) == []


def test_a_senior_may_approve_a_small_request(roles):
    seed_payment()
    r = R.request("pi_1", reason="duplicate", amount=1000)
    [res] = R.approve(r["id"], user="carla")
    assert res.ok and res.status == "APPROVED"


def test_four_eyes_for_large_requests(roles):
    seed_payment(amount=9000)
    r = R.request("pi_1", reason="requested_by_customer", amount=6000, requested_by="dora")
    rid = r["id"]
    [first] = R.approve(rid, user="ana", note="looks right")
    assert first.ok and first.status == "PENDING" and "needs a second approval" in first.message
    g = R.get(rid)
    assert (g["status"], g["first_approver"], g["decided_by"]) == ("PENDING", "ana", None)
    # the first approver cannot approve twice, a reviewer is not a senior, the requester cannot approve
    [again] = R.approve(rid, user="ana")
    assert not again.ok and "senior" in again.message
    [ben] = R.approve(rid, user="ben")
    assert not ben.ok and "ben lacks the senior role" in ben.message
    [dora] = R.approve(rid, user="dora")
    assert not dora.ok and "other than dora, who requested it" in dora.message
    assert R.get(rid)["status"] == "PENDING"
    [second] = R.approve(rid, user="carla")
    assert second.ok and second.status == "APPROVED" and "first by ana" in second.message
    g = R.get(rid)
    assert (g["status"], g["first_approver"], g["second_approver"], g["decided_by"]) == \
        ("APPROVED", "ana", "carla", "carla")
    assert audit_rows(rid) == [("dora", "refund_request.create"), ("ana", "refund_request.approve"),
                               ("carla", "refund_request.approve")]


def test_a_senior_first_approver_cannot_also_be_second(roles):
    seed_payment(amount=9000)
    rid = R.request("pi_1", reason="duplicate", amount=6000, requested_by="sam")["id"]
    assert R.approve(rid, user="carla")[0].status == "PENDING"
    [res] = R.approve(rid, user="carla")
    assert not res.ok and "other than carla, who gave the first one" in res.message
    assert R.approve(rid, user="dora")[0].status == "APPROVED"


def test_a_large_request_can_be_rejected_after_its_first_approval(roles):
    seed_payment(amount=9000)
    rid = R.request("pi_1", reason="duplicate", amount=6000)["id"]
    R.approve(rid, user="ana")
    [res] = R.reject(rid, user="carla", note="not convinced")
    assert res.ok and R.get(rid)["status"] == "REJECTED"


def test_single_user_mode_everyone_holds_every_role():
    seed_payment()
    rid = R.request("pi_1", reason="duplicate", amount=1000)["id"]
    assert R.approve(rid, user="whoever")[0].ok


def test_cli_refusal_names_the_role(roles, monkeypatch):
    seed_payment()
    R.request("pi_1", reason="duplicate", amount=1000)
    monkeypatch.setenv("PAYOPS_USER", "eve")
    out = CliRunner().invoke(cli, ["refunds", "approve", "1"], catch_exceptions=False)
    assert out.exit_code == 1 and "eve lacks the reviewer or senior role" in out.output


RACER = """
import os, sys, time
barrier = sys.argv[1]
while not os.path.exists(barrier):
    time.sleep(0.005)
from payops.cli import main
main(["refunds", "approve", "1", "--note", "mine"])
"""


@pytest.mark.slow
def test_two_processes_approving_at_the_same_moment(tmp_path, roles, db_path):
    seed_payment()
    R.request("pi_1", reason="duplicate", amount=1000)
    barrier = tmp_path / "go"
    procs = {}
    for user in ("ana", "ben"):
        env = {**os.environ, "PAYOPS_USER": user, "PAYOPS_DB": str(db_path), "PAYOPS_DB_TIMEOUT": "30"}
        procs[user] = subprocess.Popen([sys.executable, "-c", RACER, str(barrier)], env=env, cwd=tmp_path,
                                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    time.sleep(1.5)  # both interpreters have started and wait on the barrier (correctness does not depend on it)
    barrier.touch()
    out = {u: (p.wait(timeout=60), p.stdout.read()) for u, p in procs.items()}
    winners = [u for u, (rc, _) in out.items() if rc == 0]
    assert len(winners) == 1, out
    winner = winners[0]
    loser = "ben" if winner == "ana" else "ana"
    rc, text = out[loser]
    assert rc == 1 and f"request 1 was already approved by {winner} at" in text, text
    g = R.get(1)
    assert (g["status"], g["decided_by"]) == ("APPROVED", winner)
    assert audit_rows(1) == [("tester", "refund_request.create"), (winner, "refund_request.approve")]
    with connect() as con:
        assert con.execute("SELECT count(*) FROM audit_log WHERE action = 'refund_request.approve'").fetchone()[0] == 1

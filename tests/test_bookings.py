"""Bookings: CSV import and status changes, both audited; session status drives the session rule."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from test_refunds import seed_payment, write_toml

from payops import bookings as B
from payops import refunds as R
from payops.cli import cli
from payops.db import connect
from payops.errors import InvalidInput, NotFound

CSV = ("booking_id,payment_intent,customer,tutor_id,session_start,status\n"
       "bk_1,pi_1,cus_1,tut_1,2030-01-01T10:00:00Z,scheduled\n"
       "bk_2,pi_2,cus_2,tut_2,2024-01-01T10:00:00+01:00,completed\n")


def test_import_and_reimport(tmp_path):
    path = tmp_path / "bookings.csv"
    path.write_text(CSV)
    assert B.import_csv(path) == {"rows": 2, "new": 2, "updated": 0, "unchanged": 0}
    b = B.get("bk_2")
    assert b["status"] == "completed" and b["session_start"].isoformat() == "2024-01-01T09:00:00+00:00"
    path.write_text(CSV.replace("completed", "no_show"))
    assert B.import_csv(path) == {"rows": 2, "new": 0, "updated": 1, "unchanged": 1}
    with connect() as con:
        rows = con.execute("SELECT actor, action FROM audit_log WHERE entity = 'booking' ORDER BY id").fetchall()
    assert rows == [("tester", "booking.import")] * 2


@pytest.mark.parametrize("text, words", [
    ("booking_id,status\nbk,scheduled\n", "missing column(s) payment_intent"),
    (CSV.replace("scheduled", "maybe"), "line 2: status 'maybe'"),
    (CSV.replace("2030-01-01T10:00:00Z", "tomorrow"), "not an ISO date-time"),
])
def test_bad_csv_writes_nothing(tmp_path, text, words):
    path = tmp_path / "b.csv"
    path.write_text(text)
    with pytest.raises(InvalidInput, match=words.replace("(", r"\(").replace(")", r"\)")):
        B.import_csv(path)
    with connect() as con:
        assert con.execute("SELECT count(*) FROM bookings").fetchone()[0] == 0


def test_set_status_is_audited_and_drives_the_session_rule(tmp_path):
    seed_payment(booking="completed")
    rid = R.request("pi_1", reason="requested_by_customer", amount=1000)["id"]
    assert R.apply_policy() == []
    out = CliRunner().invoke(cli, ["bookings", "set-status", "bk_1", "cancelled", "--note", "tutor ill"],
                             catch_exceptions=False)
    assert out.exit_code == 0 and "Booking bk_1 is now cancelled." in out.output
    with connect() as con:
        row = con.execute("SELECT actor, action, before, after, note FROM audit_log "
                          "WHERE entity = 'booking'").fetchone()
    assert row[:2] == ("tester", "booking.set_status") and "completed" in row[2] and "cancelled" in row[3]
    assert row[4] == "tutor ill"
    [res] = R.apply_policy()
    assert res.ok and R.get(rid)["decided_by"] == "policy"


def test_set_status_errors(tmp_path):
    with pytest.raises(NotFound, match="no booking bk_9"):
        B.set_status("bk_9", "cancelled")
    with pytest.raises(InvalidInput, match="unknown booking status"):
        B.set_status("bk_9", "lost")
    write_toml(tmp_path, {"viewer": ["tester"], "reviewer": ["ana"]})
    out = CliRunner().invoke(cli, ["bookings", "set-status", "bk_9", "cancelled"])
    assert out.exit_code == 1 and "tester lacks the reviewer role" in out.output


def test_cli_import(tmp_path):
    path = tmp_path / "bookings.csv"
    path.write_text(CSV)
    out = CliRunner().invoke(cli, ["bookings", "import", str(path)], catch_exceptions=False)
    assert out.exit_code == 0 and "Imported 2 bookings: 2 new, 0 updated, 0 unchanged." in out.output

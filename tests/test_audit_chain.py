"""`payops audit verify`: the hash chain names the first row altered, inserted or removed."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from click.testing import CliRunner

from payops import audit
from payops.cli import cli
from payops.db import connect, transaction


def _write(n: int, start: int = 0) -> None:
    with connect() as con, transaction(con):
        for i in range(start, start + n):
            audit.record(con, actor="ana", action="refund_request.approve", entity="refund_request",
                         entity_id=i, before={"status": "PENDING"}, after={"status": "APPROVED", "n": i},
                         note=f"note {i}")


def _verify():
    return CliRunner().invoke(cli, ["audit", "verify"], catch_exceptions=False)


def _sql(sql: str, params=None) -> None:
    with connect() as con:
        con.execute(sql, params or [])


def test_untouched_chain_passes():
    _write(6)
    result = _verify()
    assert result.exit_code == 0, result.output
    assert "audit chain intact: 6 rows verified" in result.output
    assert audit.verify_chain().ok


def test_empty_log_passes():
    assert audit.verify_chain().ok and audit.verify_chain().rows == 0


def test_edited_row_is_named():
    _write(6)
    _sql("UPDATE audit_log SET note = 'nothing to see' WHERE id = 3")
    result = _verify()
    assert result.exit_code == 1
    assert "audit row 3 was altered" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    r = audit.verify_chain()
    assert (r.ok, r.problem, r.row_id) == (False, "altered", 3)


def test_edited_json_is_named():
    _write(5)
    _sql("""UPDATE audit_log SET after = '{"n":2,"status":"REJECTED"}' WHERE id = 2""")
    r = audit.verify_chain()
    assert (r.problem, r.row_id) == ("altered", 2)


def test_edit_with_recomputed_hash_is_still_found():
    """A forger who recomputes the edited row's own hash breaks the link to the next row."""
    _write(5)
    with connect() as con:
        row = con.execute('SELECT id, "at", actor, action, entity, entity_id, CAST("before" AS VARCHAR), '
                          "CAST(after AS VARCHAR), note, prev_hash FROM audit_log WHERE id = 3").fetchone()
        forged = audit.row_hash(row[9], row[0], row[1], "mallory", *row[3:9])
        con.execute("UPDATE audit_log SET actor = 'mallory', hash = ? WHERE id = 3", [forged])
    r = audit.verify_chain()
    assert (r.ok, r.problem, r.row_id) == (False, "altered", 3)


def test_deleted_row_is_named():
    _write(6)
    _sql("DELETE FROM audit_log WHERE id = 4")
    result = _verify()
    assert result.exit_code == 1
    assert "audit row 4 was removed" in result.stderr
    r = audit.verify_chain()
    assert (r.problem, r.row_id) == ("removed", 4)


def test_row_appended_by_hand_is_named():
    _write(5)
    _sql("""INSERT INTO audit_log (id, "at", actor, action, entity, entity_id)
            VALUES (nextval('audit_log_ids'), now(), 'mallory', 'refund_request.approve', 'refund_request', '9')""")
    result = _verify()
    assert result.exit_code == 1
    assert "audit row 6 was inserted" in result.stderr


def test_row_inserted_in_the_middle_is_named():
    """An id taken but never used (e.g. by a failed write) leaves a gap; a forger fills it."""
    _write(2)
    with connect() as con, transaction(con):  # id 3 taken in a committed transaction, never written
        con.execute("SELECT nextval('audit_log_ids')")
        con.execute("INSERT INTO sync_state (stream, key, updated_at) VALUES ('x', 'y', now())")
    _write(2, start=10)
    with connect() as con:
        assert [r[0] for r in con.execute("SELECT id FROM audit_log ORDER BY id").fetchall()] == [1, 2, 4, 5]
    assert audit.verify_chain().ok  # a legitimate gap is not an alarm
    with connect() as con:
        prev = con.execute("SELECT hash FROM audit_log WHERE id = 2").fetchone()[0]
        con.execute(
            'INSERT INTO audit_log (id, "at", actor, action, entity, entity_id, prev_hash, hash) '
            "VALUES (3, ?, 'mallory', 'refund_request.approve', 'refund_request', '7', ?, ?)",
            [datetime.now(UTC), prev, "f" * 64])
    result = _verify()
    assert result.exit_code == 1
    assert "audit row 3 was inserted" in result.stderr
    r = audit.verify_chain()
    assert (r.problem, r.row_id) == ("inserted", 3)


@pytest.mark.parametrize("tamper", ["edit", "delete"])
def test_demo_database_chain(tamper):
    from datetime import date

    from payops.demo import build_demo

    build_demo(seed=7, days=20, customers=30, as_of=date(2026, 6, 1), replace=True, progress=False)
    assert audit.verify_chain().ok
    with connect() as con:
        mid = con.execute("SELECT id FROM audit_log ORDER BY id LIMIT 1 OFFSET 10").fetchone()[0]
    if tamper == "edit":
        _sql("UPDATE audit_log SET actor = 'someone-else' WHERE id = ?", [mid])
    else:
        _sql("DELETE FROM audit_log WHERE id = ?", [mid])
    r = audit.verify_chain()
    assert not r.ok and r.row_id == mid

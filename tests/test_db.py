import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from payops.db import MIGRATIONS, connect, migrate, query
from payops.errors import DatabaseBusy, DatabaseError
from payops.status import ALL_TABLES

CONTRACT = {
    "customers": "id email name created deleted metadata",
    "payment_intents": "id customer amount amount_received currency status created latest_charge application_fee_amount booking_id metadata",
    "charges": "id payment_intent customer amount amount_captured amount_refunded currency status paid refunded disputed failure_code failure_message balance_transaction payment_method_type card_brand application_fee_amount created",
    "refunds": "id charge payment_intent amount currency status reason failure_reason balance_transaction created metadata",
    "balance_transactions": "id source type reporting_category amount fee net currency status created available_on exchange_rate fee_details",
    "disputes": "id charge payment_intent amount currency status reason created",
    "payouts": "id amount currency status arrival_date created",
    "events": "id type created api_version object_id applied_at",
    "bookings": "booking_id payment_intent customer tutor_id session_start status updated_at",
    "refund_requests": "id payment_intent charge customer amount currency reason status requested_by requested_at decided_by decided_at decision_note second_approver stripe_refund_id processed_at failure_message",
    "audit_log": "id at actor action entity entity_id before after note",
    "daily_metrics": "day currency",
    "sync_state": "stream updated_at",
}


def columns(con, table):
    return {r[0]: r[1] for r in con.execute(
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = ?", [table]).fetchall()}


def test_schema_has_the_documented_contract(db_path):
    with connect(db_path) as con:
        for table, cols in CONTRACT.items():
            have = columns(con, table)
            missing = set(cols.split()) - set(have)
            assert not missing, f"{table} lacks {missing}"
            if table not in ("events", "bookings", "refund_requests", "audit_log", "daily_metrics", "sync_state"):
                assert "raw" in have and "synced_at" in have
        # money is integers, time is TIMESTAMPTZ
        assert columns(con, "charges")["amount"] == "BIGINT"
        assert columns(con, "refund_requests")["amount"] == "BIGINT"
        assert columns(con, "charges")["created"] == "TIMESTAMP WITH TIME ZONE"


def test_every_table_is_documented(repo):
    doc = (repo / "docs" / "schema.md").read_text()
    for table in ALL_TABLES:
        assert f"## {table}" in doc, f"docs/schema.md does not document {table}"
    with connect() as con:
        for table in ALL_TABLES:
            for col in columns(con, table):
                assert f"`{col}`" in doc, f"docs/schema.md does not document {table}.{col}"


def test_migrations_are_idempotent(db_path):
    with connect(db_path) as con:
        assert migrate(con) == []
        con.execute("INSERT INTO bookings VALUES ('bk', 'pi', 'cus', 't', now(), 'scheduled', now())")
    with connect(db_path) as con:
        assert migrate(con) == []
        n = con.execute("SELECT count(*) FROM schema_migrations").fetchone()[0]
        assert n == len(MIGRATIONS)
        # running the SQL of every migration again changes nothing either
        for _, _, sql in MIGRATIONS:
            con.execute(sql)
        assert con.execute("SELECT count(*) FROM bookings").fetchone()[0] == 1


def test_query_returns_dataframe_and_closes(empty_db):
    db_path = empty_db
    df = query("SELECT 1 AS x, 'a' AS y")
    assert df.to_dict("records") == [{"x": 1, "y": "a"}]
    # the connection is closed: another process can open the file straight away
    out = subprocess.run([sys.executable, "-c", f"import duckdb; duckdb.connect({str(db_path)!r}).close(); print('ok')"],
                         capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "ok", out.stderr


def test_query_errors_are_one_line(empty_db):
    with pytest.raises(DatabaseError, match="query failed: Catalog Error"):
        query("SELECT * FROM no_such_table")


def _hold(db_path: Path, seconds: float) -> subprocess.Popen:
    code = textwrap.dedent(f"""
        import duckdb, sys, time
        con = duckdb.connect({str(db_path)!r})
        print("holding", flush=True)
        time.sleep({seconds})
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "holding"
    return proc


def test_busy_database_waits_then_raises(db_path, monkeypatch):
    with connect(db_path):
        pass
    holder = _hold(db_path, 30)
    try:
        with pytest.raises(DatabaseBusy) as info:
            with connect(db_path, timeout=1.0):
                pass
        assert "gave up after 1 s" in str(info.value)
        assert f"PID {holder.pid}" in str(info.value)
        assert info.value.transient
    finally:
        holder.kill()
        holder.wait()


def test_lock_released_while_waiting_is_taken(db_path):
    with connect(db_path):
        pass
    holder = _hold(db_path, 1.5)
    try:
        with connect(db_path, timeout=20) as con:
            assert con.execute("SELECT 42").fetchone() == (42,)
    finally:
        holder.kill()
        holder.wait()


def test_cli_status_on_busy_database_is_one_line(db_path):
    with connect(db_path):
        pass
    holder = _hold(db_path, 60)
    try:
        env = {**os.environ, "PAYOPS_DB": str(db_path), "PAYOPS_DB_TIMEOUT": "1"}
        out = subprocess.run([sys.executable, "-m", "payops", "status"], capture_output=True, text=True,
                             env=env, timeout=60)
    finally:
        holder.kill()
        holder.wait()
    assert out.returncode != 0
    assert "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: database") and "busy" in lines[0], out.stderr
    assert f"PID {holder.pid}" in lines[0]

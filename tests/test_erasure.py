"""`payops erase-customer`: personal data gone from tables, raw JSON, exports and archive; books intact."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from click.testing import CliRunner

from payops import audit
from payops.cli import cli
from payops.db import connect
from payops.maintenance import cleanup, erase_customer, mask_pii


def _all_text(con) -> str:
    """Every value of every table, as one string."""
    parts = []
    for (t,) in con.execute("SHOW TABLES").fetchall():
        parts.append(con.execute(f"SELECT CAST(list(t) AS VARCHAR) FROM (SELECT * FROM {t}) t").fetchone()[0] or "")
    return "\n".join(parts)


def _archive_text(archive: Path) -> str:
    con = duckdb.connect()
    out = []
    for p in sorted(archive.rglob("*.parquet")):
        out.append(con.execute("SELECT CAST(list(t) AS VARCHAR) FROM read_parquet(?) t", [str(p)]).fetchone()[0])
    return "\n".join(out)


TOTALS = """
SELECT 'charges' AS t, CAST(created AS DATE) AS d, currency, sum(amount), sum(amount_refunded), count(*)
  FROM charges GROUP BY ALL
UNION ALL SELECT 'refunds', CAST(created AS DATE), currency, sum(amount), 0, count(*) FROM refunds GROUP BY ALL
UNION ALL SELECT 'bt', CAST(created AS DATE), currency, sum(amount), sum(fee), count(*)
  FROM balance_transactions GROUP BY ALL
UNION ALL SELECT 'pi', CAST(created AS DATE), currency, sum(amount), sum(amount_received), count(*)
  FROM payment_intents GROUP BY ALL
ORDER BY ALL
"""


@pytest.fixture
def demo(tmp_path):
    from payops.demo import build_demo

    build_demo(seed=42, days=400, customers=60, as_of=datetime.now(UTC).date(), replace=True, progress=False)
    with connect() as con:
        # a customer with a unique name, some of whose payments will be archived, with a refund request
        cus, email, name = con.execute(
            "SELECT id, email, name FROM customers WHERE name IN (SELECT name FROM customers GROUP BY name "
            "HAVING count(*) = 1) AND id IN (SELECT customer FROM charges WHERE created < now() - INTERVAL 370 DAY) "
            "AND id IN (SELECT customer FROM refund_requests) ORDER BY id LIMIT 1").fetchone()
        # free text that names the customer, where a person might type it
        con.execute("UPDATE refund_requests SET note = ? WHERE id = (SELECT min(id) FROM refund_requests "
                    "WHERE customer = ?)", [f"student {name} wrote from {email.upper()}", cus])
        # another object's description mentioning the email
        con.execute("UPDATE payouts SET raw = json_merge_patch(raw, ?) WHERE id = (SELECT min(id) FROM payouts)",
                    [f'{{"description": "refund owed to {email}"}}'])
    archive = tmp_path / "archive"
    cleanup("365d", archive=archive)
    reports = tmp_path / "reports"
    (reports / "daily").mkdir(parents=True)
    with connect() as con:
        df = con.execute("SELECT id, email, name, created FROM customers ORDER BY id").df()
    df.to_csv(reports / "daily" / "customers.csv", index=False)
    df.to_parquet(reports / "daily" / "customers.parquet", index=False)
    return cus, email, name, archive, reports


def test_erase_removes_personal_data_everywhere_and_keeps_the_books(demo, db_path):
    cus, email, name, archive, reports = demo
    with connect() as con:
        text = _all_text(con)
        totals = con.execute(TOTALS).fetchall()
        others = con.execute("SELECT count(*) FROM customers WHERE email IS NOT NULL").fetchone()[0]
    assert email in text and name in text and email in _archive_text(archive)
    assert email in (reports / "daily" / "customers.csv").read_text()

    result = CliRunner().invoke(cli, ["erase-customer", cus, "--archive", str(archive)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert f"Customer {cus}:" in result.output and email not in result.output

    with connect() as con:
        text = _all_text(con)
        assert con.execute(TOTALS).fetchall() == totals  # amounts and ids untouched, per day
        assert con.execute("SELECT count(*) FROM customers WHERE email IS NOT NULL").fetchone()[0] == others - 1
        assert con.execute("SELECT count(*) FROM charges WHERE customer = ?", [cus]).fetchone()[0] > 0
        row = con.execute("SELECT actor, action, entity_id, CAST(after AS VARCHAR), note FROM audit_log "
                          "ORDER BY id DESC LIMIT 1").fetchone()
    for needle in (email, email.upper(), name):
        assert needle not in text
        assert needle not in _archive_text(archive)
        for p in reports.rglob("*.csv"):
            assert needle not in p.read_text()
        assert needle not in pd.read_parquet(reports / "daily" / "customers.parquet").to_string()
    # the file itself holds no stale copy of the erased values
    assert email.encode() not in db_path.read_bytes()
    assert row[1] == "customer.erase" and row[2] == cus
    assert email not in str(row) and name not in str(row)
    assert audit.verify_chain().ok
    # the archive still restores, and the archived payments of the customer are still there
    con = duckdb.connect()
    n = con.execute("SELECT count(*) FROM read_parquet(?) WHERE customer = ?",
                    [str(archive / "charges" / "**" / "*.parquet"), cus]).fetchone()[0]
    assert n > 0


def test_dry_run_changes_nothing(demo):
    cus, email, name, archive, reports = demo
    with connect() as con:
        before = _all_text(con)
    arch_before = _archive_text(archive)
    r = erase_customer(cus, dry_run=True, archive=archive, exports=[reports])
    assert r.tables.get("customers") == 1 and r.archive_files > 0 and r.export_files == 2
    with connect() as con:
        assert _all_text(con) == before
    assert _archive_text(archive) == arch_before
    assert email in (reports / "daily" / "customers.csv").read_text()


def test_erasing_twice_is_harmless(demo):
    cus, email, name, archive, reports = demo
    erase_customer(cus, archive=archive, exports=[reports])
    again = erase_customer(cus, archive=archive, exports=[reports])
    assert again.tables == {} and again.archive_files == 0 and again.export_files == 0


def test_unknown_customer_is_one_line():
    result = CliRunner().invoke(cli, ["erase-customer", "cus_nobody"], catch_exceptions=False)
    assert result.exit_code == 1
    assert result.output.startswith("Error: no customer cus_nobody")


def test_not_a_customer_id():
    result = CliRunner().invoke(cli, ["erase-customer", "ana@example.com"], catch_exceptions=False)
    assert result.exit_code == 2 and "expected cus_" in result.output


def test_mask_pii():
    df = pd.DataFrame({
        "customer": ["cus_1", "cus_2"],
        "email": ["ana@example.com", None],
        "name": ["Ana Silva", "Ben Kim"],
        "customer_phone": ["+1 555", None],
        "amount": [4500, 1200],
        "billing_details": ['{"email": "ana@example.com", "name": "Ana Silva"}', None],
        "raw": ['{"id": "ch_1", "amount": 4500, "billing_details": {"email": "ana@example.com", "name": "Ana",'
                ' "address": {"line1": "1 Main St"}}, "receipt_email": "ana@example.com"}', None],
    })
    out = mask_pii(df)
    text = out.to_string() + "".join(str(v) for v in out["raw"])
    for needle in ("ana@example.com", "Ana Silva", "Ben Kim", "+1 555", "1 Main St"):
        assert needle not in text
    assert list(out["amount"]) == [4500, 1200] and list(out["customer"]) == ["cus_1", "cus_2"]
    assert '"amount":4500' in out["raw"][0] and '"id":"ch_1"' in out["raw"][0]
    assert pd.isna(out["email"][1])
    assert df["email"][0] == "ana@example.com"  # a copy; the input is untouched
    # a table that is not about people keeps its "name" column (e.g. KPI names)
    kpis = pd.DataFrame({"name": ["success_rate"], "value": [0.97]})
    assert mask_pii(kpis)["name"][0] == "success_rate"


def test_export_mask_pii(tmp_path):
    """`payops export customers --mask-pii` leaves no email or name in the file."""
    from click.testing import CliRunner

    from payops.cli import cli
    from payops.demo import build_demo

    build_demo(seed=7, days=20, customers=30, as_of=datetime(2026, 11, 20).date(), replace=True, progress=False)
    with connect() as con:
        people = con.execute("SELECT email, name FROM customers").fetchall()
    for masked in (False, True):
        out = tmp_path / f"customers_{masked}.csv"
        args = ["export", "customers", "--format", "csv", "--out", str(out)] + (["--mask-pii"] if masked else [])
        result = CliRunner().invoke(cli, args, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        text = out.read_text()
        found = [e for e, n in people if e in text or n in text]
        assert (found == []) if masked else (len(found) > 0)

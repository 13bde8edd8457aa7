"""CSV / JSON / Parquet exports: amounts in minor units plus exact decimal strings, per currency."""

from __future__ import annotations

import csv
import json
from datetime import datetime
from zoneinfo import ZoneInfo

import factories as f
import pandas as pd
import pytest
from click.testing import CliRunner

from payops import exports, metrics
from payops.cli import cli
from payops.ingest import ingest_objects
from payops.money import to_decimal


def T(y, mo, d, h, mi, tz="Europe/Berlin"):
    return int(datetime(y, mo, d, h, mi, tzinfo=ZoneInfo(tz)).timestamp())


@pytest.fixture
def data(db_path, monkeypatch):
    monkeypatch.setenv("PAYOPS_TIMEZONE", "Europe/Berlin")
    objs = [
        f.customer("cus_1", name="=HYPERLINK(\"http://evil\")", email="a@example.com"),
        f.charge("ch_usd", amount=1312, amount_captured=1312, application_fee_amount=None,
                 created=T(2026, 11, 2, 23, 59)),
        f.charge("ch_jpy", currency="jpy", amount=1000, amount_captured=1000, application_fee_amount=150,
                 created=T(2026, 11, 3, 0, 1), balance_transaction=None),
        f.charge("ch_kwd", currency="kwd", amount=12345, amount_captured=12345, application_fee_amount=None,
                 created=T(2026, 11, 3, 12, 0), balance_transaction=None),
        f.charge("ch_fail", status="failed", amount=500, amount_captured=0, paid=False, created=T(2026, 11, 3, 13, 0),
                 failure_code="card_declined", balance_transaction=None),
        f.balance_transaction("txn_1", source="ch_usd", amount=1312, fee=68, net=1244, created=T(2026, 11, 2, 23, 59)),
        f.refund("re_1", charge="ch_usd", amount=-5 + 1005, created=T(2026, 11, 4, 9, 0)),
    ]
    ingest_objects(objs, db=db_path)
    return objs


def test_amounts_carry_minor_units_and_exact_decimal_strings(data):
    df = exports.frame("payments")
    rows = df.set_index("charge")
    assert rows.loc["ch_usd", "amount"] == 1312 and rows.loc["ch_usd", "amount_decimal"] == "13.12"
    assert rows.loc["ch_jpy", "amount_decimal"] == "1000"
    assert rows.loc["ch_kwd", "amount_decimal"] == "12.345"
    # platform fee: application_fee_amount, else 15% rounded half-even (1312 * 0.15 = 196.8 -> 197)
    assert rows.loc["ch_usd", "platform_fees"] == 197 and rows.loc["ch_usd", "platform_fees_decimal"] == "1.97"
    assert rows.loc["ch_jpy", "platform_fees"] == 150
    assert rows.loc["ch_kwd", "platform_fees"] == 1852 and rows.loc["ch_kwd", "platform_fees_decimal"] == "1.852"
    # a failed charge adds nothing to any money figure
    assert rows.loc["ch_fail", ["gross_volume", "platform_fees", "net"]].tolist() == [0, 0, 0]
    assert rows.loc["ch_usd", "stripe_fees_decimal"] == "0.68"
    # the figures of payops.money.FIGURES, with their one meaning: net before, and after, the platform fee
    usd = rows.loc["ch_usd"]
    assert (usd["gross_volume"], usd["refunded_amount"], usd["stripe_fees"]) == (1312, 1000, 68)
    assert usd["net"] == 1312 - 1000 - 68 and usd["net_after_platform_fee"] == 1312 - 1000 - 68 - 197
    for amount, cur in ((-1, "usd"), (5, "usd"), (-123456, "kwd"), (0, "jpy")):
        got = exports.add_decimals(pd.DataFrame({"currency": [cur], "amount": [amount]}), ["amount"])
        assert got["amount_decimal"][0] == str(to_decimal(amount, cur))


def test_dates_are_local_days(data):
    # 23:59 on Nov 2 Berlin is in Nov 2; 00:01 on Nov 3 is in Nov 3
    assert list(exports.frame("payments", "2026-11-02", "2026-11-02")["charge"]) == ["ch_usd"]
    assert list(exports.frame("payments", "2026-11-03", "2026-11-03")["charge"]) == ["ch_jpy", "ch_kwd", "ch_fail"]
    with pytest.raises(Exception, match="before it starts"):
        exports.frame("payments", "2026-11-03", "2026-11-02")


def test_csv_opens_cleanly_in_a_spreadsheet(data, tmp_path):
    path = exports.export("customers", "csv", out=tmp_path / "c.csv")
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # BOM: spreadsheets detect UTF-8
    rows = list(csv.DictReader(raw.decode("utf-8-sig").splitlines()))
    assert rows[0]["name"].startswith("'=HYPERLINK")  # never run as a formula
    pay = exports.export("payments", "csv", out=tmp_path / "p.csv")
    rows = {r["charge"]: r for r in csv.DictReader(pay.read_text(encoding="utf-8-sig").splitlines())}
    assert rows["ch_usd"]["amount"] == "1312" and rows["ch_usd"]["amount_decimal"] == "13.12"
    assert rows["ch_usd"]["created"] == "2026-11-02T22:59:00Z"
    assert rows["ch_fail"]["platform_fees"] == "0"


def test_json_shape_and_parquet_types(data, tmp_path):
    path = exports.export("refunds", "json", start="2026-11-01", end="2026-11-30", out=tmp_path / "r.json")
    doc = json.loads(path.read_text())
    assert set(doc) == {"export", "generated_at", "timezone", "from", "to", "count", "rows"}
    assert (doc["export"], doc["timezone"], doc["from"], doc["to"], doc["count"]) == (
        "refunds", "Europe/Berlin", "2026-11-01", "2026-11-30", 1)
    row = doc["rows"][0]
    assert row["amount"] == 1000 and row["amount_decimal"] == "10.00" and row["currency"] == "usd"
    assert row["created"] == "2026-11-04T08:00:00Z" and row["customer"] == "cus_1"
    pq = exports.export("payments", "parquet", out=tmp_path / "p.parquet")
    back = pd.read_parquet(pq)
    assert str(back["amount"].dtype).lower() == "int64" and len(back) == 4


def test_daily_metrics_export_matches_the_table(data, tmp_path):
    metrics.compute_daily()
    path = exports.export("daily-metrics", "json", out=tmp_path / "d.json")
    rows = json.loads(path.read_text())["rows"]
    table = metrics.daily(pd.Timestamp("2026-11-01").date(), pd.Timestamp("2026-11-30").date())
    assert [(r["day"], r["currency"], r["gross_volume"]) for r in rows] == [
        (d.isoformat(), c, int(g))
        for d, c, g in zip(table["day"], table["currency"], table["gross_volume"], strict=False)]
    kwd = next(r for r in rows if r["currency"] == "kwd")
    assert kwd["gross_volume_decimal"] == "12.345"


def test_export_command(data, tmp_path):
    runner = CliRunner()
    result = runner.invoke(cli, ["export", "refund-requests", "--format", "csv", "--out", str(tmp_path / "rr.csv")],
                           catch_exceptions=False)
    assert result.exit_code == 0 and (tmp_path / "rr.csv").exists()
    result = runner.invoke(cli, ["export", "payments", "--format", "json", "--from", "2026-11-02", "--to", "2026-11-02",
                                 "--out", "-"], catch_exceptions=False)
    assert json.loads(result.stdout)["count"] == 1
    result = runner.invoke(cli, ["export", "payments", "--format", "parquet", "--out", "-"])
    assert result.exit_code == 2 and "parquet cannot go to stdout" in result.output
    result = runner.invoke(cli, ["export", "payments", "--from", "yesterday"])
    assert result.exit_code == 2 and "not a date" in result.output
    result = runner.invoke(cli, ["export", "customers"], catch_exceptions=False)
    assert result.exit_code == 0 and (tmp_path / "customers.csv").exists()

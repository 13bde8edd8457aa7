"""payops.payments: one payment's money has the names and rules of the daily metrics.

On a demo marketplace: the review app's payment breakdown and the daily metrics agree on
every figure that carries the same name, payment by payment and in total; the parts of gross
volume add up to it exactly.
"""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import duckdb
import pytest

from payops import metrics, money, payments
from payops.db import connect
from payops.ui import display as D

AS_OF = date(2026, 11, 20)  # a fixed "now" for the demo: nothing here depends on the day it runs
TABLES = ("customers", "payment_intents", "charges", "refunds", "disputes", "balance_transactions", "bookings",
          "transfers", "application_fees")


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    from payops.demo import build_demo

    path = tmp_path_factory.mktemp("payments") / "demo.duckdb"
    build_demo(path, seed=42, days=60, customers=400, as_of=AS_OF, replace=True, progress=False)
    return path


def _one(demo: Path, sql: str) -> str:
    con = duckdb.connect(str(demo), read_only=True)
    try:
        row = con.execute(sql).fetchone()
    finally:
        con.close()
    assert row, f"the demo has no payment for: {sql}"
    return str(row[0])


def _isolate(demo: Path, payment_intent: str, out: Path) -> Path:
    """A database holding one payment of the demo: its intent, charges, refunds, disputes, fees."""
    with connect(out) as con:
        con.execute(f"ATTACH '{demo}' AS demo (READ_ONLY)")
        con.execute("CREATE TEMP TABLE chs AS SELECT id FROM demo.charges WHERE payment_intent = ?", [payment_intent])
        where = {
            "payment_intents": "id = $pi",
            "charges": "payment_intent = $pi",
            "refunds": "charge IN (SELECT id FROM chs)",
            "disputes": "charge IN (SELECT id FROM chs)",
            "balance_transactions": "source IN (SELECT id FROM chs UNION ALL SELECT id FROM demo.refunds "
                                    "WHERE charge IN (SELECT id FROM chs) UNION ALL SELECT id FROM demo.disputes "
                                    "WHERE charge IN (SELECT id FROM chs) UNION ALL SELECT id FROM demo.transfers "
                                    "WHERE source_transaction IN (SELECT id FROM chs) UNION ALL SELECT r.id FROM "
                                    "demo.transfer_reversals r JOIN demo.transfers t ON t.id = r.transfer "
                                    "WHERE t.source_transaction IN (SELECT id FROM chs))",
            "transfers": "source_transaction IN (SELECT id FROM chs)",
            "application_fees": "charge IN (SELECT id FROM chs)",
            "customers": "id IN (SELECT customer FROM demo.charges WHERE payment_intent = $pi)",
            "bookings": "payment_intent = $pi",
        }
        for table in TABLES:
            cond = where[table]
            params = {"pi": payment_intent} if "$pi" in cond else None
            con.execute(f"INSERT INTO {table} SELECT * FROM demo.{table} WHERE {cond}", params)
        con.execute("DETACH demo")
    return out


def _days(db: Path) -> tuple[date, date]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        con.execute("SET TimeZone = 'UTC'")
        first, last = con.execute(
            "SELECT min(d), max(d) FROM (SELECT created::DATE AS d FROM charges UNION ALL "
            "SELECT created::DATE FROM refunds UNION ALL SELECT created::DATE FROM disputes UNION ALL "
            "SELECT created::DATE FROM balance_transactions)").fetchone()
    finally:
        con.close()
    return first, last


@pytest.mark.parametrize("kind", ["refunded", "disputed", "retried"])
def test_review_app_breakdown_and_daily_metrics_agree_on_every_shared_figure(demo, tmp_path, kind, monkeypatch):
    monkeypatch.setenv("PAYOPS_TIMEZONE", "UTC")
    pick = {
        "refunded": "SELECT payment_intent FROM refunds WHERE status = 'succeeded' ORDER BY id LIMIT 1",
        "disputed": "SELECT payment_intent FROM disputes ORDER BY id LIMIT 1",
        "retried": "SELECT payment_intent FROM charges GROUP BY 1 HAVING count(*) > 1 ORDER BY 1 LIMIT 1",
    }[kind]
    pi = _one(demo, pick)
    shown = D.payment_breakdown(pi, db=demo)  # what the review app shows for this payment
    assert shown is not None and shown == payments.breakdown(pi, db=demo)
    alone = _isolate(demo, pi, tmp_path / "one.duckdb")
    assert payments.breakdown(pi, db=alone) == shown
    first, last = _days(alone)
    rows = metrics.compute(first, last, db=alone, tz="UTC")
    assert set(rows["currency"]) == {shown["currency"]}
    shared = [name for _, name in D.BREAKDOWN_FIGURES if name in rows.columns]
    assert shared == list(money.FIGURES)  # every money figure of the breakdown is a daily metric
    for name in shared:
        assert int(rows[name].sum()) == shown[name], (kind, name)
    # its day: the charge's own figures are all on the day it was charged
    day = rows[rows["gross_volume"] > 0].iloc[0]
    assert (int(day["gross_volume"]), int(day["platform_fees"])) == (shown["gross_volume"], shown["platform_fees"])
    assert sum(shown[p] for p in money.GROSS_PARTS) == shown["gross_volume"]


def test_review_app_shows_those_figures(demo, db_path, monkeypatch):
    from payops import refunds
    from payops.ui.review import RefundReview

    monkeypatch.setenv("PAYOPS_TIMEZONE", "UTC")
    pi = _one(demo, "SELECT payment_intent FROM charges WHERE status = 'succeeded' AND amount_refunded = 0 "
                    "AND NOT disputed ORDER BY id LIMIT 1")
    _isolate(demo, pi, db_path)
    shown = payments.breakdown(pi, db=db_path)
    assert shown["net"] != shown["net_after_platform_fee"]
    rid = int(refunds.request(pi, reason="requested_by_customer", amount=100, requested_by="support", db=db_path)["id"])
    page = RefundReview("ana", db=db_path).detail_html(rid)
    for label, key in D.BREAKDOWN_FIGURES:
        assert re.search(re.escape(label) + r"</td>\s*<td[^>]*>" + re.escape(D.money(shown[key], shown["currency"])),
                         page), (label, key)


def test_over_the_whole_demo_payments_add_up_to_the_daily_metrics(demo, monkeypatch):
    monkeypatch.setenv("PAYOPS_TIMEZONE", "UTC")
    charges = payments.charges(db=demo)
    first, last = _days(demo)
    days = metrics.compute(first, last, db=demo, tz="UTC")
    figures = list(money.FIGURES)
    by_payment = charges.groupby("currency")[figures].sum()
    by_day = days.groupby("currency")[figures].sum()
    assert by_payment.astype("int64").equals(by_day.astype("int64"))
    # gross volume splits into its parts exactly, per day and per payment
    for frame in (days, charges):
        assert (frame[list(money.GROSS_PARTS)].sum(axis=1) == frame["gross_volume"]).all()
    # and net is one thing: after refunds, disputes and Stripe fees, before the platform fee
    usd = by_day.loc["usd"]
    assert usd["net"] == money.net(*(int(usd[k]) for k in ("gross_volume", "refunded_amount", "disputed_amount",
                                                           "stripe_fees")))
    assert usd["net_after_platform_fee"] == money.net_after_platform_fee(int(usd["net"]), int(usd["platform_fees"]))


def test_docs_give_each_money_figure_its_one_meaning(repo):
    doc = (repo / "docs" / "schema.md").read_text()
    section = doc[doc.index("## daily_metrics"):]
    for name, (_, meaning) in money.FIGURES.items():
        row = re.search(rf"^\| `{name}` \| BIGINT \| (.+) \|$", section, re.M)
        assert row, f"docs/schema.md's daily_metrics does not document {name}"
        assert row.group(1).startswith(meaning.split(" (")[0]), (name, row.group(1), meaning)


def test_the_report_fee_chart_stacks_to_exactly_100_percent(demo, monkeypatch):
    from payops.reports import Report

    monkeypatch.setenv("PAYOPS_TIMEZONE", "UTC")
    fig = Report("monthly", "2026-10-15", db=demo).fee_chart()
    ends: dict[float, float] = {}
    for bar in fig.axes[0].patches:
        ends[round(bar.get_y(), 6)] = ends.get(round(bar.get_y(), 6), 0.0) + bar.get_width()
    assert len(ends) >= 2 and all(abs(total - 100) < 1e-9 for total in ends.values()), ends

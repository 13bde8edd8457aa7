"""The money waterfall and payouts reconciled, on the demo (issue 12)."""

from __future__ import annotations

import collections
from datetime import date

import duckdb
import pytest
from click.testing import CliRunner

from payops import ledger, metrics, payouts
from payops.cli import cli

AS_OF = date(2026, 6, 1)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    from payops.demo import build_demo

    path = tmp_path_factory.mktemp("ledger") / "payops.duckdb"
    build_demo(path, seed=7, days=30, customers=150, as_of=AS_OF, replace=True, progress=False)
    metrics.compute_daily(db=path, tz="UTC")
    return path


def rows(path, sql: str, params=None) -> list[dict]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        cur = con.execute(sql, params or [])
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    finally:
        con.close()


def test_waterfall_is_exact_per_currency_and_day(demo):
    days = rows(demo, "SELECT * FROM daily_metrics ORDER BY day, currency")
    assert {d["currency"] for d in days} >= {"usd", "eur", "gbp", "jpy", "kwd"}  # zero- and three-decimal ones
    for d in days:
        terms = {t.name: int(d[f"ledger_{t.name}"]) for t in ledger.TERMS}
        assert ledger.check_equation(terms) == 0, (d["day"], d["currency"], terms)
    for cur in ("jpy", "kwd"):
        assert sum(d["ledger_gross_volume"] for d in days if d["currency"] == cur) > 0
        assert sum(d["ledger_tutors_share"] for d in days if d["currency"] == cur) > 0
    # the daily figures add up to the ledger's own totals, per currency
    totals = {r["currency"]: r for r in rows(demo, f"SELECT currency, {ledger.sums_sql()} FROM balance_transactions "
                                                   "GROUP BY currency")}
    for cur, tot in totals.items():
        for t in ledger.TERMS:
            assert sum(d[f"ledger_{t.name}"] for d in days if d["currency"] == cur) == tot[t.name], (cur, t.name)


def test_the_platform_keeps_its_fee_less_what_the_reversal_rule_gave_back(demo):
    """gross - refunds - tutors' share = application fees - fee refunds, per currency (every charge is a
    destination charge), so the tutors' share follows the stated reversal rule to the minor unit."""
    bt = {r["currency"]: r for r in rows(demo, f"SELECT currency, {ledger.sums_sql()} FROM balance_transactions "
                                               "GROUP BY currency")}
    fees = {r["currency"]: int(r["kept"]) for r in rows(
        demo, "SELECT currency, sum(amount - amount_refunded) AS kept FROM application_fees GROUP BY currency")}
    for cur, r in bt.items():
        assert r["gross_volume"] - r["refunds"] - r["tutors_share"] == fees[cur], cur
    reversals = rows(demo, "SELECT count(*) AS n FROM transfer_reversals")[0]["n"]
    assert reversals > 0
    # every succeeded, captured charge has its transfer
    missing = rows(demo, "SELECT count(*) AS n FROM charges c WHERE status = 'succeeded' AND amount_captured > 0 "
                         "AND NOT EXISTS (SELECT 1 FROM transfers t WHERE t.source_transaction = c.id)")
    assert missing[0]["n"] == 0


def test_a_won_dispute_gives_the_funds_back(demo):
    won = rows(demo, "SELECT id FROM disputes WHERE status = 'won'")
    lost = rows(demo, "SELECT id, amount FROM disputes WHERE status = 'lost'")
    assert won or lost
    for d in won:
        bts = rows(demo, "SELECT type, reporting_category, amount, fee, net FROM balance_transactions WHERE source = ?",
                   [d["id"]])
        assert len(bts) == 2 and ledger.waterfall_of(bts)["dispute_losses"] == 0
    for d in lost:
        bts = rows(demo, "SELECT type, reporting_category, amount, fee, net FROM balance_transactions WHERE source = ?",
                   [d["id"]])
        assert ledger.waterfall_of(bts)["dispute_losses"] == d["amount"]


def test_every_demo_payout_reconciles_and_the_cli_says_so(demo):
    ok, found = payouts.reconcile(db=demo)
    settled = [v for v in found if v.status in payouts.SETTLED]
    assert ok and settled and all(v.reconciled for v in settled)
    assert all(not v.reconciled for v in found if v.status in payouts.NOT_CASH)  # never reconciled cash
    out = CliRunner().invoke(cli, ["payouts", "reconcile", "--db", str(demo)], catch_exceptions=False)
    assert out.exit_code == 0, out.output
    assert sum(1 for line in out.output.splitlines() if line.startswith("po_")) == len(found)
    # the summary's parts add up: reconciled, not reconciled, and the rest by status
    rest = collections.Counter(v.status for v in found if not v.reconciled and not v.problem)
    assert rest and out.output.splitlines()[-1] == (
        f"{len(found)} payout(s): {len(settled)} reconciled, 0 not reconciled"
        + "".join(f", {n} {s}" for s, n in sorted(rest.items())) + ".")


def test_a_payout_missing_a_transaction_is_reported_with_the_missing_amount(demo, tmp_path):
    import shutil

    from payops.money import format_amount

    copy = tmp_path / "copy.duckdb"
    shutil.copy(demo, copy)
    v = next(v for v in payouts.verdicts(db=copy) if v.reconciled and v.transactions > 2)
    con = duckdb.connect(str(copy))
    txn, net = con.execute(
        "SELECT b.id, b.net FROM payout_transactions l JOIN balance_transactions b ON b.id = l.balance_transaction "
        "WHERE l.payout = ? AND b.type = 'charge' ORDER BY b.id LIMIT 1", [v.id]).fetchone()
    con.execute("DELETE FROM payout_transactions WHERE payout = ? AND balance_transaction = ?", [v.id, txn])
    con.close()
    ok, found = payouts.reconcile(db=copy)
    bad = [x for x in found if x.problem]
    assert not ok and [x.id for x in bad] == [v.id] and bad[0].difference == net
    assert f"{format_amount(net, v.currency)} missing" in bad[0].verdict
    out = CliRunner().invoke(cli, ["payouts", "reconcile", "--db", str(copy)], catch_exceptions=False)
    assert out.exit_code == 1 and f"{v.id}" in out.output and "NOT RECONCILED" in out.output


def test_itemised_export_and_balance(demo, tmp_path):
    import csv

    v = next(v for v in payouts.verdicts(db=demo) if v.reconciled)
    out = tmp_path / "items.csv"
    res = CliRunner().invoke(cli, ["payouts", "export", v.id, "--out", str(out), "--db", str(demo)],
                             catch_exceptions=False)
    assert res.exit_code == 0, res.output
    items = list(csv.DictReader(out.open()))
    assert {r["group"] for r in items} >= {"charges", "transfers", "payout"}
    assert sum(int(r["net"]) for r in items if r["group"] != "payout") == v.amount
    bal = payouts.balance(db=demo)
    total = rows(demo, "SELECT currency, sum(net) AS n FROM balance_transactions GROUP BY currency")
    assert dict(zip(bal["currency"], bal["total"], strict=True)) == {r["currency"]: r["n"] for r in total}

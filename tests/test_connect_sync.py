"""Transfers, application fees and payout links synced from the fake Stripe; the reversal rule; payouts reconciled."""

from __future__ import annotations

import pytest
from test_sync import KEY, assert_exact, make_fake

from payops import payouts, query
from payops.ledger import WATERFALL, reversal_split
from payops.sync import run

pytestmark = pytest.mark.slow  # every test starts a fake Stripe HTTP server


@pytest.fixture
def env(monkeypatch):
    def setup(fake):
        monkeypatch.setenv("STRIPE_API_KEY", KEY)
        monkeypatch.setenv("STRIPE_API_BASE", fake.url)
        monkeypatch.setenv("PAYOPS_STRIPE_RPS", "1000")
    return setup


def test_connect_streams_and_payout_links_synced_exactly(env):
    with make_fake(500, seed=21) as fake:
        env(fake)
        run(workers=4, progress=False)
        assert_exact(fake)
        connected = [c for c in fake.objects("charge") if c.get("transfer")]
        assert connected and len(fake.objects("transfer")) == len(connected)
        assert query("SELECT count(*) AS n FROM transfers")["n"][0] == len(connected)
        assert query("SELECT count(*) AS n FROM application_fees")["n"][0] == len(connected)
        # reversals and fee refunds, as the views over the parents' raw JSON show them
        want_rev = sum(len(t["reversals"]["data"]) for t in fake.objects("transfer"))
        assert want_rev > 0 and query("SELECT count(*) AS n FROM transfer_reversals")["n"][0] == want_rev
        want_fr = sum(len(f["refunds"]["data"]) for f in fake.objects("application_fee"))
        assert query("SELECT count(*) AS n FROM application_fee_refunds")["n"][0] == want_fr
        # every transfer reversal follows the stated rule, per charge
        for t in fake.objects("transfer"):
            charge = fake.get(t["source_transaction"])
            fee = fake.get(charge["application_fee"])
            refunds = [r for r in fake.objects("refund") if r["charge"] == charge["id"] and r["status"] == "succeeded"]
            done = fee_done = 0
            for r in sorted(refunds, key=lambda r: (r["created"], r["id"])):
                fee_back, back = reversal_split(r["amount"], charge["amount"], fee["amount"], refunded_before=done,
                                                fee_refunded_before=fee_done)
                done, fee_done = done + r["amount"], fee_done + fee_back
            assert (t["amount_reversed"], fee["amount_refunded"]) == (done - fee_done, fee_done)
        # every settled payout reconciles to the minor unit
        ok, verdicts = payouts.reconcile()
        settled = [v for v in verdicts if v.status in payouts.SETTLED]
        assert ok and settled and all(v.reconciled for v in settled), [v.line() for v in settled if not v.reconciled]


def test_waterfall_equation_on_the_synced_ledger(env):
    from payops.ledger import sums_sql

    with make_fake(300, seed=22) as fake:
        env(fake)
        run(workers=4, progress=False)
        rows = query(f"SELECT currency, {sums_sql()} FROM balance_transactions GROUP BY currency").to_dict("records")
        assert rows
        for r in rows:
            assert r["gross_volume"] == sum(r[n] for n in WATERFALL), r
            assert r["tutors_share"] > 0

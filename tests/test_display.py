"""payops.ui.display: badges, dashboard links, money per currency, styled tables, queries."""

from __future__ import annotations

import factories as F
import pandas as pd
import pytest

from payops import money
from payops.errors import InvalidInput
from payops.ingest import ingest_objects
from payops.ui import display as D

NOW = 1_795_000_000  # a fixed instant (2026-11-18 UTC): no test depends on the day it runs


def test_priority_badges_most_urgent_first():
    assert D.priority_badges(["LARGE", "URGENT"]) == "🔥 URGENT 💰 LARGE"
    assert D.priority_badges(["HIGH"]) == "⚠️ HIGH"
    assert D.priority_badges("large") == "💰 LARGE"
    assert D.priority_badges([]) == ""
    assert D.priority_badges(None) == ""


@pytest.mark.parametrize("status, badge", [
    ("PENDING", "⏳ PENDING"), ("APPROVED", "✅ APPROVED"), ("REJECTED", "❌ REJECTED"),
    ("PROCESSED", "💰 PROCESSED"), ("PROCESSING", "🔄 PROCESSING"), ("FAILED", "🚫 FAILED"),
])
def test_status_badges(status, badge):
    assert D.status_badge(status) == badge
    assert D.status_badge(status.lower()) == badge


def test_payment_badge_prefers_dispute_and_refund_over_status():
    assert D.payment_badge("succeeded") == "✅ succeeded"
    assert D.payment_badge("failed") == "❌ failed"
    assert D.payment_badge("succeeded", refunded=True) == "↩️ refunded"
    assert D.payment_badge("succeeded", refunded=True, disputed=True) == "⚔️ disputed"


def test_dashboard_urls_test_and_live():
    assert D.dashboard_url("pi_123") == "https://dashboard.stripe.com/test/payments/pi_123"
    assert D.dashboard_url("pi_123", livemode=True) == "https://dashboard.stripe.com/payments/pi_123"
    assert D.dashboard_url("cus_9", False) == "https://dashboard.stripe.com/test/customers/cus_9"
    assert D.dashboard_url("re_1", True) == "https://dashboard.stripe.com/refunds/re_1"
    assert D.dashboard_url("ch_1", None) == "https://dashboard.stripe.com/test/payments/ch_1"
    with pytest.raises(InvalidInput):
        D.dashboard_url("bk_1")


def test_link_escapes_and_opens_new_tab():
    html = D.link("cus_1", True, text="<Ana>")
    assert html == ('<a href="https://dashboard.stripe.com/customers/cus_1" target="_blank" rel="noopener noreferrer">'
                    "&lt;Ana&gt;</a>")
    assert D.link(None) == ""
    assert D.link("bk_<1>") == "bk_&lt;1&gt;"  # no dashboard page: plain, escaped text


def test_money_per_currency():
    assert D.money(1312, "usd") == "$13.12"
    assert D.money(1000, "jpy") == "¥1,000"
    assert D.money(1234, "kwd").endswith("1.234")
    assert D.money(None, "usd") == ""
    assert D.money(float("nan"), "usd") == ""


def test_age():
    assert D.age(0.2) == "< 1 h"
    assert D.age(5.9) == "5 h"
    assert D.age(48) == "2 d"
    assert D.age(51.5) == "2 d 3 h"
    assert D.age(None) == ""


def test_styled_formats_money_links_badges_and_is_deterministic():
    df = pd.DataFrame({
        "id": ["pi_a", "pi_b"], "amount": [1312, 1000], "currency": ["usd", "jpy"],
        "status": ["PENDING", "APPROVED"], "priorities": [["URGENT", "LARGE"], []],
        "livemode": [False, True],
    })
    styler = D.styled(df, money_columns=["amount"], link_columns=["id"], status_column="status",
                      priorities_column="priorities", hide=["livemode"], caption="Requests")
    html = styler.to_html()
    assert "$13.12" in html and "¥1,000" in html
    assert 'href="https://dashboard.stripe.com/test/payments/pi_a"' in html
    assert 'href="https://dashboard.stripe.com/payments/pi_b"' in html
    assert "⏳ PENDING" in html and "🔥 URGENT 💰 LARGE" in html
    assert "livemode" not in html
    assert df["amount"].tolist() == [1312, 1000]  # the caller's frame is untouched
    assert D.styled(df, money_columns=["amount"]).to_html() == D.styled(df, money_columns=["amount"]).to_html()


def test_fee_breakdown_sums_per_currency_never_across():
    daily = pd.DataFrame({
        "day": ["2026-11-01", "2026-11-02", "2026-11-01"], "currency": ["usd", "usd", "jpy"],
        "gross_volume": [1000, 2000, 500], "refunded_amount": [0, 100, 0], "disputed_amount": [0, 0, 0],
        "stripe_fees": [59, 88, 18], "platform_fees": [150, 300, 75], "net": [941, 1812, 482],
    })
    out = D.fee_breakdown(daily).set_index("currency")
    assert out.loc["usd", "gross_volume"] == 3000
    assert out.loc["usd", "stripe_fees"] == 147
    assert out.loc["jpy", "gross_volume"] == 500
    assert out["gross_volume"].dtype.kind == "i"


def _payment(n: int, *, amount=4500, currency="usd", fee=161, app_fee=675, refunded=0) -> list[dict]:
    now = NOW
    return [
        F.customer(f"cus_{n}", created=now),
        F.payment_intent(f"pi_{n}", customer=f"cus_{n}", latest_charge=f"ch_{n}", amount=amount,
                         amount_received=amount, currency=currency, application_fee_amount=app_fee, created=now,
                         metadata={"booking_id": f"bk_{n}", "tutor_id": "tut_1"}),
        F.charge(f"ch_{n}", customer=f"cus_{n}", payment_intent=f"pi_{n}", balance_transaction=f"txn_{n}",
                 amount=amount, amount_captured=amount, amount_refunded=refunded, refunded=refunded >= amount,
                 currency=currency, application_fee_amount=app_fee, created=now + n),
        F.balance_transaction(f"txn_{n}", source=f"ch_{n}", amount=amount, fee=fee, net=amount - fee,
                              currency=currency, created=now),
    ]


def test_payment_breakdown_amount_fees_net(db_path):
    ingest_objects(_payment(1) + _payment(2, amount=3000, currency="jpy", fee=108, app_fee=450, refunded=1000)
                   + [F.refund("re_2", charge="ch_2", payment_intent="pi_2", amount=1000, currency="jpy", created=NOW)])
    b = D.payment_breakdown("pi_1")
    assert (b["amount"], b["gross_volume"], b["stripe_fees"], b["platform_fees"], b["refunded_amount"]) == (
        4500, 4500, 161, 675, 0)
    # net: after Stripe fees, refunds and disputes; the platform fee comes off only in net_after_platform_fee
    assert b["net"] == 4500 - 161 and b["net_after_platform_fee"] == 4500 - 161 - 675
    assert b["livemode"] is False
    jpy = D.payment_breakdown("ch_2")
    assert (jpy["net"], jpy["net_after_platform_fee"]) == (3000 - 108 - 1000, 3000 - 108 - 1000 - 450)
    assert D.payment_breakdown("pi_nope") is None
    assert [key for _, key in D.BREAKDOWN_FIGURES] == ["amount", *money.FIGURES]


def test_recent_and_customer_payments(db_path):
    ingest_objects(_payment(1) + _payment(2, refunded=4500) + _payment(3))
    recent = D.recent_payments(2)
    assert recent["charge"].tolist() == ["ch_3", "ch_2"]  # newest first
    assert recent["badge"].tolist() == ["✅ succeeded", "↩️ refunded"]
    assert recent["customer_email"].tolist() == ["cus_3@example.com", "cus_2@example.com"]
    mine = D.customer_payments("cus_1")
    assert mine["charge"].tolist() == ["ch_1"]


def test_charts_one_line_per_currency_and_money_panels():
    import matplotlib

    matplotlib.use("Agg")
    daily = pd.DataFrame({
        "day": pd.to_datetime(["2026-11-01", "2026-11-02", "2026-11-01"]).date, "currency": ["usd", "usd", "jpy"],
        "success_rate": [0.9, 1.0, 1.0], "gross_volume": [1250, 2000, 500],
    })
    ax = D.chart_daily(daily, "success_rate", percent=True)
    assert sorted(line.get_label() for line in ax.get_lines()) == ["JPY", "USD"]
    usd = [line for line in ax.get_lines() if line.get_label() == "USD"][0]
    assert list(usd.get_ydata()) == [90.0, 100.0]
    axes = D.chart_daily(daily, "gross_volume", money_column=True)
    assert [a.get_ylabel() for a in axes] == ["USD", "JPY"]  # one panel per currency, never one scale
    assert list(axes[0].get_lines()[0].get_ydata()) == [12.5, 20.0]  # major units
    insights = pd.DataFrame({"customer": ["cus_1", "cus_2", "cus_3"], "name": ["Ana", None, "Ben"],
                             "currency": ["usd", "usd", "jpy"], "spend": [1000, 3000, 99999]})
    ax = D.chart_top_customers(insights, currency="usd")
    assert [t.get_text() for t in ax.get_yticklabels()] == ["Ana", "cus_2"]
    assert [p.get_width() for p in ax.patches] == [10.0, 30.0]

"""Display helpers the notebooks and the review app share.

Badges for refund-request statuses and priorities, links into the Stripe dashboard (test or
live by ``livemode``), money formatted per currency, styled DataFrames and charts. Nothing
here queries or decides anything: payments are read through :mod:`payops.payments` (the
names below that read payments are that module's functions), rules live in
:mod:`payops.refunds` and :mod:`payops.money`, metrics in :mod:`payops.metrics`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from payops import money as money_figures
from payops import outputs, payments
from payops.money import format_amount, to_decimal

__all__ = [
    "PRIORITY_BADGES",
    "STATUS_BADGES",
    "PAYMENT_BADGES",
    "priority_badges",
    "status_badge",
    "payment_badge",
    "dashboard_url",
    "link",
    "money",
    "age",
    "styled",
    "recent_payments",
    "recent_refunds",
    "payment_breakdown",
    "payment_refunds",
    "customer_payments",
    "request_currencies",
    "data_range",
    "chart_daily",
    "chart_top_customers",
    "fee_breakdown",
    "BREAKDOWN_FIGURES",
]

PRIORITY_BADGES = {"URGENT": "🔥 URGENT", "HIGH": "⚠️ HIGH", "LARGE": "💰 LARGE"}
STATUS_BADGES = {
    "PENDING": "⏳ PENDING",
    "APPROVED": "✅ APPROVED",
    "REJECTED": "❌ REJECTED",
    "PROCESSING": "🔄 PROCESSING",
    "PROCESSED": "💰 PROCESSED",
    "FAILED": "🚫 FAILED",
}
# Stripe charge / payment-intent states as an analyst reads them.
PAYMENT_BADGES = {
    "succeeded": "✅ succeeded",
    "failed": "❌ failed",
    "pending": "⏳ pending",
    "refunded": "↩️ refunded",
    "partially_refunded": "↩️ partly refunded",
    "disputed": "⚔️ disputed",
    "requires_payment_method": "❌ requires payment method",
    "canceled": "🚫 canceled",
    "processing": "🔄 processing",
}
# Payout states: only a paid payout is cash in the bank (payops.money.CASH_PAYOUT_STATUSES).
PAYOUT_BADGES = {
    "paid": "✅ paid",
    "pending": "⏳ pending",
    "in_transit": "🚚 in transit",
    "failed": "❌ failed (money back in the Stripe balance)",
    "canceled": "🚫 canceled (money back in the Stripe balance)",
}

# --- badges ------------------------------------------------------------------------
def priority_badges(priorities: Iterable[str] | str | None) -> str:
    """Badges for a request's priorities, most urgent first: ``"🔥 URGENT 💰 LARGE"``.

    Args:
        priorities: a list like ``["URGENT", "LARGE"]`` (as ``payops.refunds.queue`` gives),
            one name, or None / empty for a normal request ("").
    """
    if priorities is None or (isinstance(priorities, float) and math.isnan(priorities)):
        return ""
    if isinstance(priorities, str):
        priorities = [priorities]
    names = [str(p).upper() for p in priorities]
    ordered = [p for p in PRIORITY_BADGES if p in names]
    return " ".join(PRIORITY_BADGES[p] for p in ordered)


def payout_badge(status: str | None) -> str:
    """The badge of a payout status: ``payout_badge("failed")`` says the money is back in the balance."""
    if not status:
        return ""
    return PAYOUT_BADGES.get(str(status), str(status))


def status_badge(status: str | None) -> str:
    """The badge of a refund-request status: ``status_badge("PENDING") == "⏳ PENDING"``."""
    if not status:
        return ""
    return STATUS_BADGES.get(str(status).upper(), str(status))


def payment_badge(status: str | None, *, refunded: bool = False, disputed: bool = False,
                  partly_refunded: bool = False) -> str:
    """The badge of a payment: its Stripe status, or refunded / disputed where that matters more."""
    if disputed:
        return PAYMENT_BADGES["disputed"]
    if refunded:
        return PAYMENT_BADGES["refunded"]
    if partly_refunded:
        return PAYMENT_BADGES["partially_refunded"]
    if not status:
        return ""
    return PAYMENT_BADGES.get(str(status), str(status))


# --- links and values --------------------------------------------------------------
def dashboard_url(object_id: str, livemode: bool | None = False) -> str:
    """The Stripe dashboard page of an object, in test or live mode (:func:`payops.outputs.dashboard_url`).

    ``dashboard_url("pi_123")`` -> ``https://dashboard.stripe.com/test/payments/pi_123``;
    ``dashboard_url("cus_9", livemode=True)`` -> ``https://dashboard.stripe.com/customers/cus_9``.

    Raises:
        InvalidInput: the id is not a Stripe id payops links to (:data:`payops.outputs.STRIPE_ID`).
    """
    return outputs.dashboard_url(object_id, livemode)


def link(object_id: str | None, livemode: bool | None = False, text: str | None = None) -> str:
    """An HTML link to the object's dashboard page (opens a new tab); "" for no id.

    Only ids of :data:`payops.outputs.STRIPE_ID` become links; anything else is escaped text.
    """
    return outputs.html_link(object_id, livemode, text)


def money(amount: Any, currency: str | None) -> str:
    """An amount in minor units shown in its currency (``"$13.12"``, ``"¥1,000"``); "" if missing."""
    if amount is None or currency is None or _isna(amount) or _isna(currency):
        return ""
    return format_amount(int(amount), str(currency))


def age(hours: float | None) -> str:
    """A request's age in words a reviewer scans quickly: ``"5 h"``, ``"2 d 3 h"``."""
    if hours is None or _isna(hours):
        return ""
    total = int(hours)
    if total < 1:
        return "< 1 h"
    days, rest = divmod(total, 24)
    if not days:
        return f"{rest} h"
    return f"{days} d {rest} h" if rest else f"{days} d"


def _isna(value: Any) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


# --- tables ------------------------------------------------------------------------
def styled(
    df: pd.DataFrame,
    *,
    money_columns: Sequence[str] = (),
    currency_column: str = "currency",
    link_columns: Sequence[str] = (),
    livemode_column: str = "livemode",
    status_column: str | None = None,
    priorities_column: str | None = None,
    hide: Sequence[str] = (),
    caption: str | None = None,
):
    """A pandas Styler of ``df`` for a notebook: money per currency, badges, dashboard links.

    The frame is copied; ``df`` is not changed. The Styler's id is derived from the content,
    so re-running a notebook gives the same HTML.

    Args:
        df: the rows to show.
        money_columns: integer minor-unit columns, formatted with the row's currency.
        currency_column: the column holding each row's currency.
        link_columns: Stripe id columns turned into dashboard links.
        livemode_column: the column saying test or live (missing: test mode).
        status_column: a refund-request status column shown as a badge.
        priorities_column: a priorities column (lists) shown as badges.
        hide: columns to leave out (after they served for formatting, e.g. ``livemode``).
        caption: a caption above the table.
    """
    out = df.copy()
    cur = out[currency_column] if currency_column in out.columns else pd.Series([None] * len(out), index=out.index)
    for col in money_columns:
        if col in out.columns:
            out[col] = [money(a, c) for a, c in zip(out[col], cur, strict=False)]
    if status_column and status_column in out.columns:
        out[status_column] = [status_badge(s) for s in out[status_column]]
    if priorities_column and priorities_column in out.columns:
        out[priorities_column] = [priority_badges(p) for p in out[priorities_column]]
    for col in out.columns:
        if isinstance(out[col].dtype, pd.DatetimeTZDtype):
            out[col] = out[col].dt.strftime("%Y-%m-%d %H:%M UTC")
    # links, escaping (names, emails, notes come from Stripe or a user) and blanks: payops.outputs
    styler = outputs.table(out, link_columns=link_columns, livemode_column=livemode_column, hide=hide,
                           caption=caption)
    right = [c for c in money_columns if c in out.columns and c not in hide]
    if right:
        styler = styler.set_properties(subset=right, **{"text-align": "right"})
    return styler


# --- payments, read through payops.payments ------------------------------------------
# The review app and the notebooks read payments here under the names they have always used;
# the queries and the money rules live in payops.payments (these are the same functions).
payment_breakdown = payments.breakdown
payment_refunds = payments.refunds_of
data_range = payments.data_range
request_currencies = payments.request_currencies
recent_refunds = payments.recent_refunds
#: (label, key) of a payment's breakdown, for showing it (payops.payments.BREAKDOWN_FIGURES)
BREAKDOWN_FIGURES = payments.BREAKDOWN_FIGURES


def recent_payments(limit: int = 20, *, db: str | Path | None = None) -> pd.DataFrame:
    """The newest payments (charges), newest first, with a badge and their ids.

    Columns: created, badge, amount, currency, customer, customer_email, payment_intent,
    charge, payment_method_type, card_brand, failure_message, livemode.
    """
    return _with_payment_badge(payments.recent(limit, db=db))


def customer_payments(customer: str, limit: int = 50, *, db: str | Path | None = None) -> pd.DataFrame:
    """One customer's payments (charges), newest first, with badges (columns as :func:`recent_payments`)."""
    rows = payments.of_customer(customer, limit, db=db)
    return _with_payment_badge(rows.drop(columns=["customer", "customer_email"]))


def _with_payment_badge(df: pd.DataFrame) -> pd.DataFrame:
    badges = [
        payment_badge(s, refunded=bool(r), disputed=bool(d), partly_refunded=bool(ar and ar > 0))
        for s, r, d, ar in zip(df["status"], df["refunded"], df["disputed"], df["amount_refunded"].fillna(0),
                               strict=False)
    ]
    df.insert(1, "badge", badges)
    return df.drop(columns=["status", "refunded", "disputed", "amount_refunded"])


# --- charts and summaries ----------------------------------------------------------
def _major(amounts: Iterable[Any], currency: str) -> list[float]:
    # Floats only for drawing an axis; figures people read are formatted from integers.
    return [float(to_decimal(int(a), currency)) if not _isna(a) else float("nan") for a in amounts]


def chart_daily(daily: pd.DataFrame, column: str, *, title: str | None = None, money_column: bool = False,
                percent: bool = False, ax=None):
    """Draw one ``daily_metrics`` column over the days, per currency; returns the Axes (a list for money).

    A ratio (``percent``) is one line per currency on shared axes; money gets one panel per
    currency (amounts in different currencies do not share a scale).

    Args:
        daily: rows of :func:`payops.metrics.daily` (day, currency, ...).
        column: the metric, e.g. ``success_rate`` or ``gross_volume``.
        title: the chart title (default: the column name).
        money_column: the column is money in minor units (drawn in major units per currency).
        percent: the column is a ratio 0..1 (drawn as %).
        ax: draw on this Axes (not for money, which needs a panel per currency).
    """
    import matplotlib.pyplot as plt

    from payops.charts import plain_text

    plain_text()  # a currency or name is never parsed as mathtext
    title = title or column.replace("_", " ")
    parts = list(daily.sort_values("day").groupby("currency"))
    if money_column:
        # Biggest volume first, so the main currency is on top.
        parts.sort(key=lambda item: -len(item[1]))
        fig, grid = plt.subplots(len(parts) or 1, 1, sharex=True, squeeze=False,
                                 figsize=(9, 1.5 * max(len(parts), 1) + 0.8))
        axes = [a[0] for a in grid]
        for axis, (currency, part) in zip(axes, parts, strict=False):
            axis.plot(pd.to_datetime(part["day"]), _major(part[column], str(currency)), marker=".",
                      color="#635bff")
            axis.set_ylabel(str(currency).upper())
            axis.grid(alpha=0.3)
        axes[0].set_title(title)
        fig.autofmt_xdate()
        fig.tight_layout()
        return axes
    if ax is None:
        _, ax = plt.subplots(figsize=(9, 3.2))
    for currency, part in parts:
        values = part[column]
        if percent:
            values = [v * 100 if not _isna(v) else float("nan") for v in values]
        ax.plot(pd.to_datetime(part["day"]), values, marker=".", label=str(currency).upper())
    ax.set_title(title)
    if percent:
        ax.set_ylabel("%")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize="small")
    ax.figure.autofmt_xdate()
    return ax


def chart_top_customers(insights: pd.DataFrame, *, currency: str | None = None, n: int = 10, ax=None):
    """A horizontal bar chart of the ``n`` customers who spent most in one currency.

    Args:
        insights: rows of :func:`payops.metrics.customer_insights`.
        currency: which currency (default: the one with most customers).
    """
    import matplotlib.pyplot as plt

    from payops.charts import plain_text

    plain_text()  # customer names from Stripe are drawn as typed, never as mathtext
    df = insights.dropna(subset=["currency"])
    if currency is None:
        currency = str(df["currency"].value_counts().idxmax()) if len(df) else "usd"
    top = df[df["currency"] == currency].sort_values("spend", ascending=False).head(n).iloc[::-1]
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 0.35 * max(len(top), 3) + 1))
    labels = [str(name) if not _isna(name) and name else str(cid)
              for name, cid in zip(top["name"], top["customer"], strict=False)]
    ax.barh(labels, _major(top["spend"], currency), color="#635bff")
    ax.set_xlabel(f"spend ({currency.upper()})")
    ax.set_title(f"Top {len(top)} customers by spend in {currency.upper()}")
    ax.grid(axis="x", alpha=0.3)
    return ax


def fee_breakdown(daily: pd.DataFrame) -> pd.DataFrame:
    """Per currency: the money figures of :data:`payops.money.FIGURES` summed over the rows.

    Gross volume, refunded, disputed, Stripe fees, platform fees, net and net after platform
    fee. Sums stay per currency (integers in minor units); use :func:`styled` with
    ``money_columns`` to show them.
    """
    present = [c for c in money_figures.FIGURES if c in daily.columns]
    out = daily.groupby("currency", as_index=False)[present].sum()
    for c in present:
        out[c] = out[c].astype("int64")
    return out.sort_values("gross_volume", ascending=False).reset_index(drop=True)

"""The report's money waterfall and its "Cash" section: payouts of the period and the balance.

Everything here reads what :mod:`payops.ledger` defines (the waterfall's terms, summed per
currency in ``daily_metrics``' ``ledger_*`` columns) and :mod:`payops.payouts` (verdicts,
balance); this module only shapes tables and draws the chart.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pandas as pd
from matplotlib.figure import Figure

from payops import ledger, payouts
from payops.charts import empty, grid
from payops.money import format_amount, to_decimal

__all__ = ["waterfall_table", "waterfall_chart", "payouts_table", "balance_table"]

_COLORS = {"gross_volume": "#4C72B0", "refunds": "#DD8452", "dispute_losses": "#937860",
           "stripe_fees": "#C44E52", "tutors_share": "#8172B3", "platform_net_revenue": "#55A868"}


def waterfall_table(summary: pd.DataFrame) -> pd.DataFrame:
    """The waterfall per currency (rows: terms; amounts formatted), from a period summary of
    :func:`payops.metrics.summary` (which sums ``daily_metrics``' ``ledger_*`` columns)."""
    rows = []
    for r in summary.sort_values("currency").to_dict("records"):
        cur = r["currency"]
        for t in ledger.TERMS:
            value = int(r.get(f"ledger_{t.name}", 0) or 0)
            rows.append({"currency": cur.upper(), "term": t.label, "amount": format_amount(value, cur),
                         "share of gross": _share(value, int(r.get("ledger_gross_volume", 0) or 0))})
        check = ledger.check_equation({t.name: int(r.get(f"ledger_{t.name}", 0) or 0) for t in ledger.TERMS})
        rows.append({"currency": cur.upper(), "term": "gross - the terms above (must be 0)",
                     "amount": format_amount(check, cur), "share of gross": ""})
    return pd.DataFrame(rows).set_index(["currency", "term"]) if rows else pd.DataFrame(rows)


def _share(value: int, gross: int) -> str:
    return f"{100 * value / gross:.1f}%" if gross else ""


def waterfall_chart(summary: pd.DataFrame) -> Figure:
    """One waterfall per currency: gross volume, then each term taken from it, ending at 0.

    The floating bars are the terms of :data:`payops.ledger.TERMS`; platform net revenue is the
    last one and ends exactly at 0, because the terms sum to gross volume (any difference would
    show as a gap). Amounts in major units of the currency.
    """
    data = summary[summary.get("ledger_gross_volume", pd.Series(dtype="int64")).fillna(0) != 0] \
        if "ledger_gross_volume" in summary else summary.iloc[0:0]
    if data.empty:
        return empty("No balance transactions in this period.")
    data = data.sort_values("currency")
    fig, axes = grid(len(data), 3.4, bottom=0.8, gap=1.1)
    for ax, r in zip(axes, data.to_dict("records"), strict=False):
        cur = r["currency"]
        gross = float(to_decimal(int(r["ledger_gross_volume"]), cur))
        labels, bottoms, heights, colors = [], [], [], []
        level = gross
        for t in ledger.TERMS:
            value = float(to_decimal(int(r[f"ledger_{t.name}"]), cur))
            labels.append(t.label)
            colors.append(_COLORS[t.name])
            if t.total:
                bottoms.append(0.0)
                heights.append(gross)
            else:
                level -= value
                bottoms.append(level)
                heights.append(value)
        ax.bar(range(len(labels)), heights, bottom=bottoms, color=colors, width=0.65)
        for k, (b, h) in enumerate(zip(bottoms, heights, strict=True)):
            ax.text(k, b + h, format_amount(int(round(h * 10 ** _exp(cur))), cur), ha="center", va="bottom",
                    fontsize="x-small")
        ax.axhline(0, color="black", linewidth=0.8)
        ax.set_xticks(range(len(labels)), labels, fontsize="small")
        left = "ends exactly at 0" if abs(level) < 1e-9 else f"{level:+,.3f} NOT accounted for"
        ax.set_title(f"{cur.upper()}: gross volume = the terms to its right ({left})", fontsize="small")
        ax.set_ylabel(cur.upper())
    return fig


def _exp(currency: str) -> int:
    from payops.money import exponent

    return exponent(currency)


def payouts_table(start: date, end: date, *, db=None) -> pd.DataFrame:
    """Payouts created in the period (UTC days), each with its verdict against its transactions."""
    found = payouts.verdicts(start, end, db=db)
    if not found:
        return pd.DataFrame({"payout": ["No payouts in this period."]})
    return pd.DataFrame([{
        "payout": v.id, "created": v.created.astimezone(UTC).strftime("%Y-%m-%d") if v.created else "",
        "currency": v.currency.upper(), "amount": format_amount(v.amount, v.currency), "status": v.status,
        "transactions": v.transactions, "reconciled": "yes" if v.reconciled else "NO",
        "verdict": v.verdict,
    } for v in found]).set_index("payout")


def balance_table(end: date, *, db=None) -> pd.DataFrame:
    """The balance per currency at the end of the period's last day (UTC)."""
    at = datetime.combine(end + timedelta(days=1), time(), UTC)
    frame = payouts.balance(at, db=db)
    if frame.empty:
        return pd.DataFrame({"currency": ["No balance transactions."]})
    return pd.DataFrame({
        "currency": frame["currency"].str.upper(),
        "available": [format_amount(int(v), c) for v, c in zip(frame["available"], frame["currency"], strict=True)],
        "pending": [format_amount(int(v), c) for v, c in zip(frame["pending"], frame["currency"], strict=True)],
        "total": [format_amount(int(v), c) for v, c in zip(frame["total"], frame["currency"], strict=True)],
    }).set_index("currency")

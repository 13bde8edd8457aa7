"""The report's charts: each a function from data (DataFrames of payops) to a matplotlib Figure.

:class:`payops.reports.Report` gathers the data and calls these; they query nothing and
decide nothing. Amounts are drawn in major units of their currency (floats only for the
axes); figures shown as text stay exact. Figures are built without pyplot (no global
state), with fixed margins: a layout engine draws every figure several times, which was
most of a report's rendering time.
"""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure

from payops import money
from payops.money import to_decimal
from payops.periods import Period

__all__ = ["grid", "empty", "volume", "gross_split", "refund_requests", "processing", "failures", "top_customers"]


def _major(values, currency: str) -> list[float]:
    # plotting needs floats; every figure shown as text stays exact
    return [float(to_decimal(int(v), currency)) for v in values]


def grid(n: int, height: float = 3.0, sharex: bool = False, bottom: float = 0.6,
         gap: float = 0.55) -> tuple[Figure, list]:
    """A figure of ``n`` panels stacked, ``height`` inches each, with fixed margins in inches.

    Returns:
        The figure and its axes, top to bottom.
    """
    n = max(n, 1)
    total = height * n
    top = 0.4  # room for the first panel's title; gap: between panels (title, x labels)
    panel = max((total - top - bottom - gap * (n - 1)) / n, 0.3)
    fig = Figure(figsize=(10, total))
    axes = list(fig.subplots(n, 1, squeeze=False, sharex=sharex)[:, 0])
    fig.subplots_adjust(left=0.2, right=0.96, top=1 - top / total, bottom=bottom / total, hspace=gap / panel)
    return fig, axes


def empty(message: str) -> Figure:
    """A small figure that says ``message`` instead of drawing an empty chart."""
    fig, (ax,) = grid(1, 1.2)
    ax.axis("off")
    ax.text(0.5, 0.5, message, ha="center", va="center")
    return fig


def volume(trend: pd.DataFrame, p: Period, min_success_rate: float) -> Figure:
    """Success rate per day (one line per currency), then gross volume per day, one panel per currency.

    Args:
        trend: daily metrics rows from ``p.trend_start`` to ``p.end``.
        p: the period (shaded).
        min_success_rate: the KPI threshold (a dashed line).
    """
    df = trend
    if df.empty:
        return empty("No payments in this period.")
    cur = sorted(df["currency"].unique())
    fig, axes = grid(len(cur) + 1, 2.0, sharex=True)  # one date axis, at the bottom
    half = pd.Timedelta(hours=12)
    lo, hi = pd.Timestamp(p.trend_start) - half, pd.Timestamp(p.end) + half
    rate_ax = axes[0]
    for c in cur:
        d = df[df["currency"] == c]
        rate_ax.plot(pd.to_datetime(d["day"]), d["success_rate"] * 100, marker="o", label=c.upper())
    limit = float(min_success_rate) * 100
    rate_ax.axhline(limit, color="#C44E52", linestyle="--", linewidth=1, label=f"KPI {limit:g}%")
    rate_ax.set_ylabel("success %")
    rate_ax.set_title("Success rate per day (succeeded / decided payments)")
    rate_ax.legend(loc="lower left", ncol=len(cur) + 1, fontsize="small")
    for ax, c in zip(axes[1:], cur, strict=False):
        d = df[df["currency"] == c]
        ax.bar(pd.to_datetime(d["day"]), _major(d["gross_volume"], c), color="#4C72B0")
        ax.set_ylabel(c.upper())
        ax.set_title(f"{c.upper()}: gross volume per day")
    for ax in axes:
        ax.axvspan(pd.Timestamp(p.start) - half, pd.Timestamp(p.end) + half, color="#f2c14e", alpha=0.15)
        ax.set_xlim(lo, hi)
    return fig


def gross_split(current: pd.DataFrame, previous: pd.DataFrame) -> Figure:
    """Where gross volume went, per currency, this period and the previous one.

    One stacked bar per row, split into :data:`payops.money.GROSS_PARTS` (refunded,
    disputed, Stripe fees, platform fees, net after platform fee) as shares of gross
    volume: the parts add up to gross volume exactly, so every bar ends at 100%.

    Args:
        current: the period's summary per currency (:func:`payops.metrics.summary`).
        previous: the previous period's summary.
    """
    currencies = sorted(current["currency"]) if len(current) else []
    if not currencies:
        return empty("No payments in this period.")
    colors = {"refunded_amount": "#DD8452", "disputed_amount": "#937860", "stripe_fees": "#C44E52",
              "platform_fees": "#8172B3", "net_after_platform_fee": "#55A868"}
    prev = previous.set_index("currency")
    cur = current.set_index("currency")
    rows = []
    for c in currencies:
        for label, frame in ((f"{c.upper()} this period", cur), (f"{c.upper()} previous", prev)):
            if c in frame.index and int(frame.loc[c, "gross_volume"]):
                rows.append((label, c, frame.loc[c]))
    if not rows:
        return empty("No gross volume in this period.")
    fig, (ax,) = grid(1, 0.5 * len(rows) + 1.6, bottom=1.0)
    left = [0.0] * len(rows)
    for part in money.GROSS_PARTS:
        shares = [100 * int(row[part]) / int(row["gross_volume"]) for _, _, row in rows]
        ax.barh(range(len(rows)), shares, left=left, height=0.6, color=colors[part],
                label=money.FIGURES[part][0])
        for k, (x0, w) in enumerate(zip(left, shares, strict=True)):
            if w >= 6:  # the amount fits inside its segment
                ax.text(x0 + w / 2, k, f"{w:.0f}%", ha="center", va="center", fontsize="small", color="white")
        left = [x0 + w for x0, w in zip(left, shares, strict=True)]
    ax.set_yticks(range(len(rows)), [r[0] for r in rows])
    ax.invert_yaxis()
    ax.set_xlim(0, 100)
    ax.set_xlabel("% of gross volume (amounts per currency in the table above)")
    ax.set_title("Where gross volume went")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=len(money.GROSS_PARTS), fontsize="small")
    return fig


def refund_requests(df: pd.DataFrame) -> Figure:
    """Refund requests opened in the period: one bar per currency and status, stacked by priority.

    Args:
        df: :func:`payops.insights.refund_requests_breakdown` rows.
    """
    if df.empty:
        return empty("No refund requests opened in this period.")
    df = df.assign(row=df["currency"].str.upper() + "  " + df["status"])
    pivot = df.pivot_table(index="row", columns="priority", values="requests", aggfunc="sum", fill_value=0)
    pivot = pivot.sort_index(ascending=False)
    fig, (ax,) = grid(1, max(2.0, 0.32 * len(pivot) + 1.2), bottom=0.7)
    colors = {"URGENT": "#C44E52", "HIGH": "#DD8452", "LARGE": "#8172B3", "NORMAL": "#AAB7C4"}
    left = [0] * len(pivot)
    for prio in ("URGENT", "HIGH", "LARGE", "NORMAL"):
        if prio in pivot:
            ax.barh(pivot.index, pivot[prio], left=left, label=prio, color=colors[prio])
            left = [a + b for a, b in zip(left, pivot[prio], strict=False)]
    ax.set_xlim(0, max(left) * 1.3)  # room for the legend on the right
    ax.set_title("Refund requests by currency and status, stacked by priority")
    ax.set_xlabel("requests")
    ax.legend(loc="lower right")
    return fig


def processing(df: pd.DataFrame, max_processing_hours: float) -> Figure:
    """Distribution of request -> processed hours in the period, one outline per currency.

    Args:
        df: :func:`payops.metrics.processing_times` rows.
        max_processing_hours: the KPI limit (a dashed line).
    """
    if df.empty:
        return empty("No refund requests processed in this period.")
    limit = float(max_processing_hours)
    fig, (ax,) = grid(1, 3.2, bottom=0.7)
    top = max(float(df["hours"].max()), limit) * 1.05
    bins = [top * i / 24 for i in range(25)]
    for c in sorted(df["currency"].unique()):
        hours = df.loc[df["currency"] == c, "hours"]
        ax.hist(hours, bins=bins, histtype="step", linewidth=2,
                label=f"{c.upper()}: median {hours.median():.1f} h, n={len(hours)}")
    ax.axvline(limit, color="#C44E52", linestyle="--", label=f"KPI limit {limit:g} h")
    ax.set_title("Refund processing time per currency")
    ax.set_xlabel("hours from request to processed")
    ax.set_ylabel("requests")
    ax.legend()
    return fig


def failures(df: pd.DataFrame) -> Figure:
    """Failed payments of the period by failure code, one bar per currency.

    Args:
        df: :func:`payops.insights.failure_codes` rows.
    """
    if df.empty:
        return empty("No failed payments in this period.")
    codes = list(df.groupby("failure_code")["failed"].sum().sort_values().index)
    cur = sorted(df["currency"].unique())
    fig, (ax,) = grid(1, max(2.0, 0.3 * len(codes) * max(1, len(cur) / 2) + 1.2), bottom=0.7)
    height = 0.8 / len(cur)
    for i, c in enumerate(cur):
        d = df[df["currency"] == c].set_index("failure_code")["failed"].reindex(codes, fill_value=0)
        ax.barh([k + i * height - 0.4 + height / 2 for k in range(len(codes))], d.values, height=height,
                label=c.upper())
    ax.set_yticks(range(len(codes)), codes)
    ax.set_xlim(0, float(df["failed"].max()) * 1.25)  # room for the legend on the right
    ax.set_title("Failed payments by failure code (counts per currency)")
    ax.set_xlabel("failed charges")
    ax.legend(loc="lower right")
    return fig


def top_customers(df: pd.DataFrame) -> Figure:
    """The biggest spenders of the period, one panel per currency.

    Args:
        df: :func:`payops.insights.top_customers` rows (as many per currency as to draw).
    """
    if df.empty:
        return empty("No succeeded payments in this period.")
    cur = sorted(df["currency"].unique())
    fig, axes = grid(len(cur), 2.6, bottom=0.7, gap=0.9)
    for ax, c in zip(axes, cur, strict=False):
        d = df[df["currency"] == c].iloc[::-1]
        names = d["name"].fillna(d["customer"])
        # two customers may share a name: tell them apart by the end of their id
        labels = [f"{n} ({cid[-4:]})" if (names == n).sum() > 1 else n
                  for n, cid in zip(names, d["customer"], strict=False)]
        ax.barh(range(len(d)), _major(d["spend"], c), color="#4C72B0")
        ax.set_yticks(range(len(d)), labels)
        ax.set_title(f"{c.upper()}: top customers by spend")
        ax.set_xlabel(f"spend ({c.upper()})")
    return fig

"""The report's charts: each a function from data (DataFrames of payops) to a matplotlib Figure.

:class:`payops.reports.Report` gathers the data and calls these; they query nothing and
decide nothing. Amounts are drawn in major units of their currency (floats only for the
axes); figures shown as text stay exact. Figures are built without pyplot (no global
state), with fixed margins: a layout engine draws every figure several times, which was
most of a report's rendering time.

Names in charts come from Stripe (a customer called ``$x^{$``): :func:`plain_text` makes
matplotlib draw every text as typed, never as mathtext, and every chart of payops (here
and in :mod:`payops.ui.display`) goes through it. Legends sit outside the data, counts have
whole-number ticks, a rate is drawn with the count it is a rate of, and a line never joins
two days across a day without data.
"""

from __future__ import annotations

import matplotlib
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from payops import money
from payops.money import to_decimal
from payops.periods import Period

__all__ = ["plain_text", "grid", "empty", "volume", "gross_split", "refund_requests", "processing", "failures",
           "top_customers"]


def plain_text() -> None:
    """Draw every text of every chart as typed: ``$...$`` in a customer's name is not math.

    Matplotlib reads ``text.parse_math`` when it creates a text, and tick labels are created
    while a figure is drawn (after the notebook cell returned), so the setting is global for
    the process: a payops kernel never wants a Stripe name parsed as mathtext.
    """
    matplotlib.rcParams["text.parse_math"] = False


plain_text()


def _legend_outside(ax: Axes, **kw) -> None:
    """A legend to the right of the axes, where it covers no data (:func:`grid` leaves the room)."""
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, fontsize="small",
              frameon=False, **kw)


def _counts(axis) -> None:
    axis.set_major_locator(MaxNLocator(integer=True))


def _short(label: str, width: int = 26) -> str:
    # a long name would push the panel off the figure: the table below has it in full
    return label if len(label) <= width else label[: width - 1] + "…"


def _major(values, currency: str) -> list[float]:
    # plotting needs floats; every figure shown as text stays exact
    return [float(to_decimal(int(v), currency)) for v in values]


def grid(n: int, height: float = 3.0, sharex: bool = False, bottom: float = 0.6,
         gap: float = 0.55, right: float = 0.96) -> tuple[Figure, list]:
    """A figure of ``n`` panels stacked, ``height`` inches each, with fixed margins in inches.

    ``right`` is where the panels end (a fraction of the width): less leaves room for a
    legend outside them.

    Returns:
        The figure and its axes, top to bottom.
    """
    n = max(n, 1)
    total = height * n
    top = 0.4  # room for the first panel's title; gap: between panels (title, x labels)
    panel = max((total - top - bottom - gap * (n - 1)) / n, 0.3)
    plain_text()
    fig = Figure(figsize=(10, total))
    axes = list(fig.subplots(n, 1, squeeze=False, sharex=sharex)[:, 0])
    fig.subplots_adjust(left=0.2, right=right, top=1 - top / total, bottom=bottom / total, hspace=gap / panel)
    return fig, axes


def empty(message: str) -> Figure:
    """A small figure that says ``message`` instead of drawing an empty chart."""
    fig, (ax,) = grid(1, 1.2)
    ax.axis("off")
    ax.text(0.5, 0.5, message, ha="center", va="center")
    return fig


def _daily(d: pd.DataFrame, days: pd.DatetimeIndex) -> pd.DataFrame:
    """One currency's rows on every day of ``days`` (NaN on days without a row: a gap, not a line)."""
    return d.assign(day=pd.to_datetime(d["day"])).set_index("day").reindex(days)


# with more days than this, only the rates below the KPI carry their count as text
_LABEL_EVERY_RATE_UP_TO = 31


def _rates(ax: Axes, df: pd.DataFrame, cur: list[str], days: pd.DatetimeIndex, limit: float) -> None:
    """Success rate per day and currency; each point sized by, and labelled with, its count."""
    label_all = len(days) <= _LABEL_EVERY_RATE_UP_TO
    for k, c in enumerate(cur):
        d = _daily(df[df["currency"] == c], days)
        decided = (d["succeeded"].fillna(0) + d["failed"].fillna(0)).astype(int)
        rate = (d["success_rate"] * 100).where(decided > 0)
        (line,) = ax.plot(days, rate, linewidth=1.2, label=c.upper())
        seen = rate.notna()
        sizes = [12 + 60 * min(n, 50) / 50 for n in decided[seen]]
        ax.scatter(days[seen.to_numpy()], rate[seen], s=sizes, color=line.get_color(), zorder=3)
        for day, r, n in zip(days[seen.to_numpy()], rate[seen], decided[seen], strict=True):
            if label_all or r < limit:
                # one row of counts per currency, so two currencies at 100% stay readable
                ax.annotate(f"{n}", (day, r), textcoords="offset points", xytext=(0, 5 + 8 * k), ha="center",
                            fontsize=7, color=line.get_color())


def volume(trend: pd.DataFrame, p: Period, min_success_rate: float) -> Figure:
    """Success rate per day (one line per currency), then gross volume per day, one panel per currency.

    Each rate point is labelled with the number of decided payments it is a rate of (and
    sized by it): a 0% day of one payment reads as one payment. Days without payments leave
    a gap in the line.

    Args:
        trend: daily metrics rows from ``p.trend_start`` to ``p.end``.
        p: the period (shaded).
        min_success_rate: the KPI threshold (a dashed line).
    """
    df = trend
    if df.empty:
        return empty("No payments in this period.")
    cur = sorted(df["currency"].unique())
    fig, axes = grid(len(cur) + 1, 2.0, sharex=True, right=0.85)  # one date axis, at the bottom
    half = pd.Timedelta(hours=12)
    lo, hi = pd.Timestamp(p.trend_start) - half, pd.Timestamp(p.end) + half
    days = pd.date_range(p.trend_start, p.end, freq="D")
    rate_ax = axes[0]
    limit = float(min_success_rate) * 100
    _rates(rate_ax, df, cur, days, limit)
    rate_ax.axhline(limit, color="#C44E52", linestyle="--", linewidth=1, label=f"KPI {limit:g}%")
    rate_ax.set_ylabel("success %")
    bottom, top = rate_ax.get_ylim()[0], 106 + 7 * len(cur)  # room for the counts above 100%
    rate_ax.set_yticks([t for t in rate_ax.get_yticks() if 0 <= t <= 100])  # no "125%" tick
    rate_ax.set_ylim(bottom, top)
    rate_ax.set_title("Success rate per day (numbers: decided payments that day)")
    _legend_outside(rate_ax)
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
    fig, (ax,) = grid(1, max(0.5 * len(rows) + 1.6, 2.4), bottom=0.7, right=0.8)
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
    _legend_outside(ax)
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
    fig, (ax,) = grid(1, max(2.0, 0.32 * len(pivot) + 1.2), bottom=0.7, right=0.85)
    colors = {"URGENT": "#C44E52", "HIGH": "#DD8452", "LARGE": "#8172B3", "NORMAL": "#AAB7C4"}
    left = [0] * len(pivot)
    for prio in ("URGENT", "HIGH", "LARGE", "NORMAL"):
        if prio in pivot:
            ax.barh(pivot.index, pivot[prio], left=left, label=prio, color=colors[prio])
            left = [a + b for a, b in zip(left, pivot[prio], strict=False)]
    ax.set_title("Refund requests by currency and status, stacked by priority")
    ax.set_xlabel("requests")
    _counts(ax.xaxis)
    _legend_outside(ax)
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
    fig, (ax,) = grid(1, 3.2, bottom=0.7, right=0.72)
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
    _counts(ax.yaxis)
    _legend_outside(ax)
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
    fig, (ax,) = grid(1, max(2.0, 0.3 * len(codes) * max(1, len(cur) / 2) + 1.2), bottom=0.7, right=0.88)
    height = 0.8 / len(cur)
    for i, c in enumerate(cur):
        d = df[df["currency"] == c].set_index("failure_code")["failed"].reindex(codes, fill_value=0)
        ax.barh([k + i * height - 0.4 + height / 2 for k in range(len(codes))], d.values, height=height,
                label=c.upper())
    ax.set_yticks(range(len(codes)), codes)
    ax.set_title("Failed payments by failure code (counts per currency)")
    ax.set_xlabel("failed charges")
    _counts(ax.xaxis)
    _legend_outside(ax)
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
        labels = [_short(f"{n} ({cid[-4:]})" if (names == n).sum() > 1 else str(n))
                  for n, cid in zip(names, d["customer"], strict=False)]
        ax.barh(range(len(d)), _major(d["spend"], c), color="#4C72B0")
        ax.set_yticks(range(len(d)), labels)
        ax.set_title(f"{c.upper()}: top customers by spend")
        ax.set_xlabel(f"spend ({c.upper()})")
    return fig

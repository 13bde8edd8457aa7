"""The marketplace's money waterfall: the one definition of every term, from balance transactions.

Stripe's balance transactions are the ledger. The platform takes destination charges with
``application_fee_amount`` and ``transfer_data.destination``; each succeeded charge of ``A``
with application fee ``F`` is followed by a transfer of ``A - F`` to the tutor's connected
account. Per currency and period (a balance transaction counts on the day it was *created*):

    gross volume = refunds + dispute losses + Stripe fees + tutors' share + platform net revenue

================  ==========================================================================
term              balance transactions (``type`` / ``reporting_category``) and sign
================  ==========================================================================
gross volume      ``amount`` of charges (types ``charge``, ``payment``)
refunds           ``-amount`` of refunds and refund failures (types ``refund``,
                  ``payment_refund``, ``refund_failure``, ``payment_failure_refund``)
dispute losses    ``-amount`` of dispute withdrawals and reinstatements (category ``dispute``
                  and ``dispute_reversal``: a won dispute gives the funds back, so it nets to 0)
Stripe fees       ``fee`` of every balance transaction above and below (processing, dispute fees)
tutors' share     ``-amount`` of transfers and their reversals (types ``transfer``,
                  ``transfer_refund``, ``transfer_cancel``, ``transfer_failure``)
platform net      ``net`` of every balance transaction above (what the platform keeps)
================  ==========================================================================

The equation holds exactly because ``net = amount - fee`` on every balance transaction.
Payouts (``payout``, ``payout_cancel``, ``payout_failure``) move cash, not revenue, and are
outside the waterfall; any other balance transaction (an application fee of a direct
charge, a manual adjustment) is ``other`` and shown beside the waterfall, never folded in.

The reversal rule (the demo and the fake Stripe follow it): a refund of ``R`` on a charge of
``A`` with application fee ``F`` refunds the application fee by ``R * F / A`` (half-even) and
reverses the tutor's transfer by the rest, ``R - R * F / A``; the refund that completes the
charge's refunds takes what is left of both, so a full refund returns exactly ``F`` and ``A - F``.
Disputes are borne by the platform: a dispute never reverses a transfer.

Every term is rendered here as portable SQL (no engine-specific macros), for DuckDB and for
the Spark path that transpiles :func:`payops.metrics.daily_metrics_query`.
"""

from __future__ import annotations

from dataclasses import dataclass

from payops.money import div_half_even

__all__ = [
    "TERMS", "WATERFALL", "DAILY_COLUMNS", "Term", "GROSS_TYPES", "REFUND_TYPES", "DISPUTE_CATEGORIES",
    "TRANSFER_TYPES", "PAYOUT_TYPES", "term_sql", "in_waterfall_sql", "sums_sql", "daily_sql", "waterfall_of",
    "reversal_split", "check_equation",
]

GROSS_TYPES = ("charge", "payment")
REFUND_TYPES = ("refund", "payment_refund", "refund_failure", "payment_failure_refund")
DISPUTE_CATEGORIES = ("dispute", "dispute_reversal")
TRANSFER_TYPES = ("transfer", "transfer_refund", "transfer_cancel", "transfer_failure")
PAYOUT_TYPES = ("payout", "payout_cancel", "payout_failure")


@dataclass(frozen=True)
class Term:
    """One line of the waterfall: its column name, label, and whether it is the total."""

    name: str
    label: str
    total: bool = False


# The order the reports draw them: gross, then what is taken from it, then what is left.
TERMS: tuple[Term, ...] = (
    Term("gross_volume", "Gross volume", total=True),
    Term("refunds", "Refunds"),
    Term("dispute_losses", "Dispute losses"),
    Term("stripe_fees", "Stripe fees"),
    Term("tutors_share", "Tutors' share"),
    Term("platform_net_revenue", "Platform net revenue"),
)
# the terms that sum to gross volume
WATERFALL: tuple[str, ...] = tuple(t.name for t in TERMS if not t.total)


def _in(values: tuple[str, ...]) -> str:
    return "(" + ", ".join(f"'{v}'" for v in values) + ")"


@dataclass(frozen=True)
class _Flow:
    """The balance transactions whose ``amount`` one term takes, and with which sign."""

    term: str
    types: tuple[str, ...]
    categories: tuple[str, ...] | None = None  # also required: a reporting_category among these
    sign: int = -1

    def sql(self, t: str) -> str:
        p = f"{t}." if t else ""
        match = f"{p}type IN {_in(self.types)}"
        return f"({match} AND {p}reporting_category IN {_in(self.categories)})" if self.categories else match

    def matches(self, typ: object, category: object) -> bool:
        return typ in self.types and (self.categories is None or category in self.categories)


# The one classification of balance transactions, used by the SQL and the Python forms alike.
_FLOWS: tuple[_Flow, ...] = (
    _Flow("gross_volume", GROSS_TYPES, sign=1),
    _Flow("refunds", REFUND_TYPES),
    _Flow("dispute_losses", ("adjustment",), DISPUTE_CATEGORIES),
    _Flow("tutors_share", TRANSFER_TYPES),
)
_BY_TERM = {f.term: f for f in _FLOWS}
# the terms taken from every waterfall balance transaction's own column, whatever its flow
_COLUMN_TERMS = {"stripe_fees": "fee", "platform_net_revenue": "net"}


def in_waterfall_sql(t: str = "") -> str:
    """A boolean SQL expression: the balance transaction (alias ``t``) is one of the waterfall's."""
    return "(" + " OR ".join(f.sql(t) for f in _FLOWS) + ")"


def term_sql(name: str, t: str = "") -> str:
    """The SQL value one balance transaction (alias ``t``) adds to the term ``name`` (0 if none).

    Args:
        name: a :data:`TERMS` name, or ``other_net`` (what lies outside the waterfall and payouts).
        t: the table alias of ``balance_transactions``, or "" for none.
    """
    p = f"{t}." if t else ""
    if name in _BY_TERM:
        flow = _BY_TERM[name]
        return f"CASE WHEN {flow.sql(t)} THEN {'' if flow.sign > 0 else '-'}{p}amount ELSE 0 END"
    if name in _COLUMN_TERMS:
        return f"CASE WHEN {in_waterfall_sql(t)} THEN {p}{_COLUMN_TERMS[name]} ELSE 0 END"
    if name == "other_net":
        return (f"CASE WHEN NOT {in_waterfall_sql(t)} AND {p}type NOT IN {_in(PAYOUT_TYPES)} "
                f"THEN {p}net ELSE 0 END")
    raise ValueError(f"unknown waterfall term {name!r}")


def sums_sql(t: str = "", prefix: str = "") -> str:
    """``sum(...) AS <prefix><term>`` for every term (and ``other_net``), for a SELECT list."""
    names = [x.name for x in TERMS] + ["other_net"]
    return ",\n       ".join(f"coalesce(sum({term_sql(n, t)}), 0) AS {prefix}{n}" for n in names)


# daily_metrics' columns of the waterfall: ledger_<term>, and ledger_other_net beside it
DAILY_COLUMNS: tuple[str, ...] = tuple(f"ledger_{t.name}" for t in TERMS) + ("ledger_other_net",)


def daily_sql(t: str = "") -> dict[str, str]:
    """The pieces ``daily_metrics.sql`` takes: the per-bucket sums, their per-day totals, the columns."""
    names = [x.name for x in TERMS] + ["other_net"]
    return {
        "ledger_sums": sums_sql(t, prefix="wf_").replace(",\n       ", ",\n           "),
        "ledger_totals": ", ".join(f"sum(wf_{n}) AS wf_{n}" for n in names),
        "ledger_columns": ",\n       ".join(f"coalesce(bt.wf_{n}, 0)::BIGINT AS ledger_{n}" for n in names),
    }


def waterfall_of(bts: list[dict]) -> dict[str, int]:
    """The waterfall of balance transactions given as dicts (``type``, ``reporting_category``,
    ``amount``, ``fee``, ``net``): the Python form of :func:`term_sql`, for one payment."""
    out = {t.name: 0 for t in TERMS} | {"other_net": 0}
    for b in bts:
        typ, net_ = b.get("type"), int(b.get("net") or 0)
        flow = next((f for f in _FLOWS if f.matches(typ, b.get("reporting_category"))), None)
        if flow is None:
            if typ not in PAYOUT_TYPES:
                out["other_net"] += net_
            continue
        out[flow.term] += flow.sign * int(b.get("amount") or 0)
        out["stripe_fees"] += int(b.get("fee") or 0)
        out["platform_net_revenue"] += net_
    return out


def check_equation(row: dict) -> int:
    """gross volume - (the sum of the other terms): 0 when the waterfall holds."""
    return int(row["gross_volume"]) - sum(int(row[n]) for n in WATERFALL)


def reversal_split(refund: int, charge_amount: int, app_fee: int, *, refunded_before: int = 0,
                   fee_refunded_before: int = 0) -> tuple[int, int]:
    """(application fee refund, transfer reversal) of one refund, by the reversal rule.

    Args:
        refund: the refund's amount ``R`` (minor units).
        charge_amount: the charge's captured amount ``A``.
        app_fee: its application fee ``F``.
        refunded_before: the charge's earlier refunds (that did not fail).
        fee_refunded_before: the application fee already refunded by them.
    """
    if refund <= 0 or charge_amount <= 0:
        return 0, 0
    if refunded_before + refund >= charge_amount:  # the last refund takes what is left of both
        fee_back = app_fee - fee_refunded_before
    else:
        fee_back = min(app_fee - fee_refunded_before, div_half_even(refund * app_fee, charge_amount))
    return fee_back, refund - fee_back

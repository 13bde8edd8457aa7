"""The one definition of each refund-request rule, in Python and as SQL text.

* **LARGE**: the *cumulative* amount requested on the payment is above ``[refunds]
  large_above`` for its currency: the request's own amount plus every earlier request on the
  same payment that is open or processed (PENDING, APPROVED, PROCESSING, PROCESSED), so a
  120.00 refund split as 50 + 50 + 20 cannot dodge four-eyes.
* **URGENT** / **HIGH**: a PENDING request asked for more than ``urgent_after_days`` /
  more than ``high_after_days`` (and not URGENT) ago. A request can be URGENT and LARGE.
* **open**: a request in :data:`~payops.refunds.OPEN_STATUSES`; its amount counts
  against what is left to refund.
* **decided at**: ``decided_at``; for a request that left PENDING without one (an old or
  repaired row) the moment it was processed, else its last change.
* **pending at t**: asked at or before ``t`` and not decided by ``t``
  (``requested_at <= t AND (decided IS NULL OR decided > t)``).

The SQL forms render plain, portable SQL text (no DuckDB macros) around the column
expressions and moments a caller passes in, so the review queue, the metrics, ``status``
and exports all count the same requests. Values are rendered as literals only where they
come from the settings (thresholds) or were checked here (currency codes).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING

import duckdb

from payops.config import RefundPolicy, Settings, get_settings
from payops.refunds.model import OPEN_STATUSES

if TYPE_CHECKING:
    from payops.refunds.model import RefundRequest

__all__ = [
    "large_threshold", "is_large", "priority_cutoffs", "priorities", "priority", "decided_moment",
    "is_pending_at", "open_sql", "decided_at_sql", "pending_at_sql", "priority_flags_sql", "priority_sql",
    "large_thresholds_sql", "LARGE_COUNTED", "cumulative_amount", "is_large_cumulative", "cumulative_sql",
]

# The requests whose amounts add up on a payment for LARGE: open ones and processed ones.
LARGE_COUNTED = (*OPEN_STATUSES, "PROCESSED")

_CURRENCY = re.compile(r"[A-Za-z]{3}")
_NO_LIMIT = 9223372036854775807  # BIGINT max: a currency without a threshold row is never LARGE


def large_threshold(currency: str, settings: Settings | None = None) -> int:
    """The LARGE threshold for ``currency`` in minor units (``[refunds] large_above``).

    A default with more decimals than the currency has (``"50.50"`` for JPY) is rounded
    down to a whole minor unit instead of refusing the whole queue.
    """
    return (settings or get_settings()).refund_policy.large_threshold(currency)


def is_large(amount: int, currency: str, policy: RefundPolicy) -> bool:
    """Above the LARGE threshold of its currency (four-eyes, never auto-approved)."""
    return amount > policy.large_threshold(currency)


def cumulative_amount(con: duckdb.DuckDBPyConnection, req: RefundRequest) -> int:
    """``req``'s amount plus the earlier requests on its payment in :data:`LARGE_COUNTED`."""
    counted = ", ".join(f"'{s}'" for s in LARGE_COUNTED)
    found = con.execute(
        f"SELECT coalesce(sum(amount), 0) FROM refund_requests WHERE id < ? AND status IN ({counted}) "
        "AND ((charge IS NOT NULL AND charge = ?) OR (payment_intent IS NOT NULL AND payment_intent = ?))",
        [req.id, req.charge, req.payment_intent]).fetchone()
    return int(found[0] if found else 0) + int(req.amount)


def is_large_cumulative(con: duckdb.DuckDBPyConnection, req: RefundRequest, policy: RefundPolicy) -> bool:
    """LARGE by the cumulative amount on the payment (see the module docstring): four-eyes."""
    return cumulative_amount(con, req) > policy.large_threshold(req.currency)


def cumulative_sql(table: str = "refund_requests") -> str:
    """A query ``(id, cumulative)``: :func:`cumulative_amount` for every request of ``table``."""
    counted = ", ".join(f"'{s}'" for s in LARGE_COUNTED)
    return (f"SELECT id, sum(CASE WHEN status IN ({counted}) THEN amount ELSE 0 END) OVER "
            "(PARTITION BY coalesce(payment_intent, charge) ORDER BY id) "
            f"+ CASE WHEN status IN ({counted}) THEN 0 ELSE amount END AS cumulative FROM {table}")


def priority_cutoffs(policy: RefundPolicy, now: datetime) -> tuple[datetime, datetime]:
    """``(urgent_before, high_before)``: PENDING requests asked before these are URGENT / HIGH."""
    return now - policy.urgent_after, now - policy.high_after


def priorities(status: str, requested_at: datetime, amount: int, currency: str, policy: RefundPolicy,
               now: datetime) -> list[str]:
    """Every priority a request has at ``now``, in :data:`~payops.refunds.PRIORITIES` order.

    Age counts only while a request waits for a decision (PENDING).
    """
    urgent_before, high_before = priority_cutoffs(policy, now)
    pending = status == "PENDING"
    out = []
    if pending and requested_at < urgent_before:
        out.append("URGENT")
    elif pending and requested_at < high_before:
        out.append("HIGH")
    if is_large(amount, currency, policy):
        out.append("LARGE")
    return out


def priority(status: str, requested_at: datetime, amount: int, currency: str, policy: RefundPolicy,
             now: datetime) -> str:
    """The one label a breakdown shows: URGENT, else HIGH, else LARGE, else NORMAL."""
    found = priorities(status, requested_at, amount, currency, policy, now)
    return found[0] if found else "NORMAL"


def decided_moment(status: str, decided_at: datetime | None, processed_at: datetime | None,
                   updated_at: datetime | None) -> datetime | None:
    """When a request was decided (see the module docstring); None while it is PENDING."""
    if decided_at is not None:
        return decided_at
    if status == "PENDING":
        return None
    return processed_at or updated_at


def is_pending_at(t: datetime, requested_at: datetime, decided: datetime | None) -> bool:
    """Pending at ``t``: asked at or before ``t`` and not decided by ``t``."""
    return requested_at <= t and (decided is None or decided > t)


# --------------------------------------------------------------------------- SQL forms


def _statuses(statuses: Iterable[str]) -> str:
    return ", ".join(f"'{s}'" for s in statuses)


def open_sql(req: str = "r") -> str:
    """``<req>.status IN (<open statuses>)``: the request still holds on to money."""
    return f"{req}.status IN ({_statuses(OPEN_STATUSES)})"


def decided_at_sql(req: str = "r") -> str:
    """The moment a request of alias ``req`` was decided; NULL while PENDING."""
    return (f"coalesce({req}.decided_at, CASE WHEN {req}.status <> 'PENDING' "
            f"THEN coalesce({req}.processed_at, {req}.updated_at) END)")


def pending_at_sql(moment: str, req: str = "r") -> str:
    """A condition: the request ``req`` was pending at ``moment`` (an SQL expression such as
    ``$t``, ``?`` or a column)."""
    decided = decided_at_sql(req)
    return f"({req}.requested_at <= {moment} AND ({decided} IS NULL OR {decided} > {moment}))"


def priority_flags_sql(*, urgent_before: str, high_before: str, large: str, req: str = "r",
                       amount: str | None = None) -> dict[str, str]:
    """SQL conditions per priority: ``{"URGENT": ..., "HIGH": ..., "LARGE": ...}``.

    Args:
        urgent_before: an SQL expression for the URGENT cutoff (see :func:`priority_cutoffs`).
        high_before: the same for HIGH.
        large: an SQL expression for the request's LARGE threshold in minor units (NULL:
            never LARGE), e.g. a column of :func:`large_thresholds_sql`.
        req: the alias of ``refund_requests``.
        amount: the SQL expression LARGE compares (default ``<req>.amount``; the queue passes
            the cumulative amount of :func:`cumulative_sql`).
    """
    pending = f"{req}.status = 'PENDING'"
    amount = amount or f"{req}.amount"
    return {
        "URGENT": f"({pending} AND {req}.requested_at < {urgent_before})",
        "HIGH": f"({pending} AND {req}.requested_at < {high_before} AND {req}.requested_at >= {urgent_before})",
        "LARGE": f"({amount} > coalesce({large}, {_NO_LIMIT}))",
    }


def priority_sql(*, urgent_before: str, high_before: str, large: str, req: str = "r") -> str:
    """A CASE expression giving the one label of :func:`priority` (URGENT, HIGH, LARGE, NORMAL)."""
    flags = priority_flags_sql(urgent_before=urgent_before, high_before=high_before, large=large, req=req)
    whens = " ".join(f"WHEN {cond} THEN '{name}'" for name, cond in flags.items())
    return f"CASE {whens} ELSE 'NORMAL' END"


def large_thresholds_sql(currencies: Iterable[str], settings: Settings | None = None) -> str:
    """A query of the LARGE threshold per currency, columns ``(currency, large)``, as literals.

    Join it on ``currency`` and pass its ``large`` column to :func:`priority_flags_sql`.
    Codes that are not three letters are left out (they cannot have a threshold).
    """
    policy = (settings or get_settings()).refund_policy
    codes = sorted({c for c in currencies if isinstance(c, str) and _CURRENCY.fullmatch(c)})
    if not codes:
        return "SELECT CAST(NULL AS VARCHAR) AS currency, CAST(NULL AS BIGINT) AS large WHERE 1 = 0"
    values = ", ".join(f"('{c}', CAST({policy.large_threshold(c)} AS BIGINT))" for c in codes)
    return f"SELECT * FROM (VALUES {values}) AS t(currency, large)"

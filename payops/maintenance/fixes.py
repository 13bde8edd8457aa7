""":func:`fix`: run the registered checks (:data:`~payops.maintenance.checks.CHECKS`) in order."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from payops.config import get_settings
from payops.db import connect
from payops.errors import InvalidInput
from payops.maintenance.archive import archive_dir
from payops.maintenance.checks import CHECKS, Check, Finding, FixContext, StripeLookups
from payops.maintenance.common import actor, aware_now, parse_age

__all__ = ["FIX_KINDS", "fix"]

FIX_KINDS: tuple[str, ...] = tuple(check.kind for check in CHECKS)


def _selected(kinds: Iterable[str] | None) -> list[Check]:
    wanted = set(kinds or FIX_KINDS)
    unknown = wanted - set(FIX_KINDS)
    if unknown:
        raise InvalidInput(f"unknown kind(s): {', '.join(sorted(unknown))} (known: {', '.join(FIX_KINDS)})")
    return [check for check in CHECKS if check.kind in wanted]


def fix(
    *,
    dry_run: bool = False,
    stuck_after: str | timedelta | None = None,
    kinds: Iterable[str] | None = None,
    archive: str | Path | None = None,
    user: str | None = None,
    db: str | Path | None = None,
    api: Any = None,
    now: datetime | None = None,
) -> list[Finding]:
    """Find inconsistencies and, unless ``dry_run``, repair them; one audit row per repair.

    Kinds (:data:`FIX_KINDS`): a request PROCESSED with no Stripe refund (linked to the
    refund that carries its id, else marked FAILED so it can be retried); a Stripe refund
    carrying ``payops_request_id`` whose request is not PROCESSED (marked PROCESSED); a
    charge whose ``amount_refunded`` disagrees with its refunds, a charge without its
    balance transaction, a booking pointing to an unknown payment intent (re-fetched from
    Stripe); requests stuck in PROCESSING longer than ``stuck_after`` (handed to
    :func:`payops.refunds.reconcile`); ``daily_metrics`` days computed before their data
    last changed (recomputed with :func:`payops.metrics.compute_daily`). Objects in the
    archive folder count as present. What cannot be repaired is returned with
    ``repaired=False`` and the reason.

    Each check finds, then repairs, before the next one looks: a repair can reveal what a
    later check reports.

    Args:
        dry_run: report only; change nothing (no Stripe calls either).
        stuck_after: age after which PROCESSING is stuck (default
            ``[refunds] stuck_processing_hours``, 1 h).
        kinds: only these kinds (default all).
        archive: the archive folder (default ``PAYOPS_ARCHIVE_DIR``).
        user: the actor of the audit rows.
        db: database path.
        api: a :class:`payops.stripe_api.StripeAPI` (default: made from the settings on first need).
        now: the current time, for the stuck check.

    Returns:
        The findings, in the order of :data:`FIX_KINDS`.

    Raises:
        InvalidInput: an unknown kind.
    """
    checks = _selected(kinds)
    settings = get_settings()
    age = parse_age(stuck_after) if stuck_after is not None else settings.refund_policy.stuck_after
    ctx = FixContext(user=actor(user), db=db, now=aware_now(now), stuck_after=age, archive=archive_dir(archive),
                     timezone=settings.timezone, stripe=StripeLookups(api))
    findings: list[Finding] = []
    for check in checks:
        with connect(db) as con:
            found = check.find(con, ctx)
        findings += found
        repairable = [f for f in found if f.repairable]
        if repairable and not dry_run:
            check.repair(repairable, ctx)
    return findings

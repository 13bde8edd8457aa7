"""The overview operators start their day with (``payops status``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from payops.config import get_settings
from payops.db import connect, database_path
from payops.money import format_amount
from payops.refunds import pending_by_priority, queue_count
from payops.snapshot import snapshot_info
from payops.streams import STREAMS
from payops.sync.state import progress as sync_progress

__all__ = ["Overview", "overview", "STRIPE_TABLES", "ALL_TABLES"]

STRIPE_TABLES = STREAMS
ALL_TABLES = STRIPE_TABLES + (
    "events", "bookings", "refund_requests", "audit_log", "daily_metrics", "sync_state", "payout_transactions",
)


@dataclass
class Overview:
    """Everything ``payops status`` shows, as data."""

    db_path: Path
    user: str
    single_user: bool
    roles: list[str]
    timezone: str
    tables: dict[str, int]
    newest: dict[str, dict[str, Any]]
    sync: list[dict[str, Any]]
    pending_by_priority: dict[str, int]
    pending_total: int
    yesterday: date
    yesterday_payments: list[dict[str, Any]]
    alerts: list[dict[str, Any]] = field(default_factory=list)
    #: for a snapshot (``payops snapshot``, ``payops serve --snapshot``): when, from where, by what
    snapshot: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out["db_path"] = str(self.db_path)
        out["yesterday"] = self.yesterday.isoformat()
        return out


def overview(db: str | Path | None = None, *, day: date | None = None, now: datetime | None = None) -> Overview:
    """Collect the status overview: table counts and sync state in one short connection, then
    the day's payments and KPI alerts from :mod:`payops.metrics` and the pending refund
    requests from :mod:`payops.refunds` (the same definitions as the reports and the queue).

    Args:
        db: database path (default ``PAYOPS_DB``).
        day: the day whose payments and KPIs to show (default: yesterday in ``PAYOPS_TIMEZONE``).
        now: the moment "now" (default: the clock). Pending requests are counted at ``now``
            (for a ``day`` given, at its end when that is earlier).
    """
    from payops import metrics  # metrics -> refunds -> ... : imported when used

    settings = get_settings()
    path = database_path(db)
    tz = settings.tz
    now = now or datetime.now(UTC)
    yesterday = day or now.astimezone(tz).date() - timedelta(days=1)
    end_of_day = datetime.combine(yesterday + timedelta(days=1), time(0), tzinfo=tz)
    moment = now if day is None else min(now, end_of_day)
    with connect(path, create=False) as con:
        tables = {t: int(con.execute(f"SELECT count(*) FROM {t}").fetchall()[0][0]) for t in ALL_TABLES}
        newest = {}
        for t in STRIPE_TABLES:
            created, synced = con.execute(f"SELECT max(created), max(synced_at) FROM {t}").fetchall()[0]
            newest[t] = {"created": created, "synced_at": synced}
        sync = sync_progress(con)
        snap = snapshot_info(con)
    # after the connection above is closed
    day_summary = metrics.summary(yesterday, yesterday, db=path, tz=settings.timezone, as_of=moment)
    pending = pending_by_priority(db=path, now=moment)
    ov = Overview(
        db_path=path, user=settings.user, single_user=settings.single_user,
        roles=settings.roles_of(settings.user), timezone=settings.timezone, tables=tables,
        newest=newest, sync=sync, pending_by_priority=pending,
        pending_total=queue_count(status=("PENDING",), db=path, now=moment),
        yesterday=yesterday, yesterday_payments=_payments(day_summary), snapshot=snap,
    )
    ov.alerts = [k for k in metrics.kpis_of(day_summary) if not k["ok"]]
    return ov


def _payments(summary) -> list[dict[str, Any]]:
    """The day's payments per currency from a :func:`payops.metrics.summary` frame, biggest first."""
    rows = summary[summary["attempts"] > 0].sort_values(["gross_volume", "currency"], ascending=[False, True])
    return [
        {"currency": r.currency, "attempts": int(r.attempts), "succeeded": int(r.succeeded), "failed": int(r.failed),
         "success_rate": None if r.success_rate != r.success_rate else float(r.success_rate),
         "gross_volume": int(r.gross_volume), "gross_volume_display": format_amount(int(r.gross_volume), r.currency)}
        for r in rows.itertuples(index=False)
    ]

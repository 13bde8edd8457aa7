"""The overview operators start their day with (``payops status``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from payops.config import get_settings
from payops.db import connect, database_path
from payops.money import format_amount
from payops.refunds import pending_by_priority
from payops.streams import STREAMS
from payops.sync.state import progress as sync_progress

__all__ = ["Overview", "overview", "STRIPE_TABLES", "ALL_TABLES"]

STRIPE_TABLES = STREAMS
ALL_TABLES = STRIPE_TABLES + (
    "events", "bookings", "refund_requests", "audit_log", "daily_metrics", "sync_state",
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

    def as_dict(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out["db_path"] = str(self.db_path)
        out["yesterday"] = self.yesterday.isoformat()
        return out


def overview(db: str | Path | None = None, *, today: date | None = None) -> Overview:
    """Collect the status overview in one short connection.

    Args:
        db: database path (default ``PAYOPS_DB``).
        today: the reporting day to treat as today (default: today in ``PAYOPS_TIMEZONE``).
    """
    settings = get_settings()
    path = database_path(db)
    tz = settings.tz
    today = today or datetime.now(tz).date()
    yesterday = today - timedelta(days=1)
    with connect(path) as con:
        tables = {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ALL_TABLES}
        newest = {}
        for t in STRIPE_TABLES:
            created, synced = con.execute(f"SELECT max(created), max(synced_at) FROM {t}").fetchone()
            newest[t] = {"created": created, "synced_at": synced}
        sync = sync_progress(con)
        (pending_total,) = con.execute(
            "SELECT count(*) FROM refund_requests WHERE status = 'PENDING'").fetchone()
        start = datetime.combine(yesterday, datetime.min.time(), tzinfo=tz)
        end = start + timedelta(days=1)
        rows = con.execute(
            """
            SELECT currency,
                   count(*) AS attempts,
                   count(*) FILTER (WHERE status = 'succeeded') AS succeeded,
                   count(*) FILTER (WHERE status = 'failed') AS failed,
                   coalesce(sum(amount_captured) FILTER (WHERE status = 'succeeded'), 0) AS gross_volume
            FROM charges WHERE created >= ? AND created < ?
            GROUP BY currency ORDER BY gross_volume DESC, currency
            """,
            [start, end],
        ).fetchall()
    payments = []
    for cur, attempts, ok, failed, gross in rows:
        decided = ok + failed
        payments.append({
            "currency": cur, "attempts": attempts, "succeeded": ok, "failed": failed,
            "success_rate": (ok / decided) if decided else None,
            "gross_volume": int(gross), "gross_volume_display": format_amount(int(gross), cur),
        })
    pending = pending_by_priority(db=path)  # after the connection above is closed
    ov = Overview(
        db_path=path, user=settings.user, single_user=settings.single_user,
        roles=settings.roles_of(settings.user), timezone=settings.timezone, tables=tables,
        newest=newest, sync=sync, pending_by_priority=pending, pending_total=pending_total,
        yesterday=yesterday, yesterday_payments=payments,
    )
    from payops.metrics import alerts  # metrics imports this module: import late

    ov.alerts = alerts(db=path, today=today)
    return ov

"""Tutoring-session bookings: their status drives refund eligibility (the session rule).

Bookings come from the booking system as CSV (``payops bookings import``); a single
status can be changed by hand (``payops bookings set-status``). Both are audited.
"""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from pathlib import Path

from payops import audit
from payops.config import get_settings
from payops.db import connect, transaction
from payops.errors import InvalidInput, NotFound, PermissionDenied

__all__ = ["BOOKING_STATUSES", "CSV_COLUMNS", "import_csv", "set_status", "get"]

BOOKING_STATUSES = ("scheduled", "completed", "cancelled", "no_show")
CSV_COLUMNS = ("booking_id", "payment_intent", "customer", "tutor_id", "session_start", "status")


def _require(user: str) -> None:
    settings = get_settings()
    if not (settings.has_role(user, "reviewer") or settings.has_role(user, "senior")):
        raise PermissionDenied(f"{user} lacks the reviewer role needed to change bookings "
                               f"(set in {settings.config_path} [roles])")


def _parse_ts(value: str, where: str) -> datetime | None:
    value = (value or "").strip()
    if not value:
        return None
    try:
        ts = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(f"{where}: session_start {value!r} is not an ISO date-time "
                           "(e.g. 2025-03-01T15:00:00Z)") from None
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


def import_csv(path: str | Path, *, user: str | None = None, db=None) -> dict[str, int]:
    """Upsert bookings from a CSV with columns ``booking_id, payment_intent, customer,
    tutor_id, session_start, status``; all rows or none.

    Returns ``{"rows", "new", "updated", "unchanged"}``. One audit row records the import.

    Raises:
        InvalidInput: a missing column or a bad value (named with its line); nothing written.
    """
    who = user or get_settings().user
    _require(who)
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror}") from None
    reader = csv.DictReader(text.splitlines())
    missing = [c for c in CSV_COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise InvalidInput(f"{path}: missing column(s) {', '.join(missing)} (need {', '.join(CSV_COLUMNS)})")
    rows = {}
    for n, rec in enumerate(reader, start=2):
        where = f"{path.name} line {n}"
        bid = (rec["booking_id"] or "").strip()
        if not bid:
            raise InvalidInput(f"{where}: empty booking_id")
        status = (rec["status"] or "").strip().lower()
        if status not in BOOKING_STATUSES:
            raise InvalidInput(f"{where}: status {rec['status']!r} is not one of {', '.join(BOOKING_STATUSES)}")
        rows[bid] = (bid, (rec["payment_intent"] or "").strip() or None, (rec["customer"] or "").strip() or None,
                     (rec["tutor_id"] or "").strip() or None, _parse_ts(rec["session_start"], where), status)
    now = datetime.now(UTC)
    counts = {"rows": len(rows), "new": 0, "updated": 0, "unchanged": 0}
    with connect(db) as con, transaction(con):
        existing = {r[0]: r for r in con.execute(
            "SELECT booking_id, payment_intent, customer, tutor_id, session_start, status FROM bookings "
            "WHERE booking_id IN (SELECT unnest(?::VARCHAR[]))", [list(rows)]).fetchall()}
        for bid, row in rows.items():
            old = existing.get(bid)
            if old is None:
                counts["new"] += 1
            elif tuple(old) == row:
                counts["unchanged"] += 1
                continue
            else:
                counts["updated"] += 1
            con.execute(
                "INSERT INTO bookings VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (booking_id) DO UPDATE SET "
                "payment_intent = excluded.payment_intent, customer = excluded.customer, tutor_id = excluded.tutor_id, "
                "session_start = excluded.session_start, status = excluded.status, updated_at = excluded.updated_at",
                list(row) + [now])
        audit.record(con, actor=who, action="booking.import", entity="booking", entity_id=None,
                     after={"file": str(path), **counts}, at=now)
    return counts


def get(booking_id: str, *, db=None) -> dict:
    """One booking as a dict; :class:`~payops.errors.NotFound` if there is none."""
    with connect(db) as con:
        cur = con.execute("SELECT * FROM bookings WHERE booking_id = ?", [booking_id])
        names = [d[0] for d in cur.description]
        row = cur.fetchone()
    if row is None:
        raise NotFound(f"no booking {booking_id}")
    return dict(zip(names, row, strict=False))


def set_status(booking_id: str, status: str, *, user: str | None = None, note: str | None = None, db=None) -> dict:
    """Change one booking's status (audited); returns the booking.

    Raises:
        InvalidInput: an unknown status. NotFound: no such booking.
    """
    status = (status or "").strip().lower()
    if status not in BOOKING_STATUSES:
        raise InvalidInput(f"unknown booking status {status!r}; use one of {', '.join(BOOKING_STATUSES)}")
    who = user or get_settings().user
    _require(who)
    now = datetime.now(UTC)
    with connect(db) as con, transaction(con):
        old = con.execute("SELECT status FROM bookings WHERE booking_id = ?", [booking_id]).fetchone()
        if old is None:
            raise NotFound(f"no booking {booking_id} (import bookings with `payops bookings import`)")
        if old[0] != status:
            con.execute("UPDATE bookings SET status = ?, updated_at = ? WHERE booking_id = ? AND status = ?",
                        [status, now, booking_id, old[0]])
            audit.record(con, actor=who, action="booking.set_status", entity="booking", entity_id=booking_id,
                         before={"status": old[0]}, after={"status": status}, note=note, at=now)
    return get(booking_id, db=db)

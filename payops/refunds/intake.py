"""Opening refund requests: one at a time, or from a CSV file."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

from payops.authority import roles_for
from payops.config import get_settings
from payops.db import connect, transaction
from payops.errors import InvalidInput, NotEligible, PayopsError, PermissionDenied
from payops.money import from_decimal
from payops.refunds.eligibility import check, verdict
from payops.refunds.model import REASONS, RefundRequest, acting_user, utcnow
from payops.refunds.store import insert

__all__ = ["CSV_COLUMNS", "CSV_REQUIRED", "ImportLine", "request", "parse_amount", "import_csv", "import_records"]

CSV_REQUIRED = ("payment", "reason")
CSV_COLUMNS = (*CSV_REQUIRED, "amount", "note", "requested_by")


def request(payment_id: str, *, reason: str, amount: int | None = None, note: str | None = None,
            requested_by: str | None = None, on_behalf_of: str | None = None, db=None) -> RefundRequest:
    """Open a refund request (PENDING) for a payment; returns the stored request.

    Args:
        payment_id: ``pi_...`` or ``ch_...``.
        reason: one of :data:`REASONS` (Stripe's refund reasons).
        amount: minor units; default all that is still refundable.
        note: free text (why).
        requested_by: who asks; default ``PAYOPS_USER``. In team mode a viewer only looks.
        on_behalf_of: who ``requested_by`` asks for (kept in the note and the audit row).

    Raises:
        PermissionDenied: in team mode, the requester is a viewer and nothing more.
        InvalidInput: an unknown reason or a non-positive amount.
        NotEligible: the payment cannot be refunded by this amount (the message lists why).
        NotFound: no such payment in the database.
    """
    if reason not in REASONS:
        raise InvalidInput(f"unknown reason {reason!r}; use one of {', '.join(REASONS)}")
    if amount is not None:
        if isinstance(amount, bool) or not isinstance(amount, int):
            raise InvalidInput(f"amounts are integers in minor units, got {amount!r}")
        if amount <= 0:
            raise InvalidInput(f"the amount must be positive, got {amount}")
    who = acting_user(requested_by)
    now = utcnow()
    settings = get_settings()
    if roles_for(who, settings=settings) == ("viewer",):
        raise PermissionDenied(f"{who} is a viewer, and viewers only look: a refund request needs the reviewer, "
                               f"senior or processor role (set in {settings.config_path} [roles])")
    if on_behalf_of and on_behalf_of != who:
        note = f"{note + ' ' if note else ''}(on behalf of {on_behalf_of})"
    with connect(db) as con, transaction(con):
        # Check and insert under the same lock: two requests cannot both take the last euro.
        v = verdict(con, payment_id, amount, now=now, settings=settings)
        if not v.eligible:
            raise NotEligible(f"{payment_id} cannot be refunded: " + "; ".join(v.reasons))
        p = v.payment
        return insert(con, payment_intent=p["payment_intent"], charge=p["charge"], customer=p["customer"],
                      amount=amount if amount is not None else p["refundable"], currency=p["currency"],
                      reason=reason, note=note, requested_by=who, at=now,
                      on_behalf_of=on_behalf_of if on_behalf_of != who else None)


def parse_amount(payment_id: str, amount: str | None, *, db=None) -> int | None:
    """An amount a person typed in major units (``"12.50"``) -> minor units of the payment's currency.

    None stays None (all that is refundable). Raises
    :class:`~payops.errors.MoneyError` for more decimals than the currency has.
    """
    if amount is None:
        return None
    return from_decimal(amount, check(payment_id, db=db).payment["currency"])


@dataclass
class ImportLine:
    """The outcome of one line of a CSV import: the request opened, or why not."""

    line: int
    payment: str
    request: RefundRequest | None
    message: str

    @property
    def ok(self) -> bool:
        return self.request is not None


def _field(rec: dict, name: str) -> str | None:
    value = rec.get(name)
    return str(value).strip() or None if value is not None else None


def import_csv(path: str | Path, *, user: str | None = None, db=None) -> list[ImportLine]:
    """Open one request per row of a CSV with columns ``payment, reason`` and optionally
    ``amount`` (major units), ``note``, ``requested_by``.

    The importer (``user``, default ``PAYOPS_USER``) is the requester and the audit actor of
    every row; a row's ``requested_by`` is kept as "on behalf of" data, never as the actor.

    Each row stands alone: a row that cannot be opened (not eligible, a bad amount) is
    reported in its :class:`ImportLine` and the others still are.

    Raises:
        InvalidInput: the file cannot be read or lacks a required column; nothing opened.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror}") from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    if not all(c in (reader.fieldnames or []) for c in CSV_REQUIRED):
        raise InvalidInput(f"{path}: needs columns payment and reason (optional: amount, note, requested_by)")
    importer = acting_user(user)
    out = []
    last = reader.line_num
    for rec in reader:
        # a quoted field may span lines: a record is named by the line it starts on
        n, last = last + 1, reader.line_num
        out.append(_import_one(n, rec, importer, db))
    return out


def import_records(records: list[dict], *, user: str | None = None, db=None) -> list[ImportLine]:
    """:func:`import_csv` for rows already read (dicts with the CSV's columns, numbered from line 2),
    e.g. sent to the writer by a client that read the file."""
    importer = acting_user(user)
    return [_import_one(n, rec, importer, db) for n, rec in enumerate(records, start=2)]


def _import_one(n: int, rec: dict, importer: str, db) -> ImportLine:
    payment = _field(rec, "payment") or ""
    try:
        req = request(payment, reason=_field(rec, "reason") or "",
                      amount=parse_amount(payment, _field(rec, "amount"), db=db),
                      note=_field(rec, "note"), requested_by=importer,
                      on_behalf_of=_field(rec, "requested_by"), db=db)
    except PayopsError as exc:
        return ImportLine(n, payment, None, exc.message)
    return ImportLine(n, payment, req, f"request {req.id} opened")

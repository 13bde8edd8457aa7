"""Payouts reconciled to the minor unit, and the balance per currency, from balance transactions.

A payout *reconciles* when its ``amount`` equals the sum of the ``net`` of the balance
transactions it settled (Stripe's ``GET /v1/balance_transactions?payout=po_...`` for automatic
payouts, stored in ``payout_transactions``), its own ``payout`` transaction left out. A failed
or canceled payout is never reconciled cash: its money came back to the balance.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from payops.db import connect, transaction
from payops.errors import NotFound, PayopsError
from payops.ledger import DISPUTE_CATEGORIES, GROSS_TYPES, PAYOUT_TYPES, REFUND_TYPES, TRANSFER_TYPES
from payops.money import RETURNED_PAYOUT_STATUSES, SETTLED_PAYOUT_STATUSES, format_amount
from payops.text import terminal_safe

__all__ = ["PayoutVerdict", "NOT_CASH", "SETTLED", "verdicts", "reconcile", "items",
           "export_items", "balance", "store_links", "sync_links", "ITEM_GROUPS", "terminal_safe"]

SETTLED = SETTLED_PAYOUT_STATUSES  # payouts whose transactions Stripe lists: they must reconcile
NOT_CASH = RETURNED_PAYOUT_STATUSES  # came back to the balance: never reconciled cash

# the itemised export's groups, as Stripe's payout reconciliation report names them
ITEM_GROUPS = ("charges", "refunds", "disputes", "transfers", "payout", "other")


@dataclass(frozen=True)
class PayoutVerdict:
    """One payout against its balance transactions (amounts in minor units)."""

    id: str
    currency: str
    amount: int
    status: str
    created: datetime
    transactions: int
    net: int

    @property
    def difference(self) -> int:
        """payout amount - sum of its transactions' net (0 when it reconciles)."""
        return self.amount - self.net

    @property
    def reconciled(self) -> bool:
        return self.status in SETTLED and self.transactions > 0 and self.difference == 0

    @property
    def problem(self) -> bool:
        """A payout that should reconcile and does not (what makes ``reconcile`` fail)."""
        return self.status in SETTLED and not self.reconciled

    @property
    def verdict(self) -> str:
        """The verdict in words, the difference named."""
        fmt = lambda v: format_amount(v, self.currency)  # noqa: E731  # a local shorthand
        if self.status in NOT_CASH:
            return f"{self.status}: not cash (the money went back to the balance)"
        if self.status not in SETTLED:
            return f"{self.status}: not settled yet"
        if self.transactions == 0:
            return "NOT RECONCILED: no balance transactions stored (run `payops sync`)"
        if self.difference == 0:
            return f"reconciled: {self.transactions} transactions, net {fmt(self.net)}"
        what = "missing" if self.difference > 0 else "in excess"
        return (f"NOT RECONCILED: {fmt(abs(self.difference))} {what} (payout {fmt(self.amount)}, "
                f"{self.transactions} transactions net {fmt(self.net)})")

    def line(self) -> str:
        """One line per payout, for the terminal."""
        day = self.created.astimezone(UTC).date().isoformat() if self.created else "?"
        return f"{self.id}  {day}  {format_amount(self.amount, self.currency):>14}  {self.status:<10} {self.verdict}"


def _bounds(start: date | None, end: date | None) -> tuple[datetime, datetime]:
    lo = datetime.combine(start, datetime.min.time(), UTC) if start else datetime(1970, 1, 1, tzinfo=UTC)
    hi = datetime.combine(end + timedelta(days=1), datetime.min.time(), UTC) if end else datetime(3000, 1, 1,
                                                                                                  tzinfo=UTC)
    return lo, hi


def verdicts_on(con: duckdb.DuckDBPyConnection, start: date | None = None,
                end: date | None = None) -> list[PayoutVerdict]:
    """Every payout created in ``[start, end]`` (UTC days) with its transactions' net, on ``con``."""
    lo, hi = _bounds(start, end)
    marks = ", ".join("?" for _ in PAYOUT_TYPES)
    rows = con.execute(f"""
        SELECT p.id, p.currency, p.amount, p.status, p.created,
               count(b.id) AS n, coalesce(sum(b.net), 0) AS net
        FROM payouts p
        LEFT JOIN payout_transactions l ON l.payout = p.id
        LEFT JOIN balance_transactions b ON b.id = l.balance_transaction AND b.type NOT IN ({marks})
        WHERE p.created >= ? AND p.created < ?
        GROUP BY ALL ORDER BY p.created, p.id""", [*PAYOUT_TYPES, lo, hi]).fetchall()
    return [PayoutVerdict(r[0], r[1], int(r[2] or 0), r[3] or "", r[4], int(r[5]), int(r[6])) for r in rows]


def verdicts(start: date | None = None, end: date | None = None, *, db=None) -> list[PayoutVerdict]:
    """:func:`verdicts_on` on a new connection."""
    with connect(db, read_only=True) as con:
        return verdicts_on(con, start, end)


def reconcile(start: date | None = None, end: date | None = None, *, db=None) -> tuple[bool, list[PayoutVerdict]]:
    """(every settled payout reconciles, the verdicts) for payouts created in ``[start, end]``."""
    out = verdicts(start, end, db=db)
    return not any(v.problem for v in out), out


def _group(typ: str, category: str | None) -> str:
    if typ in GROSS_TYPES:
        return "charges"
    if typ in REFUND_TYPES:
        return "refunds"
    if typ == "adjustment" and category in DISPUTE_CATEGORIES:
        return "disputes"
    if typ in TRANSFER_TYPES:
        return "transfers"
    if typ in PAYOUT_TYPES:
        return "payout"
    return "other"


def items(payout_id: str, *, db=None) -> pd.DataFrame:
    """The itemised transactions of one payout: group, id, type, source, charge, amount, fee, net.

    Raises:
        NotFound: no such payout.
    """
    with connect(db, read_only=True) as con:
        if not con.execute("SELECT count(*) FROM payouts WHERE id = ?", [payout_id]).fetchall()[0][0]:
            raise NotFound(f"no payout {payout_id} in the database")
        df = con.execute("""
            SELECT b.id AS balance_transaction, b.type, b.reporting_category, b.source,
                   coalesce(c.id, r.charge, d.charge, t.source_transaction) AS charge,
                   b.currency, b.amount, b.fee, b.net, b.created, b.available_on
            FROM payout_transactions l JOIN balance_transactions b ON b.id = l.balance_transaction
            LEFT JOIN charges c ON c.id = b.source
            LEFT JOIN refunds r ON r.id = b.source
            LEFT JOIN disputes d ON d.id = b.source
            LEFT JOIN transfers t ON t.id = b.source
            WHERE l.payout = ? ORDER BY b.created, b.id""", [payout_id]).df()
    df.insert(0, "group", [_group(t, c) for t, c in zip(df["type"], df["reporting_category"], strict=True)])
    df.insert(0, "payout", payout_id)
    return df


def export_items(payout_ids: Iterable[str], out: str | Path, *, db=None) -> int:
    """Write the itemised transactions of ``payout_ids`` to the CSV ``out``; returns the rows written."""
    frames = [items(p, db=db) for p in payout_ids]
    cols = ["payout", "group", "balance_transaction", "type", "reporting_category", "source", "charge",
            "currency", "amount", "fee", "net", "created", "available_on"]
    frame = pd.concat(frames) if frames else pd.DataFrame(columns=cols)
    with open(out, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(cols)
        for row in frame[cols].itertuples(index=False):
            w.writerow(["" if v is None or v != v else v for v in row])  # NaN (v != v) -> empty
    return len(frame)


def balance(as_of: datetime | None = None, *, db=None) -> pd.DataFrame:
    """Balance per currency at ``as_of`` from balance transactions: available, pending, total.

    A transaction counts once created; it is available from its ``available_on``.
    """
    at = as_of or datetime.now(UTC)
    with connect(db, read_only=True) as con:
        return con.execute("""
            SELECT currency,
                   coalesce(sum(net) FILTER (WHERE available_on <= ?), 0)::BIGINT AS available,
                   coalesce(sum(net) FILTER (WHERE available_on > ?), 0)::BIGINT AS pending,
                   coalesce(sum(net), 0)::BIGINT AS total
            FROM balance_transactions WHERE created <= ?
            GROUP BY currency ORDER BY currency""", [at, at, at]).df()


def store_links(con: duckdb.DuckDBPyConnection, links: dict[str, list[str]], *, at: datetime | None = None) -> int:
    """Store payout -> balance transaction ids (replacing what a payout had); returns the rows.

    ``at``: the ``synced_at`` to record (default now; the demo passes its own moment).
    """
    n = 0
    now = at or datetime.now(UTC)
    for payout, txns in links.items():
        con.execute("DELETE FROM payout_transactions WHERE payout = ?", [payout])
        if txns:
            con.executemany("INSERT INTO payout_transactions VALUES (?, ?, ?)", [[payout, t, now] for t in txns])
        n += len(txns)
    return n


def _unlinked(con: duckdb.DuckDBPyConnection) -> list[str]:
    marks = ", ".join("?" for _ in SETTLED)
    return [r[0] for r in con.execute(
        f"SELECT id FROM payouts p WHERE status IN ({marks}) AND coalesce(raw->>'$.automatic', 'true') = 'true' "
        "AND NOT EXISTS (SELECT 1 FROM payout_transactions l WHERE l.payout = p.id) ORDER BY created",
        list(SETTLED)).fetchall()]


def sync_links(api: Any, *, db=None, workers: int = 8) -> tuple[int, list[str]]:
    """Fetch and store the balance transactions of every settled automatic payout not linked yet.

    Returns (payouts linked, notes). A server that refuses the ``payout`` filter (localstripe)
    gives a note, not an error.
    """
    from payops.ingest import ingest_into  # ingest sits above this module's readers

    with connect(db, read_only=True) as con:
        todo = _unlinked(con)
    if not todo:
        return 0, []
    notes: list[str] = []

    def fetch(po: str) -> tuple[str, list[dict] | None]:
        try:
            return po, list(api.list_all("balance_transaction", {"payout": po, "limit": 100}))
        except PayopsError as exc:
            notes.append(f"payout {po}: its balance transactions could not be listed ({exc.message})")
            return po, None

    with ThreadPoolExecutor(max(1, workers)) as pool:
        fetched = list(pool.map(fetch, todo))
    got = {po: txns for po, txns in fetched if txns is not None}
    with connect(db) as con, transaction(con):
        ingest_into(con, [t for txns in got.values() for t in txns])
        store_links(con, {po: [t["id"] for t in txns] for po, txns in got.items()})
    if len(notes) > 3:
        notes = notes[:3] + [f"... and {len(notes) - 3} more payouts not linked"]
    return len(got), notes

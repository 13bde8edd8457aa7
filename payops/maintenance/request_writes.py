"""Every write maintenance makes to ``refund_requests``, and nothing else.

``payops.refunds`` is to be the only writer of ``refund_requests`` (issue 10); until its
API for repairs lands, the statements live here, in one place, so moving them is one edit.
Each runs on the caller's connection, inside the caller's transaction, and changes a row
only if it still has the status the caller saw.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import duckdb

__all__ = ["link_refund", "mark_failed", "mark_processed", "set_texts"]


def link_refund(con: duckdb.DuckDBPyConnection, request_id: int, refund_id: str) -> None:
    """Record the Stripe refund of a PROCESSED request that lacked it."""
    con.execute("UPDATE refund_requests SET stripe_refund_id = ?, updated_at = now() "
                "WHERE id = ? AND status = 'PROCESSED'", [refund_id, request_id])


def mark_failed(con: duckdb.DuckDBPyConnection, request_id: int, message: str, refund_id: str | None) -> None:
    """A PROCESSED request whose refund Stripe does not have (or failed) -> FAILED, so it can be retried."""
    con.execute("UPDATE refund_requests SET status = 'FAILED', failure_message = ?, stripe_refund_id = ?, "
                "updated_at = now() WHERE id = ? AND status = 'PROCESSED'", [message, refund_id, request_id])


def mark_processed(con: duckdb.DuckDBPyConnection, request_id: int, status: str, refund_id: str,
                   processed_at: datetime) -> bool:
    """A request in ``status`` whose Stripe refund exists -> PROCESSED; False if its status moved meanwhile."""
    return bool(con.execute(
        "UPDATE refund_requests SET status = 'PROCESSED', stripe_refund_id = ?, "
        "processed_at = coalesce(processed_at, ?), failure_message = NULL, updated_at = now() "
        "WHERE id = ? AND status = ? RETURNING id", [refund_id, processed_at, request_id, status]).fetchall())


def set_texts(con: duckdb.DuckDBPyConnection, columns: Sequence[str],
              updates: Sequence[tuple[int, Sequence[str | None]]]) -> None:
    """Replace the free-text ``columns`` of requests: ``updates`` is ``(request id, new values)`` pairs."""
    sets = ", ".join(f"{c} = ?" for c in columns)
    con.executemany(f"UPDATE refund_requests SET {sets} WHERE id = ?", [[*values, rid] for rid, values in updates])

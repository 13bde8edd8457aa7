"""Refund requests: eligibility, priorities, the review state machine, four-eyes, processing.

payops is the source of truth for refund *decisions*; Stripe is the source of truth for
money. This package is the only writer of ``refund_requests``: every state change is one
conditional ``UPDATE ... WHERE id = ? AND status = ?`` plus its audit row, in one
transaction, made by :func:`transition` and allowed by :data:`TRANSITIONS`.

States::

    PENDING -> APPROVED | REJECTED
    APPROVED -> PROCESSING -> PROCESSED | FAILED
    FAILED -> APPROVED            (a retry)

(plus the repairs ``payops fix`` makes and a refund that fails after it was made: see
:data:`TRANSITIONS`).

Modules: :mod:`~payops.refunds.model` (the request, statuses, transitions),
:mod:`~payops.refunds.rules` (LARGE, priorities, open, pending-at, in Python and SQL),
:mod:`~payops.refunds.eligibility`, :mod:`~payops.refunds.intake` (opening requests, CSV
import), :mod:`~payops.refunds.queue` (with :func:`queue_page`, one screen of the review app on
one connection), :mod:`~payops.refunds.detail` (:func:`request_detail`, the review app's detail
pane on one connection), :mod:`~payops.refunds.decisions`,
:mod:`~payops.refunds.processing` and :mod:`~payops.refunds.store` (reads, and the writes
other modules need).
"""

from __future__ import annotations

from payops.refunds.decisions import apply_policy, approve, reject
from payops.refunds.detail import RequestDetail, request_detail
from payops.refunds.eligibility import (
    PaymentFacts,
    check,
    eligibility_notes,
    eligibility_reasons,
    eligibility_wording,
    load_facts,
)
from payops.refunds.intake import CSV_COLUMNS, ImportLine, import_csv, import_records, parse_amount, request
from payops.refunds.model import (
    COLUMNS,
    ENTITY,
    OPEN_STATUSES,
    PRIORITIES,
    REASONS,
    STATUSES,
    TEXT_COLUMNS,
    TRANSITIONS,
    ActionResult,
    IllegalTransition,
    Reason,
    RefundRequest,
    Status,
    Verdict,
    check_transition,
    idempotency_key,
    transition,
)
from payops.refunds.processing import process, reconcile, sync_refund_failures
from payops.refunds.provenance import Provenance
from payops.refunds.provenance import check as check_provenance
from payops.refunds.queue import (
    QUEUE_COLUMNS,
    SORTS,
    QueuePage,
    customer_history,
    pending_by_priority,
    pending_parts,
    queue,
    queue_count,
    queue_page,
)
from payops.refunds.rules import (
    cumulative_amount,
    decided_at_sql,
    decided_moment,
    is_large,
    is_large_cumulative,
    is_pending_at,
    large_threshold,
    large_thresholds_sql,
    open_sql,
    pending_at_sql,
    priorities,
    priority,
    priority_cutoffs,
    priority_flags_sql,
    priority_sql,
)
from payops.refunds.store import (
    get,
    history,
    insert_many,
    link_refund,
    mark_failed,
    mark_processed,
    new_ids,
    set_texts,
)

__all__ = [
    # constants and types
    "STATUSES", "REASONS", "PRIORITIES", "OPEN_STATUSES", "TEXT_COLUMNS", "COLUMNS", "ENTITY", "QUEUE_COLUMNS", "SORTS",
    "CSV_COLUMNS", "Status", "Reason", "RefundRequest", "Verdict", "ActionResult", "PaymentFacts", "ImportLine",
    "QueuePage", "RequestDetail",
    # the state machine
    "TRANSITIONS", "IllegalTransition", "check_transition", "transition",
    # eligibility
    "check", "load_facts", "eligibility_reasons", "eligibility_notes", "eligibility_wording",
    # requests and the queue
    "request", "parse_amount", "import_csv", "import_records", "Provenance", "check_provenance",
    "cumulative_amount", "is_large_cumulative", "get", "history", "queue", "queue_count", "pending_by_priority",
    "pending_parts",
    "customer_history", "queue_page", "request_detail",
    # decisions and processing
    "approve", "reject", "apply_policy", "process", "reconcile", "sync_refund_failures", "idempotency_key",
    # the rules, in Python and as SQL
    "large_threshold", "is_large", "priority_cutoffs", "priorities", "priority", "decided_moment",
    "is_pending_at", "open_sql", "decided_at_sql", "pending_at_sql", "priority_flags_sql", "priority_sql",
    "large_thresholds_sql",
    # writes for other modules (repairs, erasure, the demo)
    "mark_failed", "link_refund", "mark_processed", "set_texts", "insert_many", "new_ids",
]

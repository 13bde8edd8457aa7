"""Keeping the database right and lean: repairs, retention with archive, customer erasure.

One module per job, re-exported here:

* :mod:`~payops.maintenance.fixes` / :mod:`~payops.maintenance.checks`: :func:`fix` runs a
  registry of checks (:data:`CHECKS`), each finding one kind of inconsistency between refund
  requests, Stripe objects, bookings and ``daily_metrics`` and repairing what it can (one
  audit row per repair); what it cannot repair it reports.
* :mod:`~payops.maintenance.archive`: :func:`cleanup` moves old Stripe objects and events
  into a verified Parquet archive before deleting them; :func:`restore` brings it back.
* :mod:`~payops.maintenance.privacy`: :func:`erase_customer` removes one customer's personal
  data from every table, the archive and the export files; :func:`mask_pii` masks personal
  data in a DataFrame for exports.
"""

from payops.maintenance.archive import ARCHIVE_TABLES, CleanupResult, RestoreResult, archived_ids, cleanup, restore
from payops.maintenance.checks import CHECKS, Check, Finding
from payops.maintenance.common import parse_age
from payops.maintenance.fixes import FIX_KINDS, fix
from payops.maintenance.privacy import ErasureResult, erase_customer, mask_pii

__all__ = [
    "ARCHIVE_TABLES",
    "CHECKS",
    "Check",
    "CleanupResult",
    "ErasureResult",
    "FIX_KINDS",
    "Finding",
    "RestoreResult",
    "archived_ids",
    "cleanup",
    "erase_customer",
    "fix",
    "mask_pii",
    "parse_age",
    "restore",
]

"""Stripe objects (dicts) into typed DuckDB rows, newer-wins: see :mod:`payops.ingest.core`.

- :mod:`~payops.ingest.schema`: the columns of every stream's table (``OBJECT_TABLES``);
- :mod:`~payops.ingest.stage`: one type's objects as typed Arrow rows (SQL fast path);
- :mod:`~payops.ingest.core`: a batch validated, deduplicated newest-first, and upserted.
"""

from payops.ingest.core import IngestSummary, TableCounts, ingest_into, ingest_objects, to_version
from payops.ingest.schema import OBJECT_TABLES

__all__ = ["ingest_objects", "ingest_into", "IngestSummary", "TableCounts", "OBJECT_TABLES", "to_version"]

"""A deterministic synthetic marketplace, fed through :mod:`payops.ingest`.

The reference business: students (Stripe customers) pay for tutoring sessions and the
platform keeps a 15% ``application_fee_amount``. :func:`build_demo` plans the marketplace
(:mod:`~payops.demo.plan`: who pays what, when, and what becomes of it), builds the
Stripe objects of that plan (:mod:`~payops.demo.stripe_objects`: customers, payment
intents, charges, refunds, balance transactions, disputes, payouts, and the events of the
last day, as the API version ``2026-10-28.endive`` returns them), ingests them through the
real ingest path, and adds the payops-owned tables (:mod:`~payops.demo.records`):
``bookings``, ``refund_requests`` and their ``audit_log`` rows.

Determinism: every value comes from ``random.Random(seed)`` or from ``as_of``; nothing
reads the wall clock, so the same seed and ``as_of`` give byte-identical tables (except
``schema_migrations.applied_at``, which records when the schema was created).
"""

from payops.demo.build import TABLES, DemoSummary, build_demo
from payops.demo.catalog import API_VERSION, SESSIONS_PER_CUSTOMER_DAY

__all__ = ["API_VERSION", "SESSIONS_PER_CUSTOMER_DAY", "TABLES", "DemoSummary", "build_demo"]

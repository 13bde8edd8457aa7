"""Benchmark: the refund review app's first render with a large pending queue.

Builds a small demo marketplace in a temporary folder, adds pending refund requests until
there are N (default 10,000) with ages spread over a week (so every priority occurs), then
times building ``RefundReview()`` and rendering its first page, plus a page flip and a
filter change. Goal: first render under 1,000 ms (the queue is paged in SQL and only the
page's rows become widgets).

Usage: .venv/bin/python bench/review.py [--requests N] [--repeat R]
The last line is JSON: {"bench": "review_app", "requests": N, "first_render_ms": ...}.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from datetime import date
from pathlib import Path


def _fill(db: Path, n: int) -> int:
    """Add PENDING requests (bulk SQL) until the queue holds ``n``; returns the pending count.

    Direct inserts, not ``payops.refunds.request``: the benchmark needs a big queue, not
    valid refundable amounts, and 10,000 single requests would dominate the run time.
    """
    import duckdb

    con = duckdb.connect(str(db))
    try:
        (pending,) = con.execute("SELECT count(*) FROM refund_requests WHERE status = 'PENDING'").fetchone()
        missing = max(0, n - pending)
        if missing:
            con.execute(
                """
                INSERT INTO refund_requests (payment_intent, charge, customer, amount, currency, reason, note,
                    status, requested_by, requested_at, attempts, updated_at)
                WITH ch AS (
                    SELECT row_number() OVER (ORDER BY id) - 1 AS k, id, payment_intent, customer, amount, currency
                    FROM charges WHERE status = 'succeeded'
                ), cnt AS (SELECT count(*) AS c FROM ch)
                SELECT ch.payment_intent, ch.id, ch.customer, greatest(1, ch.amount // (1 + g.i % 3)), ch.currency,
                       'requested_by_customer', 'benchmark request', 'PENDING', 'bench',
                       now() - to_seconds(CAST((g.i * 7919) % (7 * 86400) AS BIGINT)), 0, now()
                FROM range(?) g(i), cnt
                JOIN ch ON ch.k = g.i % cnt.c
                """,
                [missing],
            )
        (pending,) = con.execute("SELECT count(*) FROM refund_requests WHERE status = 'PENDING'").fetchone()
        return int(pending)
    finally:
        con.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=10_000, help="pending requests in the queue")
    parser.add_argument("--repeat", type=int, default=3, help="timed repetitions (the median is reported)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="payops-bench-review-") as tmp:
        db = Path(tmp) / "payops.duckdb"
        os.environ["PAYOPS_DB"] = str(db)
        os.environ.pop("PAYOPS_CONFIG", None)
        os.environ.setdefault("PAYOPS_USER", "bench")

        from payops.demo import build_demo

        t = time.perf_counter()
        build_demo(db, seed=42, days=30, customers=200, as_of=date.today(), replace=True, progress=False)
        pending = _fill(db, args.requests)
        setup_s = time.perf_counter() - t

        t = time.perf_counter()
        from payops.ui.review import RefundReview

        import_ms = (time.perf_counter() - t) * 1000

        firsts, flips, filters = [], [], []
        for _ in range(max(1, args.repeat)):
            t = time.perf_counter()
            app = RefundReview()
            app._repr_mimebundle_()  # what the notebook / Voila asks for to draw it
            firsts.append((time.perf_counter() - t) * 1000)
            t = time.perf_counter()
            app.next_page()
            flips.append((time.perf_counter() - t) * 1000)
            t = time.perf_counter()
            app.set_filter(priority="LARGE", currency="usd")
            filters.append((time.perf_counter() - t) * 1000)
        rows = len(app.ids)

    first = statistics.median(firsts)
    print(f"setup (demo + {pending:,} pending requests): {setup_s:.1f} s")
    print(f"import payops.ui.review: {import_ms:.0f} ms")
    print(f"first render (build app + first page of {app.page_size} rows): median {first:.0f} ms "
          f"(runs: {', '.join(f'{x:.0f}' for x in firsts)})")
    print(f"next page: median {statistics.median(flips):.0f} ms; filter change: median {statistics.median(filters):.0f} ms "
          f"({rows} rows on the filtered page)")
    print(f"goal 1,000 ms: {'met' if first < 1000 else 'NOT met'} ({first / 1000:.2f}x of the budget)")
    print(json.dumps({"bench": "review_app", "requests": pending, "first_render_ms": round(first, 1),
                      "next_page_ms": round(statistics.median(flips), 1),
                      "filter_ms": round(statistics.median(filters), 1), "import_ms": round(import_ms, 1)}))


if __name__ == "__main__":
    main()

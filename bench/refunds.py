"""Benchmark: the first page of the refund review queue with many requests in the database.

    .venv/bin/python bench/refunds.py [--requests 100000] [--repeat 5]

Builds a throwaway database (customers + refund_requests of every status, spread over 10
days, three currencies), then times ``payops.refunds.queue()`` for the first page of 50 in
priority order (connection open included), and ``queue_count`` / ``pending_by_priority``.
Last line: JSON ``{"bench": "refund_queue", "requests": N, "first_page_ms": ...}``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def build(db: Path, n: int) -> None:
    from payops.db import connect

    customers = max(1, n // 20)
    with connect(db) as con:
        con.execute(f"""
            INSERT INTO customers (id, email, name, created, deleted, livemode, metadata, raw, version, synced_at)
            SELECT 'cus_' || i, 'student' || i || '@example.com', 'Student ' || i, now(), false, false, '{{}}',
                   '{{}}', 0, now()
            FROM range({customers}) t(i)""")
        con.execute(f"""
            INSERT INTO refund_requests (id, payment_intent, charge, customer, amount, currency, reason, status,
                                         requested_by, requested_at, attempts, updated_at)
            SELECT i + 1, 'pi_' || i, 'ch_' || i, 'cus_' || (i % {customers}),
                   CASE WHEN i % 20 = 0 THEN 100 * (20 + i % 100) ELSE 100 * (5 + i % 90) END,
                   CASE WHEN i % 20 = 0 THEN 'jpy' WHEN i % 10 = 1 THEN 'eur' ELSE 'usd' END,
                   'requested_by_customer',
                   CASE WHEN i % 3 = 0 THEN 'PENDING' WHEN i % 3 = 1 THEN 'PROCESSED'
                        ELSE ['APPROVED', 'REJECTED', 'FAILED', 'PROCESSING'][1 + i % 4] END,
                   'bench', now() - to_microseconds((hash(i) % 864000000000)::BIGINT), 0, now()
            FROM range({n}) t(i)""")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)  # no payops.toml: default thresholds
        db = Path(tmp) / "bench.duckdb"
        os.environ["PAYOPS_DB"] = str(db)
        t0 = time.perf_counter()
        build(db, args.requests)
        build_s = time.perf_counter() - t0
        from payops.refunds import pending_by_priority, queue, queue_count

        queue(db=db)  # warm-up: first open, migrations check
        times = []
        for _ in range(args.repeat):
            t = time.perf_counter()
            page = queue(db=db, limit=50)
            times.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        total = queue_count(db=db)
        count_ms = (time.perf_counter() - t) * 1000
        t = time.perf_counter()
        counts = pending_by_priority(db=db)
        prio_ms = (time.perf_counter() - t) * 1000
        t = time.perf_counter()
        searched = queue(db=db, status=None, search="student42@")
        search_ms = (time.perf_counter() - t) * 1000
    first = statistics.median(times)
    print(f"built {args.requests:,} requests in {build_s:.1f} s; {total:,} pending")
    print(f"first page of {len(page)} (priority order): median {first:.1f} ms, min {min(times):.1f} ms, "
          f"max {max(times):.1f} ms over {args.repeat} runs")
    print(f"top of queue: {page.iloc[0]['priorities']} {page.iloc[0]['amount_display']} "
          f"{page.iloc[0]['age_hours']:.0f} h old")
    print(f"queue_count {count_ms:.1f} ms; pending_by_priority {prio_ms:.1f} ms {counts}; "
          f"search over all statuses {search_ms:.1f} ms ({len(searched)} rows)")
    print(f"first page in {first / 1000:.3f} s = {first / 1000 * 100:.1f}% of a one-second budget")
    print(json.dumps({"bench": "refund_queue", "requests": args.requests, "first_page_ms": round(first, 1),
                      "count_ms": round(count_ms, 1), "pending_by_priority_ms": round(prio_ms, 1)}))


if __name__ == "__main__":
    main()

"""Benchmark: payops's parallel backfill vs a sequential auto_paging_iter, same fake server.

    .venv/bin/python bench/sync.py [--objects 100000] [--workers 8] [--sequential-objects 20000]

The project's fake Stripe server (tests/fake_stripe.py) runs in a child process (so its
CPU does not share this process's GIL) with 250 ms per request and a 25 requests/s limit
(Stripe's test-mode limit; excess requests get 429). The bound is therefore 25 pages/s x
100 objects = 2,500 objects/s. payops backfills every stream with PAYOPS_STRIPE_RPS=25;
then, in the same run, a single-threaded ``auto_paging_iter`` (what sequential tools do)
reads the same streams; it is measured over its first ``--sequential-objects`` objects
(default 20,000: at ~400 objects/s the full 100k would take over 4 minutes) and its rate
is reported. Peak RSS is this process's (payops side only). Last line: JSON.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO))

LATENCY, RPS, KEY = 0.25, 25, "sk_test_benchmark0000"


def _server(conn, objects: int) -> None:
    from http.server import ThreadingHTTPServer

    from fake_stripe import FakeStripe, build_account

    from payops.streams import STREAM_OBJECTS

    # The stdlib server listens with a backlog of 5: when more workers than that open their
    # connections at once, the kernel drops the extra SYNs and the client retries them a
    # second later, which Stripe's servers never make anyone do. (This is the server
    # process only: nothing in payops or the tests changes.)
    ThreadingHTTPServer.request_queue_size = 128
    now = int(time.time())
    fake = FakeStripe(latency=LATENCY, rate_limit_rps=RPS, seed=3)
    # ~5.45 objects per payment: intent, charge, balance transaction, some refunds/disputes, and for
    # the 80% that are destination charges a transfer, its balance transaction and an application fee
    payments = int(objects / 5.45)
    build_account(fake, max(10, payments // 10), payments, now - 365 * 86400, now - 3600, seed=3)
    counts = {t: len(fake.objects(t)) for t in STREAM_OBJECTS.values()}
    fake.start()
    conn.send((fake.url, counts))
    conn.recv()  # until the parent says stop
    fake.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--objects", type=int, default=100_000)
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--sequential-objects", type=int, default=20_000)
    args = ap.parse_args()

    parent, child = mp.Pipe()
    proc = mp.get_context("fork").Process(target=_server, args=(child, args.objects), daemon=True)
    t = time.monotonic()
    proc.start()
    url, counts = parent.recv()
    total = sum(counts.values())
    print(f"fake server {url}: {total:,} objects built in {time.monotonic() - t:.1f} s "
          f"({', '.join(f'{k} {v:,}' for k, v in counts.items())})")
    try:
        tmp = tempfile.mkdtemp(prefix="payops-bench-")
        os.environ.update(STRIPE_API_KEY=KEY, STRIPE_API_BASE=url, PAYOPS_STRIPE_RPS=str(RPS),
                          PAYOPS_DB=os.path.join(tmp, "bench.duckdb"))
        from payops import query
        from payops.stripe_api import get_client
        from payops.sync import run

        api = get_client()
        t = time.monotonic()
        summary = run(full=True, workers=args.workers, api=api, progress=False, link_payouts=False)
        payops_s = time.monotonic() - t
        from payops.payouts import sync_links

        t, requests0 = time.monotonic(), api.stats["requests"]
        linked, _ = sync_links(api, workers=args.workers)
        links_s, link_requests = time.monotonic() - t, api.stats["requests"] - requests0
        rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        from payops.streams import STREAMS

        got = int(query("SELECT " + " + ".join(f"(SELECT count(*) FROM {s})" for s in STREAMS) + " AS n").iloc[0, 0])
        print(summary.table())
        payops_rate = got / payops_s
        print(f"payops: {got:,} of {total:,} objects in {payops_s:.1f} s = {payops_rate:,.0f} objects/s "
              f"({args.workers} workers; {summary.requests} requests, {summary.rate_limited} 429s); "
              f"peak RSS {rss_mb:.0f} MB")
        print(f"payout links (GET /v1/balance_transactions?payout=, one list per payout): {linked:,} payouts in "
              f"{links_s:.1f} s ({link_requests} requests = {link_requests / max(links_s, 1e-9):.1f} requests/s)")

        import stripe

        client = stripe.StripeClient(KEY, base_addresses={"api": url}, max_network_retries=5)
        services = [getattr(client.v1, s) for s in STREAMS]
        n = 0
        t = time.monotonic()
        for svc in services:
            for _ in svc.list({"limit": 100}).auto_paging_iter():
                n += 1
                if n >= args.sequential_objects:
                    break
            if n >= args.sequential_objects:
                break
        seq_s = time.monotonic() - t
        seq_rate = n / seq_s
        print(f"sequential auto_paging_iter: {n:,} objects (a fixed subset) in {seq_s:.1f} s = "
              f"{seq_rate:,.0f} objects/s")
    finally:
        parent.send("stop")
        proc.join(10)
    bound = RPS * 100
    print(json.dumps({
        "bench": "sync", "objects": got, "payops_objects_per_s": round(payops_rate, 1),
        "sequential_objects_per_s": round(seq_rate, 1), "bound_objects_per_s": bound,
        "ratio_to_bound": round(payops_rate / bound, 3),
        "ratio_to_sequential": round(payops_rate / seq_rate, 2),
        "peak_rss_mb": round(rss_mb, 1), "payouts_linked": linked, "payout_links_s": round(links_s, 1),
        "payout_link_requests_per_s": round(link_requests / max(links_s, 1e-9), 1),
    }))


if __name__ == "__main__":
    main()

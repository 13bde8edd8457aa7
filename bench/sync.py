"""Benchmark: payops's parallel backfill and events pass vs the bound the rate limit allows.

    .venv/bin/python bench/sync.py [--objects 100000] [--events 20000] [--workers N]
                                   [--sequential-objects 20000]

The project's fake Stripe server (tests/fake_stripe.py) runs in a child process (so its
CPU does not share this process's GIL) with 250 ms per request and a 25 requests/s limit
(Stripe's test-mode limit; excess requests get 429). The bound is therefore 25 pages/s x
100 objects = 2,500 objects/s. In one run:

1. payops backfills every stream (``run(full=True)``, PAYOPS_STRIPE_RPS=25), then links
   payouts to their balance transactions (one list per payout, timed apart);
2. the server then gets ``--events`` events spread over the following day (a busy day of
   ``charge.updated``), and an incremental ``run()`` reads them: events/s against the same
   bound (one sequential page chain would reach 100 per 250 ms = 400/s);
3. a single-threaded ``auto_paging_iter`` (what sequential tools do) reads the same
   streams, measured over its first ``--sequential-objects`` objects.

Peak RSS is this process's (payops side only). The load average of the machine is printed
with the figures (the bench shares the CPU with whatever else runs). Last line: JSON.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import random
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
    while True:  # until the parent says stop
        msg = conn.recv()
        if msg[0] == "stop":
            break
        _, n, start = msg  # n charge.updated events over the day after `start`
        rng = random.Random(4)
        charges = fake.objects("charge")
        for _ in range(n):
            c = rng.choice(charges)
            fake.add_event("charge.updated", dict(c, metadata={**(c.get("metadata") or {}), "bench": "1"}),
                           created=start + rng.randrange(86400))
        conn.send(n)
    fake.stop()


def _load() -> str:
    return "load average " + ", ".join(f"{x:.1f}" for x in os.getloadavg())


def _stored(query) -> int:
    from payops.streams import STREAMS

    return int(query("SELECT " + " + ".join(f"(SELECT count(*) FROM {s})" for s in STREAMS) + " AS n").iloc[0, 0])


def _sequential(url: str, limit: int) -> float:
    import stripe

    from payops.streams import STREAMS

    client = stripe.StripeClient(KEY, base_addresses={"api": url}, max_network_retries=5)
    n = 0
    t = time.monotonic()
    for stream in STREAMS:
        for _ in getattr(client.v1, stream).list({"limit": 100}).auto_paging_iter():
            n += 1
            if n >= limit:
                break
        if n >= limit:
            break
    seq_s = time.monotonic() - t
    print(f"sequential auto_paging_iter: {n:,} objects (a fixed subset) in {seq_s:.1f} s = "
          f"{n / seq_s:,.0f} objects/s")
    return n / seq_s


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--objects", type=int, default=100_000)
    ap.add_argument("--events", type=int, default=20_000)
    ap.add_argument("--workers", type=int, default=None, help="default: payops's (from the rate)")
    ap.add_argument("--sequential-objects", type=int, default=20_000)
    args = ap.parse_args()

    parent, child = mp.Pipe()
    proc = mp.get_context("fork").Process(target=_server, args=(child, args.objects), daemon=True)
    t = time.monotonic()
    proc.start()
    url, counts = parent.recv()
    total = sum(counts.values())
    print(f"fake server {url}: {total:,} objects built in {time.monotonic() - t:.1f} s "
          f"({', '.join(f'{k} {v:,}' for k, v in counts.items())}); {_load()}")
    bound = RPS * 100
    try:
        tmp = tempfile.mkdtemp(prefix="payops-bench-")
        os.environ.update(STRIPE_API_KEY=KEY, STRIPE_API_BASE=url, PAYOPS_STRIPE_RPS=str(RPS),
                          PAYOPS_DB=os.path.join(tmp, "bench.duckdb"))
        from payops import query
        from payops.stripe_api import get_client
        from payops.sync import run
        from payops.sync.plan import default_workers

        api = get_client()
        t = time.monotonic()
        summary = run(full=True, workers=args.workers, api=api, progress=False, link_payouts=False)
        payops_s = time.monotonic() - t
        from payops.payouts import sync_links

        t, requests0 = time.monotonic(), api.stats["requests"]
        linked, _ = sync_links(api, workers=args.workers or default_workers(RPS))
        links_s, link_requests = time.monotonic() - t, api.stats["requests"] - requests0
        rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        got = _stored(query)
        print(summary.table())
        payops_rate = got / payops_s
        print(f"payops backfill: {got:,} of {total:,} objects in {payops_s:.1f} s = {payops_rate:,.0f} objects/s "
              f"= {payops_rate / bound:.3f} of the bound ({args.workers or default_workers(RPS)} workers; "
              f"{summary.requests} requests, "
              f"{summary.rate_limited} 429s); peak RSS {rss_mb:.0f} MB; {_load()}")
        print(f"payout links (GET /v1/balance_transactions?payout=, one list per payout): {linked:,} payouts in "
              f"{links_s:.1f} s ({link_requests} requests = {link_requests / max(links_s, 1e-9):.1f} requests/s)")

        events_rate = 0.0
        if args.events:
            day = int(time.time())
            parent.send(("events", args.events, day))
            parent.recv()
            time.sleep(1.5)  # the server's rate budget refills
            t = time.monotonic()
            inc = run(workers=args.workers, api=api, progress=False, now=day + 86400 + 600)
            events_s = time.monotonic() - t
            events_rate = inc.events_new / events_s
            rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            print(f"payops events pass: {inc.events_new:,} events of a busy day in {events_s:.1f} s = "
                  f"{events_rate:,.0f} events/s = {events_rate / bound:.3f} of the bound ({inc.requests} requests); "
                  f"{_load()}")
        seq_rate = _sequential(url, args.sequential_objects)
    finally:
        parent.send(("stop",))
        proc.join(10)
    print(json.dumps({
        "bench": "sync", "objects": got, "payops_objects_per_s": round(payops_rate, 1),
        "sequential_objects_per_s": round(seq_rate, 1), "bound_objects_per_s": bound,
        "ratio_to_bound": round(payops_rate / bound, 3),
        "ratio_to_sequential": round(payops_rate / seq_rate, 2),
        "workers": args.workers or default_workers(RPS),
        "events": args.events, "events_per_s": round(events_rate, 1),
        "events_ratio_to_bound": round(events_rate / bound, 3),
        "peak_rss_mb": round(rss_mb, 1), "payouts_linked": linked, "payout_links_s": round(links_s, 1),
        "payout_link_requests_per_s": round(link_requests / max(links_s, 1e-9), 1),
        "load_average": [round(x, 1) for x in os.getloadavg()],
    }))


if __name__ == "__main__":
    main()

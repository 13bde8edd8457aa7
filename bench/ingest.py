"""Ingest throughput: payops.ingest vs DuckDB's own read_json on the same objects.

Builds N Stripe-shaped charge objects, ingests them with ``payops.ingest.ingest_objects``
into a fresh DuckDB file, then (the bound) loads the same objects, written once as NDJSON,
with DuckDB's ``read_json`` into a plain table. Prints both rates and their ratio; the last
line is JSON.

    .venv/bin/python bench/ingest.py [--objects 200000]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from payops.ingest import ingest_objects  # noqa: E402

BRANDS = ["visa", "mastercard", "amex"]
CODES = [None] * 19 + ["card_declined"]


def charge(i: int, rng: random.Random) -> dict:
    failed = rng.random() < 0.05
    amount = rng.choice([2500, 3000, 4500, 6000, 9000, 12000])
    return {
        "id": f"ch_{i:024d}", "object": "charge", "amount": amount,
        "amount_captured": 0 if failed else amount, "amount_refunded": 0,
        "application_fee_amount": amount * 15 // 100, "balance_transaction": None if failed else f"txn_{i:024d}",
        "billing_details": {"address": {"city": None, "country": "US", "line1": None, "postal_code": "94110"},
                            "email": f"student{i % 5000}@example.com", "name": f"Student {i % 5000}", "phone": None},
        "captured": not failed, "created": 1_760_000_000 + i * 7, "currency": "usd",
        "customer": f"cus_{i % 5000:014d}", "description": "Tutoring session", "disputed": False,
        "failure_code": "card_declined" if failed else None,
        "failure_message": "Your card was declined." if failed else None,
        "livemode": False, "metadata": {"booking_id": f"bk_{i}", "tutor_id": f"tut_{i % 300}"},
        "outcome": {"network_status": "approved_by_network", "risk_level": "normal", "type": "authorized"},
        "paid": not failed, "payment_intent": f"pi_{i:024d}", "payment_method": f"pm_{i:024d}",
        "payment_method_details": {"card": {"brand": rng.choice(BRANDS), "last4": "4242", "exp_month": 12,
                                            "exp_year": 2030, "country": "US", "funding": "credit"},
                                   "type": "card"},
        "receipt_email": None, "refunded": False, "status": "failed" if failed else "succeeded",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=200_000)
    args = parser.parse_args()
    rng = random.Random(7)
    objects = [charge(i, rng) for i in range(args.objects)]

    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.duckdb"
        os.environ["PAYOPS_DB"] = str(db)
        # payops: the whole batch in one call (one transaction)
        start = time.perf_counter()
        ingest_objects(objects)
        payops_s = time.perf_counter() - start
        with duckdb.connect(str(db)) as con:
            (n,) = con.execute("SELECT count(*) FROM charges").fetchone()
        assert n == len(objects), n
        # and in 10,000-object calls, each opening and closing the database (a sync's pattern)
        paged_db = Path(tmp) / "paged.duckdb"
        os.environ["PAYOPS_DB"] = str(paged_db)
        start = time.perf_counter()
        for i in range(0, len(objects), 10_000):
            ingest_objects(objects[i:i + 10_000])
        paged_s = time.perf_counter() - start

        # the bound: DuckDB's own JSON reader on the same objects, one NDJSON file
        ndjson = Path(tmp) / "charges.ndjson"
        ndjson.write_bytes(b"\n".join(orjson.dumps(o) for o in objects))
        raw_db = Path(tmp) / "bound.duckdb"
        start = time.perf_counter()
        with duckdb.connect(str(raw_db)) as con:
            con.execute(f"CREATE TABLE charges AS SELECT * FROM read_json('{ndjson}', format='newline_delimited')")
            (m,) = con.execute("SELECT count(*) FROM charges").fetchone()
        bound_s = time.perf_counter() - start
        assert m == len(objects), m

    payops_rate = len(objects) / payops_s
    bound_rate = len(objects) / bound_s
    print(f"payops.ingest : {len(objects):,} charges in {payops_s:6.2f} s = {payops_rate:10,.0f} objects/s")
    print(f"  (in 10k calls: {len(objects) / paged_s:10,.0f} objects/s, open+commit+close per call)")
    print(f"read_json     : {len(objects):,} charges in {bound_s:6.2f} s = {bound_rate:10,.0f} objects/s")
    print(f"ratio payops/read_json = {payops_rate / bound_rate:.2f} (goal: payops >= 20,000 objects/s)")
    print(json.dumps({"bench": "ingest", "objects": len(objects), "payops_objects_per_s": round(payops_rate),
                      "read_json_objects_per_s": round(bound_rate), "ratio": round(payops_rate / bound_rate, 3),
                      "payops_10k_calls_objects_per_s": round(len(objects) / paged_s)}))


if __name__ == "__main__":
    main()

"""A deterministic synthetic marketplace, fed through :mod:`payops.ingest`.

The reference business: students (Stripe customers) pay for tutoring sessions and the
platform keeps a 15% ``application_fee_amount``. :func:`build_demo` generates
Stripe-shaped objects (customers, payment intents, charges, refunds, balance
transactions, disputes, payouts, and the events of the last day) as the API version
``2026-10-28.endive`` returns them, ingests them through the real ingest path, and adds
the payops-owned tables: ``bookings``, ``refund_requests`` and their ``audit_log`` rows.

Determinism: every value comes from ``random.Random(seed)`` or from ``as_of``; nothing
reads the wall clock, so the same seed and ``as_of`` give byte-identical tables (except
``schema_migrations.applied_at``, which records when the schema was created).
"""

from __future__ import annotations

import gc
import math
import queue
import random
import string
import threading
import time
from bisect import bisect_right
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import pyarrow as pa

from payops.audit import GENESIS, _canon, row_hash
from payops.config import get_settings
from payops.db import connect, database_path, transaction
from payops.errors import InvalidInput
from payops.ingest import ingest_into
from payops.money import fee as _fee
from payops.money import from_decimal

__all__ = ["build_demo", "DemoSummary", "API_VERSION", "SESSIONS_PER_CUSTOMER_DAY"]

API_VERSION = "2026-10-28.endive"
SESSIONS_PER_CUSTOMER_DAY = 0.08
PLATFORM_FEE_BPS = 1500
CHUNK = 50_000  # payments per ingest transaction
CHECKPOINT_THRESHOLD = "64GB"
DAY = 86_400
HOUR = 3_600

TABLES = (
    "customers", "payment_intents", "charges", "refunds", "balance_transactions", "disputes",
    "payouts", "events", "bookings", "refund_requests", "audit_log",
)

_ALPH = string.digits + string.ascii_letters
_TABLE = bytes(ord(_ALPH[i % 62]) for i in range(256))  # random bytes -> base62 characters

# Volume by hour of day (UTC): tutoring happens after school and work.
_HOURS = [0.3, 0.2, 0.15, 0.1, 0.1, 0.1, 0.15, 0.3, 0.5, 0.6, 0.7, 0.8,
          0.9, 1.0, 1.2, 1.6, 2.0, 2.3, 2.4, 2.2, 1.8, 1.3, 0.9, 0.5]
_HOUR_F = [w * 24 / sum(_HOURS) for w in _HOURS]
_WEEKDAY_F = 7 / (5 + 2 * 0.55)  # weekends have 55% of a weekday's volume
_DAY_F = [_WEEKDAY_F] * 5 + [_WEEKDAY_F * 0.55] * 2

# Session prices in minor units: duration -> the three tutor rate tiers.
_DURATIONS = (30, 45, 60, 90)
_DURATION_W = (0.2, 0.2, 0.45, 0.15)
_PRICES = {
    "usd": {30: (2500, 3000, 3500), 45: (4000, 4500, 5500), 60: (5000, 6000, 7500), 90: (9000, 10500, 12000)},
    "eur": {30: (2500, 3000, 3500), 45: (4000, 4500, 5000), 60: (5000, 6000, 7000), 90: (8500, 10000, 11500)},
    "gbp": {30: (2500, 2500, 3000), 45: (3500, 4000, 4500), 60: (4500, 5500, 6500), 90: (7500, 9000, 10500)},
    "jpy": {30: (3000, 3500, 4000), 45: (4500, 5000, 6000), 60: (6000, 7000, 8000), 90: (9000, 10500, 12000)},
}
# Stripe's card pricing: (basis points, fixed minor units), dispute fee.
_STRIPE_FEE = {"usd": (290, 30), "eur": (150, 25), "gbp": (150, 20), "jpy": (360, 0)}
_DISPUTE_FEE = {"usd": 1500, "eur": 2000, "gbp": 2000, "jpy": 2000}
_COUNTRIES = {"usd": ("US",), "eur": ("DE", "FR", "NL", "ES", "IT"), "gbp": ("GB",), "jpy": ("JP",)}
_LOCALE = {"usd": "en-US", "eur": "de-DE", "gbp": "en-GB", "jpy": "ja-JP"}

# (failure_code, decline reason, failure_message, weight) as Stripe reports them.
_DECLINES = (
    ("card_declined", "generic_decline", "Your card was declined.", 0.30),
    ("card_declined", "insufficient_funds", "Your card has insufficient funds.", 0.30),
    ("card_declined", "do_not_honor", "Your card was declined.", 0.10),
    ("expired_card", "expired_card", "Your card has expired.", 0.12),
    ("incorrect_cvc", "incorrect_cvc", "Your card's security code is incorrect.", 0.12),
    ("processing_error", "processing_error",
     "An error occurred while processing your card. Try again in a little bit.", 0.06),
)
_FAIL_RATE = 0.045  # of first attempts; about half are retried successfully
_BRANDS = (("visa", 0.55), ("mastercard", 0.30), ("amex", 0.10), ("discover", 0.05))

_FIRST = ("Ava", "Liam", "Mia", "Noah", "Emma", "Lucas", "Sofia", "Mateo", "Chloe", "Ethan", "Zoe",
          "Leo", "Maya", "Omar", "Hana", "Yuki", "Sara", "Jonas", "Lena", "Ravi", "Priya", "Diego",
          "Ines", "Tom", "Clara", "Felix", "Nora", "Sam", "Aisha", "Ben", "Ella", "Kenji")
_LAST = ("Smith", "Garcia", "Chen", "Muller", "Rossi", "Tanaka", "Nguyen", "Brown", "Martin",
         "Kowalski", "Silva", "Novak", "Okafor", "Dubois", "Jensen", "Patel", "Kim", "Lopez",
         "Schmidt", "Sato", "Wilson", "Moreau", "Costa", "Ali")
_SUBJECTS = ("Math", "Physics", "Chemistry", "English", "Spanish", "Biology", "Piano", "Coding",
             "History", "SAT prep")

_CAST = ("ana", "ben", "carla", "support-bot")
_REVIEWERS = ("ana", "ben", "carla")
_REQ_REASONS = (("requested_by_customer", 0.75), ("duplicate", 0.15), ("fraudulent", 0.10))
_NOTES = {
    "requested_by_customer": (
        "Student says the tutor cancelled an hour before the session.",
        "Session cut short by a video-call outage; asking for a partial refund.",
        "Parent booked the wrong subject by mistake.",
        "Student was ill and cancelled the same morning.",
        "Tutor did not show up; student waited 20 minutes.",
        "Unhappy with the session quality, asks for a goodwill refund.",
    ),
    "duplicate": (
        "Booked the same slot twice from the mobile app.",
        "Charged twice for one session according to the bank statement.",
    ),
    "fraudulent": (
        "Cardholder says they never booked this session.",
        "Card reported stolen; bank asked us to refund.",
    ),
}
_REJECT_NOTES = (
    "Session was held and completed; outside the refund policy.",
    "Cancellation was less than 2 hours before the session.",
    "No duplicate found: the two charges are for two different sessions.",
    "Already compensated with a free session.",
)
_APPROVE_NOTES = (None, None, "Tutor confirmed the cancellation.", "Goodwill refund, first complaint.",
                  "Duplicate confirmed in the booking log.")
_FAIL_MESSAGES = (
    "Stripe refused the refund: the card behind charge {charge} is closed (expired_or_canceled_card).",
    "Stripe could not be reached: connection timed out after 3 retries.",
    "Stripe refused the refund: charge {charge} has already been refunded in the Dashboard.",
)
_DISPUTE_REASONS = (("fraudulent", 0.45), ("product_not_received", 0.25), ("duplicate", 0.10),
                    ("credit_not_processed", 0.10), ("general", 0.10))
_NETWORK_REASON = {"fraudulent": "10.4", "product_not_received": "13.1", "duplicate": "12.6.1",
                   "credit_not_processed": "13.6", "general": "13.3"}

# Guaranteed refund requests: (status, min age days, max age days, large?). Every status and
# every PENDING priority (URGENT > 3 days, HIGH 1-3 days, LARGE) appears in every demo.
_REQUEST_SPECS = (
    ("PENDING", 3.5, 9.5, False),
    ("PENDING", 1.2, 2.8, False),
    ("PENDING", 0.1, 0.9, True),
    ("PENDING", 4.0, 8.0, True),
    ("PENDING", 0.05, 0.9, False),
    ("APPROVED", 0.3, 2.0, False),
    ("APPROVED", 0.5, 3.0, True),
    ("REJECTED", 1.0, 8.0, False),
    ("PROCESSING", 0.1, 0.5, False),
    ("PROCESSED", 1.0, 9.0, False),
    ("PROCESSED", 2.0, 9.0, True),
    ("FAILED", 0.5, 6.0, False),
)
_REQUEST_RATE = 0.03


@dataclass
class DemoSummary:
    """What :func:`build_demo` produced."""

    path: Path
    seed: int
    as_of: date
    counts: dict[str, int] = field(default_factory=dict)
    elapsed: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)  # seconds per phase, for benchmarks

    @property
    def payments(self) -> int:
        return self.counts.get("payment_intents", 0)

    def __str__(self) -> str:
        c = self.counts
        main = ", ".join(
            f"{c.get(t, 0):,} {label}" for t, label in (
                ("customers", "customers"), ("payment_intents", "payments"), ("charges", "charges"),
                ("refunds", "refunds"), ("disputes", "disputes"), ("payouts", "payouts"),
                ("refund_requests", "refund requests"),
            )
        )
        return (
            f"Demo marketplace in {self.path} (seed {self.seed}, as of {self.as_of.isoformat()}): "
            f"{main}; built in {self.elapsed:.1f} s."
        )


# --------------------------------------------------------------------------------------
# small helpers


def _moment(as_of: date) -> int:
    return int(datetime(as_of.year, as_of.month, as_of.day, 12, tzinfo=UTC).timestamp())


def _midnight(ts: int) -> int:
    return ts - ts % DAY


def _poisson(rng: random.Random, lam: float) -> int:
    if lam <= 0:
        return 0
    if lam > 30:
        return max(0, round(rng.gauss(lam, math.sqrt(lam))))
    limit, k, p = math.exp(-lam), 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k


def _weighted(rng: random.Random, pairs):
    values = [v for v, _ in pairs]
    return lambda: rng.choices(values, weights=[w for _, w in pairs])[0]


def _ts(values: list[int]) -> pa.Array:
    return pa.array(values, type=pa.timestamp("s", tz="UTC"))


# --------------------------------------------------------------------------------------
# the plan: compact per-payment facts decided before any object is built


@dataclass
class _Customer:
    id: str
    currency: str
    name: str
    email: str
    pm: str
    card: dict
    created: int = 0


@dataclass
class _Payment:
    __slots__ = ("t", "cust", "amount", "currency", "duration", "tutor", "decline", "retry",
                 "session", "booking", "request", "dispute")
    t: int
    cust: int
    amount: int
    currency: str
    duration: int
    tutor: int
    decline: int  # index into _DECLINES or -1
    retry: bool
    session: int
    booking: str
    request: dict | None
    dispute: str | None

    @property
    def succeeded(self) -> bool:
        return self.decline < 0 or self.retry


class _Gen:
    def __init__(self, seed: int, days: int, customers: int, as_of: date):
        self.rng = random.Random(seed)
        self._ids: dict[int, tuple[str, int]] = {}
        self.seed, self.days, self.n_customers, self.as_of = seed, days, customers, as_of
        self.end = _moment(as_of)
        self.start = self.end - days * DAY
        policy = get_settings().refund_policy
        self.large = {c: policy.large_threshold(c) for c in _PRICES}

    def ident(self, prefix: str, n: int = 22) -> str:
        # ids are sliced from a block drawn 4,096 ids at a time: one rng call instead of one per id
        buf, pos = self._ids.get(n, ("", 0))
        if pos + n > len(buf):
            buf, pos = self.rng.randbytes(n * 4096).translate(_TABLE).decode("ascii"), 0
        self._ids[n] = (buf, pos + n)
        return prefix + buf[pos:pos + n]

    def digits(self, n: int) -> str:
        return str(self.rng.randrange(10 ** (n - 1), 10**n))

    # ---- plan --------------------------------------------------------------------
    def plan(self) -> None:
        rng = self.rng
        brand = _weighted(rng, _BRANDS)
        self.customers: list[_Customer] = []
        for i in range(self.n_customers):
            u = rng.random()
            cur = "eur" if u < 0.012 else "gbp" if u < 0.022 else "jpy" if u < 0.03 else "usd"
            if i < 3:  # every currency rule is exercised, even in a tiny demo
                cur = ("eur", "gbp", "jpy")[i]
            first, last = rng.choice(_FIRST), rng.choice(_LAST)
            b = brand()
            card = {
                "brand": b,
                "last4": f"{rng.randrange(10000):04d}",
                "exp_month": rng.randint(1, 12),
                "exp_year": self.as_of.year + rng.randint(1, 5),
                "country": rng.choice(_COUNTRIES[cur]),
                "funding": rng.choices(("credit", "debit", "prepaid"), (0.6, 0.38, 0.02))[0],
                "fingerprint": "".join(rng.choices(_ALPH, k=16)),
            }
            self.customers.append(_Customer(
                id=self.ident("cus_", 14), currency=cur, name=f"{first} {last}",
                email=f"{first.lower()}.{last.lower()}{i}@example.com", pm=self.ident("pm_1Q"), card=card,
            ))
        n_tutors = max(5, self.n_customers // 10)
        self.tutors = [(f"tut_{i + 1:05d}", rng.choices((0, 1, 2), (0.3, 0.5, 0.2))[0],
                        self.ident("acct_1Q", 14)) for i in range(n_tutors)]
        favorite = [rng.randrange(n_tutors) for _ in range(self.n_customers)]

        # payment times: a Poisson process per hour shaped by weekday and hour of day
        lam_hour = self.n_customers * SESSIONS_PER_CUSTOMER_DAY / 24
        times: list[int] = []
        for h in range(self.days * 24):
            t0 = self.start + h * HOUR
            dt = datetime.fromtimestamp(t0, UTC)
            k = _poisson(rng, lam_hour * _DAY_F[dt.weekday()] * _HOUR_F[dt.hour])
            times.extend(sorted(t0 + rng.randrange(HOUR) for _ in range(k)))
        yesterday = self.end - 12 * HOUR - DAY  # 00:00 of the day before as_of
        if not any(yesterday <= t < yesterday + DAY for t in times[-max(1, len(times) // self.days * 3):]):
            t = yesterday + 17 * HOUR + rng.randrange(HOUR)
            times.append(t)
            times.sort()
        n = len(times)

        weights = [rng.lognormvariate(0, 0.8) for _ in range(self.n_customers)]
        cum, acc = [], 0.0
        for w in weights:
            acc += w
            cum.append(acc)
        who = [bisect_right(cum, rng.random() * acc) for _ in range(n)]
        who = [min(c, self.n_customers - 1) for c in who]
        if n >= 6:
            for i in range(min(3, self.n_customers)):
                if i not in who:
                    who[rng.randrange(n)] = i

        decline = _weighted(rng, [(i, d[3]) for i, d in enumerate(_DECLINES)])
        self.payments: list[_Payment] = []
        for t, c in zip(times, who, strict=False):
            cust = self.customers[c]
            tutor = favorite[c] if rng.random() < 0.8 else rng.randrange(n_tutors)
            dur = rng.choices(_DURATIONS, _DURATION_W)[0]
            amount = _PRICES[cust.currency][dur][self.tutors[tutor][1]]
            failed = rng.random() < _FAIL_RATE
            code = decline() if failed else -1
            retry = failed and rng.random() < 0.5
            # the session: 2 hours to 2 weeks ahead, on the hour or half hour, afternoons/evenings
            day0 = _midnight(t) + rng.choice((0, 0, 1, 1, 2, 3, 4, 5, 6, 7, 7, 10, 14)) * DAY
            session = day0 + rng.randint(14, 21) * HOUR + rng.choice((0, 1800))
            if session < t + 2 * HOUR:
                session += DAY
            end = session + dur * 60
            if not (code < 0 or retry):
                status = "cancelled"
            elif end > self.end:
                status = "cancelled" if rng.random() < 0.03 else "scheduled"
            else:
                u = rng.random()
                status = "cancelled" if u < 0.03 else "no_show" if u < 0.05 else "completed"
            self.payments.append(_Payment(t, c, amount, cust.currency, dur, tutor, code, retry,
                                          session, status, None, None))
        for c, cust in enumerate(self.customers):
            cust.created = max(self.start, self.start + rng.randrange(self.days * DAY))
        firsts: dict[int, int] = {}
        for p in self.payments:
            firsts.setdefault(p.cust, p.t)
        for c, t in firsts.items():
            self.customers[c].created = max(self.start, t - rng.randrange(1, 3 * DAY))
            if self.customers[c].created >= t:
                self.customers[c].created = t - 60
        self._plan_disputes()
        self._plan_requests()

    def _plan_disputes(self) -> None:
        rng = self.rng
        ok = [i for i, p in enumerate(self.payments) if p.succeeded and p.t < self.end - DAY]
        n = min(len(ok), max(4, round(0.003 * len(self.payments))))
        statuses = ["needs_response", "under_review", "won", "lost"]
        rng.shuffle(statuses)
        for k, i in enumerate(rng.sample(ok, n)):
            status = statuses[k] if k < 4 else rng.choices(statuses, (0.2, 0.3, 0.25, 0.25))[0]
            self.payments[i].dispute = status

    def _plan_requests(self) -> None:
        rng = self.rng
        eligible = [i for i, p in enumerate(self.payments) if p.succeeded and p.dispute is None]
        rng.shuffle(eligible)
        n_total = max(len(_REQUEST_SPECS), round(_REQUEST_RATE * len(eligible)))
        used: set[int] = set()
        plans: list[tuple[int, str, float, bool]] = []  # (payment, status, age seconds, large)

        def pick(age: float, large: bool) -> int | None:
            for i in eligible[:5000] if large else eligible[:200]:
                p = self.payments[i]
                if i in used or p.t >= self.end - age - 600:
                    continue
                if large != (p.amount > self.large[p.currency]) or (large and p.currency != "usd"):
                    continue
                return i
            return None

        for status, lo, hi, large in _REQUEST_SPECS:
            age = rng.uniform(lo, hi) * DAY
            i = pick(age, large)
            if i is not None:
                used.add(i)
                plans.append((i, status, age, large))
        for i in eligible:
            if len(plans) >= n_total:
                break
            if i in used:
                continue
            p = self.payments[i]
            room = self.end - p.t - 600
            if room <= 0:
                continue
            age = min(rng.uniform(0.02, 10) * DAY, room * rng.uniform(0.1, 0.95))
            d = age / DAY
            pending = 0.8 if d < 1 else 0.4 if d < 3 else 0.12
            if rng.random() < pending:
                status = "PENDING"
            else:
                status = rng.choices(("APPROVED", "REJECTED", "PROCESSING", "PROCESSED", "FAILED"),
                                     (0.12, 0.22, 0.03, 0.55, 0.08))[0]
            used.add(i)
            plans.append((i, status, age, p.amount > self.large[p.currency]))
        # ids follow requested_at, so the audit trail reads in id order
        plans.sort(key=lambda x: (self.end - x[2], x[0]))
        self.request_plans = plans

    # ---- requests (need their ids before the refunds that carry them) --------------
    def build_requests(self, ids: list[int]) -> None:
        rng = self.rng
        reason_of = _weighted(rng, _REQ_REASONS)
        self.requests: list[dict] = []
        self.audit: list[tuple] = []  # (at, seq, actor, action, id, before, after, note)
        for rid, (i, status, age, large) in zip(ids, self.request_plans, strict=False):
            p = self.payments[i]
            cur = p.currency
            requested_at = self.end - int(age)
            unit = 1 if cur == "jpy" else 100
            if large or rng.random() < 0.6:
                amount = p.amount
            else:
                amount = max(unit, (p.amount * rng.choice((25, 30, 40, 50, 60)) // 100) // unit * unit)
            if large and amount <= self.large[cur]:
                amount = p.amount
            reason = reason_of()
            requester = rng.choices(_CAST, (0.25, 0.2, 0.15, 0.4))[0]
            req = {
                "id": rid, "payment_intent": None, "charge": None, "customer": self.customers[p.cust].id,
                "amount": amount, "currency": cur, "reason": reason, "note": rng.choice(_NOTES[reason]),
                "status": "PENDING", "requested_by": requester, "requested_at": requested_at,
                "first_approver": None, "first_approved_at": None, "decided_by": None, "decided_at": None,
                "decision_note": None, "second_approver": None, "stripe_refund_id": None,
                "processed_at": None, "failure_message": None, "attempts": 0, "updated_at": requested_at,
                "_payment": i,
            }
            self.requests.append(req)
            p.request = req
            room = self.end - requested_at

            def later(t: int, frac_lo: float = 0.05, frac_hi: float = 0.5, cap: int = 2 * DAY) -> int:
                gap = self.end - t
                return t + max(1, int(min(gap, cap) * rng.uniform(frac_lo, frac_hi)))

            events = [(requested_at, requester, "create", None, "PENDING", req["note"])]
            if status != "PENDING" and room > 120:
                t1 = later(requested_at)
                policy = p.booking in ("cancelled", "no_show", "scheduled") and not large
                others = [r for r in _REVIEWERS if r != requester]
                if status == "REJECTED":
                    who = rng.choice(others)
                    note = rng.choice(_REJECT_NOTES)
                    req.update(status="REJECTED", decided_by=who, decided_at=t1, decision_note=note,
                               updated_at=t1)
                    events.append((t1, who, "reject", "PENDING", "REJECTED", note))
                else:
                    first = "policy" if policy else rng.choice(others)
                    note = "Auto-approved: session not held (cancelled, no-show or not yet started)." \
                        if policy else rng.choice(_APPROVE_NOTES)
                    req.update(status="APPROVED", first_approver=first, first_approved_at=t1,
                               decided_by=first, decided_at=t1, decision_note=note, updated_at=t1)
                    if large:  # four-eyes: a second, different approver
                        second = rng.choice([r for r in others if r != first])
                        events.append((t1, first, "approve", "PENDING", "PENDING", note))
                        t1 = later(t1, 0.05, 0.3, DAY)
                        req.update(second_approver=second, decided_by=second, decided_at=t1, updated_at=t1)
                        events.append((t1, second, "approve", "PENDING", "APPROVED", "Second approval."))
                    else:
                        events.append((t1, first, "approve", "PENDING", "APPROVED", note))
                    if status in ("PROCESSING", "PROCESSED", "FAILED"):
                        t2 = later(t1, 0.01, 0.2, 6 * HOUR)
                        processor = rng.choice(_REVIEWERS)
                        req.update(status="PROCESSING", attempts=1, updated_at=t2)
                        events.append((t2, processor, "process", "APPROVED", "PROCESSING", None))
                        if status in ("PROCESSED", "FAILED"):
                            t3 = later(t2, 0.01, 0.1, 120)
                            if status == "PROCESSED":
                                req.update(status="PROCESSED", processed_at=t3, updated_at=t3,
                                           stripe_refund_id=self.ident("re_3Q"))
                                events.append((t3, processor, "processed", "PROCESSING", "PROCESSED", None))
                            else:
                                msg = rng.choice(_FAIL_MESSAGES).format(charge="{charge}")
                                req.update(status="FAILED", failure_message=msg, updated_at=t3)
                                events.append((t3, processor, "fail", "PROCESSING", "FAILED", msg))
            for at, actor, action, before, after, note in events:
                self.audit.append((at, rid, actor, action, before, after, note))

    # ---- materialize --------------------------------------------------------------
    def customer_objects(self) -> list[dict]:
        rng = self.rng
        out = []
        for i, c in enumerate(self.customers):
            out.append({
                "id": c.id, "object": "customer", "address": None, "balance": 0, "created": c.created,
                "currency": c.currency, "default_source": None, "delinquent": False,
                "description": None, "discount": None, "email": c.email,
                "invoice_prefix": "".join(rng.choices("0123456789ABCDEF", k=8)),
                "invoice_settings": {"custom_fields": None, "default_payment_method": c.pm,
                                     "footer": None, "rendering_options": None},
                "livemode": False, "metadata": {"student_id": f"stu_{i + 1:06d}"}, "name": c.name,
                "next_invoice_sequence": 1, "phone": None, "preferred_locales": [_LOCALE[c.currency]],
                "shipping": None, "tax_exempt": "none", "test_clock": None,
            })
        return out

    def payment_objects(self, lo: int, hi: int, pending: dict) -> tuple[list[dict], list[tuple]]:
        """Objects for payments ``lo:hi``; ``pending`` accumulates balance per (day, currency)."""
        rng = self.rng
        ident = self.ident
        end = self.end
        recent = end - DAY
        objs: list[dict] = []
        bookings: list[tuple] = []
        events: list[dict] = []

        def event(etype: str, obj: dict, created: int) -> None:
            if created >= recent:
                events.append({
                    "id": ident("evt_3Q"), "object": "event", "api_version": API_VERSION,
                    "created": created, "data": {"object": obj}, "livemode": False, "pending_webhooks": 0,
                    "request": {"id": ident("req_", 14), "idempotency_key": ident("", 8) + "-" + ident("", 12)},
                    "type": etype,
                })

        for p in self.payments[lo:hi]:
            cust = self.customers[p.cust]
            cur, amount = p.currency, p.amount
            tutor_id = self.tutors[p.tutor][0]
            pi_id = ident("pi_3Q")
            booking_id = ident("bk_", 14)
            subject = rng.choice(_SUBJECTS)
            desc = f"{subject} tutoring, {p.duration} min"
            app_fee = _fee(amount, PLATFORM_FEE_BPS)
            bps, fixed = _STRIPE_FEE[cur]
            card = cust.card
            session_iso = datetime.fromtimestamp(p.session, UTC).isoformat().replace("+00:00", "Z")

            # attempts: a declined first charge, maybe a successful retry
            attempts = []
            t = p.t
            if p.decline >= 0:
                attempts.append((t, p.decline))
                if p.retry:
                    t = min(end - 1, t + rng.randint(120, 1800))
                    attempts.append((t, -1))
            else:
                attempts.append((t, -1))
            charges = []
            last_error = None
            for at, code in attempts:
                ch_id = ident("ch_3Q")
                ok = code < 0
                if ok:
                    outcome = {"advice_code": None, "network_advice_code": None, "network_decline_code": None,
                               "network_status": "approved_by_network", "reason": None, "risk_level": "normal",
                               "risk_score": rng.randint(2, 60), "seller_message": "Payment complete.",
                               "type": "authorized"}
                    fcode = fmsg = None
                else:
                    fcode, reason, fmsg, _ = _DECLINES[code]
                    outcome = {"advice_code": "try_again_later" if code == 5 else "do_not_try_again"
                               if reason in ("do_not_honor",) else None,
                               "network_advice_code": None, "network_decline_code": None,
                               "network_status": "declined_by_network", "reason": reason,
                               "risk_level": "normal", "risk_score": rng.randint(5, 70),
                               "seller_message": f"The bank returned the decline code `{reason}`.",
                               "type": "issuer_declined"}
                    last_error = {"charge": ch_id, "code": fcode,
                                  "decline_code": reason if fcode == "card_declined" else None,
                                  "doc_url": f"https://stripe.com/docs/error-codes/{fcode.replace('_', '-')}",
                                  "message": fmsg, "payment_method": cust.pm, "type": "card_error"}
                charge = {
                    "id": ch_id, "object": "charge", "amount": amount,
                    "amount_captured": amount if ok else 0, "amount_refunded": 0, "application": None,
                    "application_fee": ident("fee_1Q") if ok else None,
                    "application_fee_amount": app_fee if ok else None,
                    "balance_transaction": None,
                    "billing_details": {
                        "address": {"city": None, "country": card["country"], "line1": None, "line2": None,
                                    "postal_code": f"{rng.randrange(10000, 99999)}" if cur == "usd" else None,
                                    "state": None},
                        "email": cust.email, "name": cust.name, "phone": None, "tax_id": None,
                    },
                    "calculated_statement_descriptor": "TUTORLY", "captured": ok, "created": at,
                    "currency": cur, "customer": cust.id, "description": desc, "destination": None,
                    "dispute": None, "disputed": False, "failure_balance_transaction": None,
                    "failure_code": fcode, "failure_message": fmsg, "fraud_details": {}, "livemode": False,
                    "metadata": {"booking_id": booking_id}, "on_behalf_of": None, "outcome": outcome,
                    "paid": ok, "payment_intent": pi_id, "payment_method": cust.pm,
                    "payment_method_details": {
                        "card": {
                            "amount_authorized": amount if ok else None, "authorization_code": None,
                            "brand": card["brand"],
                            "checks": {"address_line1_check": None,
                                       "address_postal_code_check": "pass" if cur == "usd" else None,
                                       "cvc_check": "fail" if fcode == "incorrect_cvc" else "pass"},
                            "country": card["country"], "exp_month": card["exp_month"],
                            "exp_year": card["exp_year"] if fcode != "expired_card" else self.as_of.year - 1,
                            "extended_authorization": {"status": "disabled"},
                            "fingerprint": card["fingerprint"], "funding": card["funding"],
                            "incremental_authorization": {"status": "unavailable"}, "installments": None,
                            "last4": card["last4"], "mandate": None, "multicapture": {"status": "unavailable"},
                            "network": card["brand"], "network_token": {"used": False},
                            "network_transaction_id": self.digits(15) if ok else None,
                            "overcapture": {"maximum_amount_capturable": amount, "status": "unavailable"},
                            "regulated_status": "unregulated", "three_d_secure": None, "wallet": None,
                        },
                        "type": "card",
                    },
                    "radar_options": {}, "receipt_email": cust.email, "receipt_number": None,
                    "receipt_url": f"https://pay.stripe.com/receipts/payment/{ident('', 40)}" if ok else None,
                    "refunded": False, "review": None, "shipping": None, "source": None,
                    "source_transfer": None, "statement_descriptor": None,
                    "statement_descriptor_suffix": None, "status": "succeeded" if ok else "failed",
                    "transfer_data": None, "transfer_group": f"group_{pi_id}",
                }
                if ok:
                    stripe_fee = _fee(amount, bps) + fixed
                    avail = _midnight(at) + 2 * DAY
                    bt = self._bt(charge["id"], "charge", "charge", amount, stripe_fee, cur, at, avail,
                                  desc, "Stripe processing fees")
                    charge["balance_transaction"] = bt["id"]
                    objs.append(bt)
                    self._credit(pending, avail, cur, bt["net"])
                charges.append(charge)
                objs.append(charge)
            charge = charges[-1]
            ok = charge["status"] == "succeeded"
            pi = {
                "id": pi_id, "object": "payment_intent", "amount": amount, "amount_capturable": 0,
                "amount_details": {"tip": {}}, "amount_received": amount if ok else 0, "application": None,
                "application_fee_amount": app_fee,
                "automatic_payment_methods": {"allow_redirects": "never", "enabled": True},
                "canceled_at": None, "cancellation_reason": None, "capture_method": "automatic_async",
                "client_secret": f"{pi_id}_secret_{ident('', 25)}", "confirmation_method": "automatic",
                "created": max(self.start, p.t - rng.randint(2, 40)), "currency": cur, "customer": cust.id,
                "description": desc,
                "last_payment_error": None if ok else last_error,
                "latest_charge": charge["id"], "livemode": False,
                "metadata": {"booking_id": booking_id, "tutor_id": tutor_id, "session_start": session_iso,
                             "duration_minutes": str(p.duration), "subject": subject},
                "next_action": None, "on_behalf_of": None,
                "payment_method": cust.pm if ok else None,
                "payment_method_configuration_details": None,
                "payment_method_options": {"card": {"installments": None, "mandate_options": None,
                                                    "network": None, "request_three_d_secure": "automatic"}},
                "payment_method_types": ["card"], "processing": None, "receipt_email": cust.email,
                "review": None, "setup_future_usage": None, "shipping": None, "source": None,
                "statement_descriptor": None, "statement_descriptor_suffix": None,
                "status": "succeeded" if ok else "requires_payment_method", "transfer_data": None,
                "transfer_group": f"group_{pi_id}",
            }
            objs.append(pi)

            # the booking
            s_end = p.session + p.duration * 60
            if p.booking == "completed":
                updated = s_end
            elif p.booking == "no_show":
                updated = min(end - 1, p.session + 1800)
            elif p.booking == "cancelled":
                last = min(end, p.session) if ok else min(end, charge["created"] + 3 * HOUR)
                updated = charge["created"] + max(1, int((last - charge["created"]) * rng.uniform(0.05, 0.95)))
            else:
                updated = charge["created"]
            bookings.append((booking_id, pi_id, cust.id, tutor_id, p.session, p.booking, min(updated, end - 1)))

            if ok:
                refunds = self._refunds(p, charge, pi_id, pending)
                for r in refunds:
                    objs.append(r)
                    if r["object"] == "refund":
                        event("charge.refunded", charge, r["created"])
                if p.dispute:
                    for o in self._dispute(p, charge, pi_id, pending):
                        objs.append(o)
                        if o["object"] == "dispute":
                            event("charge.dispute.created", o, o["created"])
            if p.request is not None:
                p.request["payment_intent"] = pi_id
                p.request["charge"] = charge["id"]
                if p.request["failure_message"]:
                    p.request["failure_message"] = p.request["failure_message"].replace("{charge}", charge["id"])
            for c in charges:
                event("charge.succeeded" if c["status"] == "succeeded" else "charge.failed", c, c["created"])
            event("payment_intent.succeeded" if ok else "payment_intent.payment_failed", pi, charge["created"])
        return objs + events, bookings

    def _bt(self, source: str, typ: str, category: str, amount: int, stripe_fee: int, cur: str,
            created: int, available: int, desc: str | None, fee_desc: str | None) -> dict:
        return {
            "id": self.ident("txn_3Q"), "object": "balance_transaction", "amount": amount,
            "available_on": available, "balance_type": "payments", "created": created, "currency": cur,
            "description": desc, "exchange_rate": None, "fee": stripe_fee,
            "fee_details": [{"amount": stripe_fee, "application": None, "currency": cur,
                             "description": fee_desc, "type": "stripe_fee"}] if stripe_fee else [],
            "net": amount - stripe_fee, "reporting_category": category, "source": source,
            "status": "available" if available <= self.end else "pending", "type": typ,
        }

    @staticmethod
    def _credit(pending: dict, available: int, cur: str, net: int) -> None:
        # funds available at ``available`` are paid out by the next daily payout
        day = _midnight(available) + (DAY if available % DAY else 0)
        key = (day, cur)
        pending[key] = pending.get(key, 0) + net

    def _refund(self, charge: dict, pi_id: str, amount: int, created: int, reason: str | None,
                metadata: dict, refund_id: str | None, pending: dict) -> list[dict]:
        cur = charge["currency"]
        bt = self._bt(None, "refund", "refund", -amount, 0, cur, created, created,
                      f"REFUND FOR CHARGE ({charge['description']})", None)
        refund = {
            "id": refund_id or self.ident("re_3Q"), "object": "refund", "amount": amount,
            "balance_transaction": bt["id"], "charge": charge["id"], "created": created, "currency": cur,
            "destination_details": {"card": {"reference": self.digits(23),
                                             "reference_status": "available",
                                             "reference_type": "acquirer_reference_number", "type": "refund"},
                                    "type": "card"},
            "metadata": metadata, "payment_intent": pi_id, "reason": reason, "receipt_number": None,
            "source_transfer_reversal": None, "status": "succeeded", "transfer_reversal": None,
        }
        bt["source"] = refund["id"]
        charge["amount_refunded"] += amount
        charge["refunded"] = charge["amount_refunded"] == charge["amount_captured"]
        self._credit(pending, created, cur, -amount)
        return [refund, bt]

    def _refunds(self, p: _Payment, charge: dict, pi_id: str, pending: dict) -> list[dict]:
        rng = self.rng
        out: list[dict] = []
        created0 = charge["created"]
        req = p.request
        if req is not None:
            if req["status"] == "PROCESSED":
                out += self._refund(charge, pi_id, req["amount"], req["processed_at"], req["reason"],
                                    {"payops_request_id": str(req["id"])}, req["stripe_refund_id"], pending)
            return out
        if p.dispute:
            return out
        u = rng.random()
        unit = 1 if p.currency == "jpy" else 100
        if p.booking == "cancelled" and u < 0.6:
            amount = p.amount
        elif p.booking == "no_show" and u < 0.4:
            amount = p.amount if rng.random() < 0.5 else p.amount // 2 // unit * unit
        elif u < 0.006:
            amount = max(unit, p.amount * rng.choice((10, 20, 25, 50)) // 100 // unit * unit)
        else:
            return out
        room = self.end - created0
        if room < 120:
            return out
        created = created0 + rng.randint(60, max(61, min(room - 1, 10 * DAY)))
        reason = rng.choices(("requested_by_customer", "duplicate", None), (0.8, 0.05, 0.15))[0]
        return self._refund(charge, pi_id, amount, created, reason, {}, None, pending)

    def _dispute(self, p: _Payment, charge: dict, pi_id: str, pending: dict) -> list[dict]:
        rng = self.rng
        cur, amount, status = p.currency, p.amount, p.dispute
        room = self.end - charge["created"]
        frac = {"needs_response": (0.85, 0.98), "under_review": (0.5, 0.8),
                "won": (0.05, 0.4), "lost": (0.05, 0.4)}[status]
        created = charge["created"] + int(room * rng.uniform(*frac))
        reason = _weighted(rng, _DISPUTE_REASONS)()
        dfee = _DISPUTE_FEE[cur]
        bts = [self._bt(None, "adjustment", "dispute", -amount, dfee, cur, created, created,
                        f"Chargeback withdrawal for {charge['id']}", "Dispute fee")]
        if status == "won":
            closed = created + int((self.end - created) * rng.uniform(0.5, 0.95))
            bts.append(self._bt(None, "adjustment", "dispute_reversal", amount, 0, cur, closed, closed,
                                f"Chargeback won for {charge['id']}", None))
        dp_id = self.ident("dp_1Q")
        for bt in bts:
            bt["source"] = dp_id
            self._credit(pending, bt["created"], cur, bt["net"])
        submitted = status != "needs_response"
        dispute = {
            "id": dp_id, "object": "dispute", "amount": amount, "balance_transactions": bts,
            "charge": charge["id"], "created": created, "currency": cur, "enhanced_eligibility_types": [],
            "evidence": {
                "access_activity_log": None, "billing_address": None, "cancellation_policy": None,
                "cancellation_policy_disclosure": None, "cancellation_rebuttal": None,
                "customer_communication": None, "customer_email_address": charge["billing_details"]["email"],
                "customer_name": charge["billing_details"]["name"], "customer_purchase_ip": None,
                "customer_signature": None, "duplicate_charge_documentation": None,
                "duplicate_charge_explanation": None, "duplicate_charge_id": None,
                "product_description": charge["description"], "receipt": None, "refund_policy": None,
                "refund_policy_disclosure": None, "refund_refusal_explanation": None,
                "service_date": datetime.fromtimestamp(p.session, UTC).date().isoformat(),
                "service_documentation": None, "shipping_address": None, "shipping_carrier": None,
                "shipping_date": None, "shipping_documentation": None, "shipping_tracking_number": None,
                "uncategorized_file": None,
                "uncategorized_text": "Session log attached: student joined and the session ran its full length."
                if submitted else None,
            },
            "evidence_details": {"due_by": _midnight(created) + 8 * DAY - 1, "has_evidence": submitted,
                                 "past_due": False, "submission_count": 1 if submitted else 0},
            "is_charge_refundable": False, "livemode": False, "metadata": {},
            "network_reason_code": _NETWORK_REASON[reason], "payment_intent": pi_id,
            "payment_method_details": {"card": {"brand": charge["payment_method_details"]["card"]["brand"],
                                                "case_type": "chargeback",
                                                "network_reason_code": _NETWORK_REASON[reason]},
                                       "type": "card"},
            "reason": reason, "status": status,
        }
        charge["disputed"] = True
        return [dispute, *bts]

    def payout_objects(self, pending: dict) -> list[dict]:
        """One automatic payout per day and currency of the funds that became available."""
        out: list[dict] = []
        carry: dict[str, int] = {}
        days = sorted({d for d, _ in pending})
        for day in days:
            for cur in sorted(_PRICES):
                if (day, cur) not in pending and not carry.get(cur):
                    continue
                balance = carry.get(cur, 0) + pending.get((day, cur), 0)
                created = day + 2 * HOUR
                if balance <= 0 or not (self.start <= created < self.end):
                    carry[cur] = balance
                    continue
                carry[cur] = 0
                po_id = self.ident("po_1Q")
                arrival = day + DAY
                bt = self._bt(po_id, "payout", "payout", -balance, 0, cur, created, created,
                              "STRIPE PAYOUT", None)
                status = "paid" if arrival <= self.end else "in_transit"
                payout = {
                    "id": po_id, "object": "payout", "amount": balance, "application_fee": None,
                    "application_fee_amount": None, "arrival_date": arrival, "automatic": True,
                    "balance_transaction": bt["id"], "created": created, "currency": cur,
                    "description": "STRIPE PAYOUT", "destination": f"ba_1Q{cur.upper()}TutorlyBank0000001",
                    "failure_balance_transaction": None, "failure_code": None, "failure_message": None,
                    "livemode": False, "metadata": {}, "method": "standard", "original_payout": None,
                    "reconciliation_status": "completed" if status == "paid" else "in_progress",
                    "reversed_by": None, "source_type": "card", "statement_descriptor": None,
                    "status": status, "trace_id": {"status": "supported" if status == "paid" else "pending",
                                                   "value": self.digits(15)
                                                   if status == "paid" else None},
                    "type": "bank_account",
                }
                out += [payout, bt]
                if created >= self.end - DAY:
                    out.append({
                        "id": self.ident("evt_1Q"), "object": "event", "api_version": API_VERSION,
                        "created": created, "data": {"object": payout}, "livemode": False,
                        "pending_webhooks": 0, "request": {"id": None, "idempotency_key": None},
                        "type": "payout.created",
                    })
        return out


# --------------------------------------------------------------------------------------
# writing


_BOOKING_SCHEMA = ("booking_id", "payment_intent", "customer", "tutor_id", "session_start", "status", "updated_at")
_REQUEST_COLUMNS = (
    "id", "payment_intent", "charge", "customer", "amount", "currency", "reason", "note", "status",
    "requested_by", "requested_at", "first_approver", "first_approved_at", "decided_by", "decided_at",
    "decision_note", "second_approver", "stripe_refund_id", "processed_at", "failure_message",
    "attempts", "updated_at",
)
_REQUEST_TS = {"requested_at", "first_approved_at", "decided_at", "processed_at", "updated_at"}


def _insert_bookings(con: duckdb.DuckDBPyConnection, rows: list[tuple]) -> None:
    if not rows:
        return
    cols = list(zip(*rows, strict=False))
    data = pa.Table.from_arrays(
        [pa.array(cols[0], pa.string()), pa.array(cols[1], pa.string()), pa.array(cols[2], pa.string()),
         pa.array(cols[3], pa.string()), _ts(list(cols[4])), pa.array(cols[5], pa.string()),
         _ts(list(cols[6]))],
        names=list(_BOOKING_SCHEMA),
    )
    con.register("_demo_bookings", data)
    try:
        con.execute("INSERT INTO bookings BY NAME SELECT * FROM _demo_bookings")
    finally:
        con.unregister("_demo_bookings")


def _insert_requests(con: duckdb.DuckDBPyConnection, gen: _Gen) -> None:
    reqs = gen.requests
    if not reqs:
        return
    arrays = []
    for col in _REQUEST_COLUMNS:
        values = [r[col] for r in reqs]
        if col in _REQUEST_TS:
            arrays.append(_ts(values))
        elif col in ("id", "amount"):
            arrays.append(pa.array(values, pa.int64()))
        elif col == "attempts":
            arrays.append(pa.array(values, pa.int32()))
        else:
            arrays.append(pa.array(values, pa.string()))
    con.register("_demo_requests", pa.Table.from_arrays(arrays, names=list(_REQUEST_COLUMNS)))
    try:
        con.execute("INSERT INTO refund_requests BY NAME SELECT * FROM _demo_requests")
    finally:
        con.unregister("_demo_requests")


def _insert_audit(con: duckdb.DuckDBPyConnection, gen: _Gen) -> None:
    """The requests' audit trail, in time order, hash-chained exactly as :func:`payops.audit.record` does.

    Rows are computed with :func:`payops.audit.row_hash` and inserted in one statement:
    calling ``record()`` per row costs two queries each, too slow for a million payments.
    """
    entries = sorted(gen.audit, key=lambda e: (e[0], e[1]))
    if not entries:
        return
    by_id = {r["id"]: r for r in gen.requests}
    ids = sorted(v for (v,) in con.execute(
        "SELECT nextval('audit_log_ids') FROM range(?)", [len(entries)]).fetchall())
    prev = con.execute("SELECT hash FROM audit_log ORDER BY id DESC LIMIT 1").fetchone()
    prev_hash = prev[0] if prev and prev[0] else GENESIS
    rows = {k: [] for k in ("id", "at", "actor", "action", "entity", "entity_id", "before", "after",
                            "note", "prev_hash", "hash")}
    for new_id, (at, rid, actor, action, before, after, note) in zip(ids, entries, strict=False):
        req = by_id[rid]
        when = datetime.fromtimestamp(at, UTC)
        if action == "create":
            b = None
            a = {k: v for k, v in req.items() if k in ("id", "payment_intent", "charge", "customer", "amount",
                                                      "currency", "reason", "note", "requested_by")}
            a["status"] = "PENDING"
        else:
            b = {"status": before}
            a = {"status": after}
            if action in ("approve", "reject"):
                a["by"] = actor
            if action == "processed":
                a["stripe_refund_id"] = req["stripe_refund_id"]
            if action == "fail":
                a["failure_message"] = req["failure_message"]
        bj, aj = _canon(b), _canon(a)
        full_action = f"refund_request.{action}"
        h = row_hash(prev_hash, new_id, when, actor, full_action, "refund_request", str(rid), bj, aj, note)
        for k, v in (("id", new_id), ("at", at), ("actor", actor), ("action", full_action),
                     ("entity", "refund_request"), ("entity_id", str(rid)), ("before", bj), ("after", aj),
                     ("note", note), ("prev_hash", prev_hash), ("hash", h)):
            rows[k].append(v)
        prev_hash = h
    arrays = [pa.array(rows["id"], pa.int64()), _ts(rows["at"])]
    arrays += [pa.array(rows[k], pa.string()) for k in list(rows)[2:]]
    con.register("_demo_audit", pa.Table.from_arrays(arrays, names=list(rows)))
    try:
        con.execute("INSERT INTO audit_log BY NAME SELECT * FROM _demo_audit")
    finally:
        con.unregister("_demo_audit")


class _Writer(threading.Thread):
    """Ingests chunk N on its own while the main thread generates chunk N+1.

    DuckDB releases the GIL while it works, so the two overlap. The connection is used by
    this thread only until it finishes.
    """

    def __init__(self, con: duckdb.DuckDBPyConnection, moment: datetime, bar) -> None:
        super().__init__(name="payops-demo-writer", daemon=True)
        self.con, self.moment, self.bar = con, moment, bar
        self.queue: queue.Queue = queue.Queue(maxsize=2)
        self.error: BaseException | None = None
        self.busy = 0.0  # seconds spent ingesting
        self.waited = 0.0  # seconds the producer waited for a free slot

    def run(self) -> None:
        while True:
            item = self.queue.get()
            if item is None:
                return
            if self.error is not None:
                continue  # drain, so the producer never blocks
            objects, bookings, n = item
            clock = time.perf_counter()
            try:
                with transaction(self.con):
                    ingest_into(self.con, objects, version=self.moment, synced_at=self.moment)
                    _insert_bookings(self.con, bookings)
                self.bar.update(n)
            except BaseException as exc:  # reported by the main thread
                self.error = exc
            self.busy += time.perf_counter() - clock

    def put(self, objects: list[dict], bookings: list[tuple], n: int) -> None:
        if self.error is not None:
            raise self.error
        clock = time.perf_counter()
        self.queue.put((objects, bookings, n))
        self.waited += time.perf_counter() - clock


def _remove(path: Path) -> None:
    for p in (path, Path(f"{path}.wal")):
        if p.exists():
            p.unlink()


def build_demo(
    db: str | Path | None = None,
    *,
    seed: int = 42,
    days: int = 90,
    customers: int = 400,
    as_of: date | None = None,
    replace: bool = False,
    progress: bool = True,
) -> DemoSummary:
    """Build a deterministic demo marketplace (a tutoring platform) in the database.

    Students (Stripe customers) book tutoring sessions of 30 to 90 minutes priced 25.00 to
    120.00 (3,000 to 12,000 yen); each customer books about 0.08 sessions a day, mostly
    on weekday afternoons and evenings (UTC), so the defaults (400 customers over 90 days)
    give about 2,900 payments, and the volume scales with ``customers * days``:
    ``customers=140_000`` gives about 1,000,000 payments over 90 days (under 3 minutes on
    two cores). The data includes about 4.4% declined charges (real decline codes; half
    retried successfully), refunds on about 4% of payments, disputes on 0.3%, daily payouts,
    3% of payments in EUR, GBP and JPY, a booking per payment intent, refund requests in
    every status and priority with their audit trail, and the events of the last day.

    Every object goes through :func:`payops.ingest.ingest_into`. The same ``seed`` and
    ``as_of`` always give byte-identical tables; nothing depends on the wall clock except
    the default ``as_of``.

    Args:
        db: the database file; default the ``PAYOPS_DB`` setting.
        seed: the random seed.
        days: how many days of history before ``as_of`` (12:00 UTC).
        customers: how many customers (students).
        as_of: the day the demo is "now" at 12:00 UTC; default today (UTC).
        replace: delete an existing database file first.
        progress: show a progress bar.

    Returns:
        A :class:`DemoSummary` with the path, row counts per table and the time taken.

    Raises:
        InvalidInput: bad sizes, or the database already has data and ``replace`` is false.
    """
    if days < 1 or customers < 1:
        raise InvalidInput(f"days and customers must be at least 1 (got days={days}, customers={customers})")
    started = time.perf_counter()
    as_of = as_of or datetime.now(UTC).date()
    path = database_path(db)
    if replace:
        _remove(path)
    gen = _Gen(seed, days, customers, as_of)

    gc_was_enabled = gc.isenabled()
    # Millions of small dicts: the cyclic GC would rescan them all, again and again, for nothing.
    gc.disable()
    try:
        with connect(path) as con:
            (has,) = con.execute("SELECT count(*) FROM charges").fetchone()
            if has:
                raise InvalidInput(f"database {path} already has data ({has:,} charges); use --replace")
            # One checkpoint at the end instead of one per commit (each rewrites the indexes).
            con.execute(f"SET checkpoint_threshold = '{CHECKPOINT_THRESHOLD}'")
            timings: dict[str, float] = {}
            counts = _build(con, gen, progress, timings)
    finally:
        if gc_was_enabled:
            gc.enable()
    return DemoSummary(path=path, seed=seed, as_of=as_of, counts=counts,
                       elapsed=time.perf_counter() - started, timings=timings)


def _build(con: duckdb.DuckDBPyConnection, gen: _Gen, progress: bool, timings: dict) -> dict[str, int]:
    from tqdm.auto import tqdm

    moment = datetime.fromtimestamp(gen.end, UTC)
    clock = time.perf_counter()
    gen.plan()
    n = len(gen.payments)
    ids = sorted(v for (v,) in con.execute(
        "SELECT nextval('refund_request_ids') FROM range(?)", [len(gen.request_plans)]).fetchall())
    gen.build_requests(ids)
    timings["plan"] = time.perf_counter() - clock

    bar = tqdm(total=n, unit=" payments", desc="demo", disable=not progress, unit_scale=True)
    writer = _Writer(con, moment, bar)
    writer.start()
    pending: dict = {}
    clock = time.perf_counter()
    try:
        first = gen.customer_objects()
        for lo in range(0, n, CHUNK):
            objs, bookings = gen.payment_objects(lo, min(n, lo + CHUNK), pending)
            if first:
                objs, first = first + objs, []
            writer.put(objs, bookings, min(n, lo + CHUNK) - lo)
        writer.put(first + gen.payout_objects(pending), [], 0)
        timings["generate"] = time.perf_counter() - clock - writer.waited
    finally:
        writer.queue.put(None)
        writer.join()
        if writer.error is not None:
            bar.close()
    if writer.error is not None:
        raise writer.error
    timings["ingest"] = writer.busy
    timings["generate_and_ingest"] = time.perf_counter() - clock
    clock = time.perf_counter()
    with transaction(con):
        _insert_requests(con, gen)
        _insert_audit(con, gen)
    timings["requests"] = time.perf_counter() - clock
    clock = time.perf_counter()
    bar.set_postfix_str("writing the database file")
    con.execute("CHECKPOINT")
    bar.close()
    timings["checkpoint"] = time.perf_counter() - clock
    return {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}

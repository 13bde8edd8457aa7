"""Planning the demo marketplace: who pays what, when, and what becomes of it.

:func:`plan_marketplace` decides, from the seed alone, the customers and tutors, every
payment (time, amount, decline and retry, the session and its booking status), which
payments are disputed, and the refund requests with their whole review history. It builds
no Stripe object: :mod:`payops.demo.stripe_objects` does that from the :class:`Plan`.

Every value comes from one ``random.Random(seed)`` (:class:`Draws`), which the builder
goes on drawing from after the plan, so a seed and ``as_of`` always give the same plan and
the same objects.
"""

from __future__ import annotations

import math
import random
import string
from bisect import bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import NamedTuple, TypeVar

from payops.demo import catalog as c
from payops.demo.catalog import DAY, HOUR
from payops.errors import InvalidInput
from payops.money import exponent

IN_FLIGHT = 15 * 60  # a PROCESSING request of the demo went to Stripe at most this long before its "now"

__all__ = ["AuditEvent", "Customer", "DemoRequest", "Draws", "Payment", "Plan", "demo_end", "midnight",
           "plan_marketplace", "weighted"]

T = TypeVar("T")

_ALPH = string.digits + string.ascii_letters
_BASE62 = bytes(ord(_ALPH[i % 62]) for i in range(256))  # random bytes -> base62 characters


def midnight(ts: int) -> int:
    """00:00 UTC of the day of ``ts`` (epoch seconds)."""
    return ts - ts % DAY


def weighted(rng: random.Random, pairs: Sequence[tuple[T, float]]) -> Callable[[], T]:
    """A function that draws one of the values of ``(value, weight)`` pairs."""
    values = [v for v, _ in pairs]
    weights = [w for _, w in pairs]
    return lambda: rng.choices(values, weights=weights)[0]


def _moment(as_of: date) -> int:
    return int(datetime(as_of.year, as_of.month, as_of.day, 12, tzinfo=UTC).timestamp())


def demo_end(as_of: date | None, now: datetime) -> int:
    """The demo's "now" (epoch seconds): 12:00 UTC of ``as_of``, but never after ``now``.

    Without ``as_of`` it is ``now`` itself (to the minute), so what the demo leaves in flight
    (a refund request PROCESSING, the last sync) is as young as it would be in a live system.

    Raises:
        InvalidInput: ``as_of`` is after the UTC day of ``now``.
    """
    wall = int(now.timestamp()) // 60 * 60
    if as_of is None:
        return wall
    if as_of < date(2000, 1, 1):
        raise InvalidInput(f"--as-of {as_of} is too early (the demo starts in 2000 at the earliest)")
    if as_of > now.astimezone(UTC).date():
        raise InvalidInput(f"--as-of {as_of} is in the future (today is {now.astimezone(UTC).date()} UTC); "
                           "the demo never creates anything after the real clock")
    return min(_moment(as_of), wall)


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


class Draws:
    """The one random stream of a demo, and the Stripe-like ids drawn from it."""

    def __init__(self, seed: int):
        self.rng = random.Random(seed)
        self._ids: dict[int, tuple[str, int]] = {}

    def ident(self, prefix: str, n: int = 22) -> str:
        """``prefix`` and ``n`` base62 characters."""
        # ids are sliced from a block drawn 4,096 ids at a time: one rng call instead of one per id
        buf, pos = self._ids.get(n, ("", 0))
        if pos + n > len(buf):
            buf, pos = self.rng.randbytes(n * 4096).translate(_BASE62).decode("ascii"), 0
        self._ids[n] = (buf, pos + n)
        return prefix + buf[pos:pos + n]

    def digits(self, n: int) -> str:
        """A number of ``n`` digits, as text."""
        return str(self.rng.randrange(10 ** (n - 1), 10**n))


@dataclass
class Customer:
    """A student: a Stripe customer with one card."""

    id: str
    currency: str
    name: str
    email: str
    pm: str
    card: dict
    created: int = 0


@dataclass
class DemoRequest:
    """A refund request as the demo stores it (times in epoch seconds).

    ``payment_intent`` and ``charge`` are filled in when the builder has drawn their ids.
    """

    id: int
    customer: str
    amount: int
    currency: str
    reason: str
    note: str | None
    requested_by: str
    requested_at: int
    status: str = "PENDING"
    payment_intent: str | None = None
    charge: str | None = None
    first_approver: str | None = None
    first_approved_at: int | None = None
    decided_by: str | None = None
    decided_at: int | None = None
    decision_note: str | None = None
    second_approver: str | None = None
    stripe_refund_id: str | None = None
    processed_at: int | None = None
    failure_message: str | None = None
    attempts: int = 0
    updated_at: int = 0


class AuditEvent(NamedTuple):
    """One step of a request's history: ``before``/``after`` are statuses."""

    at: int
    request_id: int
    actor: str
    action: str  # create, approve, reject, process, processed, fail
    before: str | None
    after: str
    note: str | None


@dataclass(slots=True)
class Payment:
    """One payment: when, who, how much, its session, and what happened to it."""

    t: int
    cust: int
    amount: int
    currency: str
    duration: int
    tutor: int
    decline: int  # index into catalog.DECLINES or -1
    retry: bool
    session: int
    booking: str
    request: DemoRequest | None
    dispute: str | None

    @property
    def succeeded(self) -> bool:
        return self.decline < 0 or self.retry


class _RequestPlan(NamedTuple):
    payment: int  # index into Plan.payments
    status: str   # the status the request should reach
    age: float    # seconds before the end
    large: bool


@dataclass
class Plan:
    """The whole marketplace, decided; the builder turns it into Stripe objects.

    Attributes:
        draws: the random stream, where the plan left it.
        start, end: the period (epoch seconds); ``end`` is ``as_of`` at 12:00 UTC, or the real
            clock when that is earlier (:func:`demo_end`).
        tutors: ``(tutor id, rate tier, Connect account id)``.
        audit: every request's history, in the order it was planned.
        large: the LARGE threshold per currency (minor units) the requests were planned with.
    """

    draws: Draws
    as_of: date
    start: int
    end: int
    customers: list[Customer] = field(default_factory=list)
    tutors: list[tuple[str, int, str]] = field(default_factory=list)
    payments: list[Payment] = field(default_factory=list)
    requests: list[DemoRequest] = field(default_factory=list)
    audit: list[AuditEvent] = field(default_factory=list)
    large: dict[str, int] = field(default_factory=dict)


class _Planner:
    def __init__(self, seed: int, days: int, customers: int, as_of: date, large: dict[str, int],
                 end: int | None = None):
        self.draws = Draws(seed)
        self.rng = self.draws.rng
        self.days, self.n_customers, self.as_of, self.large = days, customers, as_of, large
        self.end = _moment(as_of) if end is None else end
        self.start = self.end - days * DAY
        self.plan = Plan(self.draws, as_of, self.start, self.end, large=dict(large))

    def customers(self) -> None:
        rng, ident = self.rng, self.draws.ident
        brand = weighted(rng, c.BRANDS)
        for i in range(self.n_customers):
            u = rng.random()
            cur = "eur" if u < 0.012 else "gbp" if u < 0.022 else "jpy" if u < 0.03 else "usd"
            if i < 4:  # every currency rule is exercised, even in a tiny demo (kwd: three decimals)
                cur = ("eur", "gbp", "jpy", "kwd")[i]
            first, last = rng.choice(c.FIRST_NAMES), rng.choice(c.LAST_NAMES)
            b = brand()
            card = {
                "brand": b,
                "last4": f"{rng.randrange(10000):04d}",
                "exp_month": rng.randint(1, 12),
                "exp_year": self.as_of.year + rng.randint(1, 5),
                "country": rng.choice(c.COUNTRIES[cur]),
                "funding": rng.choices(("credit", "debit", "prepaid"), (0.6, 0.38, 0.02))[0],
                "fingerprint": "".join(rng.choices(_ALPH, k=16)),
            }
            self.plan.customers.append(Customer(
                id=ident("cus_", 14), currency=cur, name=f"{first} {last}",
                email=f"{first.lower()}.{last.lower()}{i}@example.com", pm=ident("pm_1Q"), card=card,
            ))

    def tutors(self) -> list[int]:
        """The tutors; returns each customer's favorite tutor."""
        n_tutors = max(5, self.n_customers // 10)
        self.plan.tutors = [(f"tut_{i + 1:05d}", self.rng.choices((0, 1, 2), (0.3, 0.5, 0.2))[0],
                             self.draws.ident("acct_1Q", 14)) for i in range(n_tutors)]
        return [self.rng.randrange(n_tutors) for _ in range(self.n_customers)]

    def times(self) -> list[int]:
        """Payment times: a Poisson process per hour shaped by weekday and hour of day."""
        rng = self.rng
        lam_hour = self.n_customers * c.SESSIONS_PER_CUSTOMER_DAY / 24
        times: list[int] = []
        for h in range(self.days * 24):
            t0 = self.start + h * HOUR
            dt = datetime.fromtimestamp(t0, UTC)
            k = _poisson(rng, lam_hour * c.DAY_F[dt.weekday()] * c.HOUR_F[dt.hour])
            times.extend(sorted(t0 + rng.randrange(HOUR) for _ in range(k)))
        yesterday = self.end - self.end % DAY - DAY  # 00:00 UTC of the day before as_of
        if not any(yesterday <= t < yesterday + DAY for t in times[-max(1, len(times) // self.days * 3):]):
            times.append(yesterday + 17 * HOUR + rng.randrange(HOUR))
            times.sort()
        return times

    def payers(self, n: int) -> list[int]:
        """Who pays each of ``n`` payments: a few customers pay much more often than most."""
        rng = self.rng
        weights = [rng.lognormvariate(0, 0.8) for _ in range(self.n_customers)]
        cum, acc = [], 0.0
        for w in weights:
            acc += w
            cum.append(acc)
        who = [min(bisect_right(cum, rng.random() * acc), self.n_customers - 1) for _ in range(n)]
        if n >= 6:
            for i in range(min(4, self.n_customers)):  # eur, gbp, jpy and kwd (three decimals) all pay
                if i not in who:
                    who[rng.randrange(n)] = i
        return who

    def payment(self, t: int, cust: int, tutor: int, decline: Callable[[], int]) -> Payment:
        rng = self.rng
        dur = rng.choices(c.DURATIONS, c.DURATION_W)[0]
        currency = self.plan.customers[cust].currency
        amount = c.PRICES[currency][dur][self.plan.tutors[tutor][1]]
        failed = rng.random() < c.FAIL_RATE
        code = decline() if failed else -1
        retry = failed and rng.random() < 0.5
        # the session: 2 hours to 2 weeks ahead, on the hour or half hour, afternoons/evenings
        day0 = midnight(t) + rng.choice((0, 0, 1, 1, 2, 3, 4, 5, 6, 7, 7, 10, 14)) * DAY
        session = day0 + rng.randint(14, 21) * HOUR + rng.choice((0, 1800))
        if session < t + 2 * HOUR:
            session += DAY
        if not (code < 0 or retry):
            status = "cancelled"
        elif session + dur * 60 > self.end:
            status = "cancelled" if rng.random() < 0.03 else "scheduled"
        else:
            u = rng.random()
            status = "cancelled" if u < 0.03 else "no_show" if u < 0.05 else "completed"
        return Payment(t, cust, amount, currency, dur, tutor, code, retry, session, status, None, None)

    def payments(self, favorite: list[int]) -> None:
        rng = self.rng
        times = self.times()
        who = self.payers(len(times))
        decline = weighted(rng, [(i, d[3]) for i, d in enumerate(c.DECLINES)])
        n_tutors = len(self.plan.tutors)
        for t, cust in zip(times, who, strict=True):
            tutor = favorite[cust] if rng.random() < 0.8 else rng.randrange(n_tutors)
            self.plan.payments.append(self.payment(t, cust, tutor, decline))

    def customers_created(self) -> None:
        """A customer signs up shortly before their first payment (or any time, if they never pay)."""
        rng, customers = self.rng, self.plan.customers
        for cust in customers:
            cust.created = max(self.start, self.start + rng.randrange(self.days * DAY))
        firsts: dict[int, int] = {}
        for p in self.plan.payments:
            firsts.setdefault(p.cust, p.t)
        for i, t in firsts.items():
            customers[i].created = max(self.start, t - rng.randrange(1, 3 * DAY))
            if customers[i].created >= t:
                customers[i].created = t - 60

    def disputes(self) -> None:
        rng, payments = self.rng, self.plan.payments
        ok = [i for i, p in enumerate(payments) if p.succeeded and p.t < self.end - DAY]
        n = min(len(ok), max(4, round(0.003 * len(payments))))
        statuses = ["needs_response", "under_review", "won", "lost"]
        rng.shuffle(statuses)
        for k, i in enumerate(rng.sample(ok, n)):
            payments[i].dispute = statuses[k] if k < 4 else rng.choices(statuses, (0.2, 0.3, 0.25, 0.25))[0]

    def _is_large(self, p: Payment) -> bool:
        return p.amount > self.large[p.currency]

    def _pick(self, eligible: list[int], used: set[int], age: float, large: bool) -> int | None:
        """A payment for a guaranteed request: old enough, and LARGE (in USD) or not as asked."""
        for i in eligible[:5000] if large else eligible[:200]:
            p = self.plan.payments[i]
            if i in used or p.t >= self.end - age - 600:
                continue
            if large != self._is_large(p) or (large and p.currency != "usd"):
                continue
            return i
        return None

    def request_plans(self) -> list[_RequestPlan]:
        """Which payments get a refund request, how old it is and what status it reaches."""
        rng, payments = self.rng, self.plan.payments
        eligible = [i for i, p in enumerate(payments) if p.succeeded and p.dispute is None]
        rng.shuffle(eligible)
        n_total = max(len(c.REQUEST_SPECS), round(c.REQUEST_RATE * len(eligible)))
        used: set[int] = set()
        plans: list[_RequestPlan] = []
        for status, lo, hi, large in c.REQUEST_SPECS:
            age = rng.uniform(lo, hi) * DAY
            i = self._pick(eligible, used, age, large)
            if i is not None:
                used.add(i)
                plans.append(_RequestPlan(i, status, age, large))
        for i in eligible:
            if len(plans) >= n_total:
                break
            room = self.end - payments[i].t - 600
            if i in used or room <= 0:
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
            plans.append(_RequestPlan(i, status, age, self._is_large(payments[i])))
        # ids follow requested_at, so the audit trail reads in id order
        plans.sort(key=lambda x: (self.end - x.age, x.payment))
        return plans

    # ---- each request's history -------------------------------------------------
    def _later(self, t: int, frac_lo: float = 0.05, frac_hi: float = 0.5, cap: int = 2 * DAY) -> int:
        gap = self.end - t
        return t + max(1, int(min(gap, cap) * self.rng.uniform(frac_lo, frac_hi)))

    def requests(self, plans: list[_RequestPlan], ids: list[int]) -> None:
        rng = self.rng
        reason_of = weighted(rng, c.REQUEST_REASONS)
        for rid, (i, status, age, large) in zip(ids, plans, strict=True):
            p = self.plan.payments[i]
            cur = p.currency
            unit = 10 ** exponent(cur)  # one whole unit of the currency
            if large or rng.random() < 0.6:
                amount = p.amount
            else:
                amount = max(unit, (p.amount * rng.choice((25, 30, 40, 50, 60)) // 100) // unit * unit)
            if large and amount <= self.large[cur]:
                amount = p.amount
            reason = reason_of()
            requester = rng.choices(c.REQUESTERS, (0.25, 0.2, 0.15, 0.4))[0]
            requested_at = self.end - int(age)
            req = DemoRequest(id=rid, customer=self.plan.customers[p.cust].id, amount=amount, currency=cur,
                              reason=reason, note=rng.choice(c.NOTES[reason]), requested_by=requester,
                              requested_at=requested_at, updated_at=requested_at)
            self.plan.requests.append(req)
            p.request = req
            events = [AuditEvent(requested_at, rid, requester, "create", None, "PENDING", req.note)]
            if status != "PENDING" and self.end - requested_at > 120:
                events += self._decide(req, status, large, policy=p.booking in ("cancelled", "no_show", "scheduled"))
            self.plan.audit += events

    def _decide(self, req: DemoRequest, status: str, large: bool, policy: bool) -> list[AuditEvent]:
        """Take ``req`` from PENDING towards ``status``, as reviewers (or the policy) would; its history."""
        rng, rid = self.rng, req.id
        t1 = self._later(req.requested_at)
        policy = policy and not large
        others = [r for r in c.REVIEWERS if r != req.requested_by]
        if status == "REJECTED":
            who = rng.choice(others)
            note = rng.choice(c.REJECT_NOTES)
            req.status, req.decided_by, req.decided_at, req.decision_note, req.updated_at = \
                "REJECTED", who, t1, note, t1
            return [AuditEvent(t1, rid, who, "reject", "PENDING", "REJECTED", note)]
        first = "policy" if policy else rng.choice(others)
        approval_note = "Auto-approved: session not held (cancelled, no-show or not yet started)." \
            if policy else rng.choice(c.APPROVE_NOTES)
        req.status, req.first_approver, req.first_approved_at = "APPROVED", first, t1
        req.decided_by, req.decided_at, req.decision_note, req.updated_at = first, t1, approval_note, t1
        events: list[AuditEvent] = []
        if large:  # four-eyes: a second, different approver
            second = rng.choice([r for r in others if r != first])
            events.append(AuditEvent(t1, rid, first, "approve", "PENDING", "PENDING", approval_note))
            t1 = self._later(t1, 0.05, 0.3, DAY)
            req.second_approver, req.decided_by, req.decided_at, req.updated_at = second, second, t1, t1
            events.append(AuditEvent(t1, rid, second, "approve", "PENDING", "APPROVED", "Second approval."))
        else:
            events.append(AuditEvent(t1, rid, first, "approve", "PENDING", "APPROVED", approval_note))
        if status in ("PROCESSING", "PROCESSED", "FAILED"):
            events += self._process(req, status, t1)
        return events

    def _process(self, req: DemoRequest, status: str, approved_at: int) -> list[AuditEvent]:
        """Send an APPROVED ``req`` to Stripe; it stays PROCESSING, or ends PROCESSED or FAILED."""
        rng, rid = self.rng, req.id
        t2 = self._later(approved_at, 0.01, 0.2, 6 * HOUR)
        if status == "PROCESSING":
            # in flight, as in a live system: younger than any stuck-processing threshold, so a
            # `payops fix --dry-run` right after the demo finds nothing to repair
            t2 = max(approved_at + 1, min(self.end - 1, max(t2, self.end - IN_FLIGHT)))
        processor = rng.choice(c.REVIEWERS)
        req.status, req.attempts, req.updated_at = "PROCESSING", 1, t2
        events = [AuditEvent(t2, rid, processor, "process", "APPROVED", "PROCESSING", None)]
        if status not in ("PROCESSED", "FAILED"):
            return events
        t3 = self._later(t2, 0.01, 0.1, 120)
        if status == "PROCESSED":
            req.status, req.processed_at, req.updated_at = "PROCESSED", t3, t3
            req.stripe_refund_id = self.draws.ident("re_3Q")
            events.append(AuditEvent(t3, rid, processor, "processed", "PROCESSING", "PROCESSED", None))
        else:
            # the charge id is drawn later, by the builder, which fills it into the request's message
            msg = rng.choice(c.FAIL_MESSAGES).format(charge="{charge}")
            req.status, req.failure_message, req.updated_at = "FAILED", msg, t3
            events.append(AuditEvent(t3, rid, processor, "fail", "PROCESSING", "FAILED", msg))
        return events


def plan_marketplace(seed: int, days: int, customers: int, as_of: date, *, large: dict[str, int],
                     request_ids: Callable[[int], list[int]], end: int | None = None) -> Plan:
    """Decide the whole demo marketplace from ``seed``.

    Args:
        seed: the random seed.
        days: days of history before ``as_of`` (12:00 UTC).
        customers: how many customers (students).
        as_of: the demo's "today".
        large: the LARGE threshold per currency (minor units), so the plan holds LARGE requests.
        request_ids: given how many refund requests the plan holds, returns their ids
            (from the database's sequence), ascending.
        end: the demo's "now" in epoch seconds (see :func:`demo_end`); default 12:00 UTC of ``as_of``.

    Returns:
        The :class:`Plan`, its random stream ready for the builder.
    """
    planner = _Planner(seed, days, customers, as_of, large, end)
    planner.customers()
    favorite = planner.tutors()
    planner.payments(favorite)
    planner.customers_created()
    planner.disputes()
    plans = planner.request_plans()
    planner.requests(plans, request_ids(len(plans)))
    return planner.plan


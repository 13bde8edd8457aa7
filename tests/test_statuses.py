"""payops on every Stripe lifecycle status (issue 15 item 3), end to end against the fake Stripe.

Each test drives the fake through a lifecycle (tests/fake_lifecycle.py), lets payops see it the way
it does in production (the objects and events ingested, as sync and webhooks do), and checks what
payops does. docs/statuses.md names the test behind each status.
"""

from __future__ import annotations

from typing import Any

import pytest
from fake_stripe import FakeStripe, build_account

from payops import refunds as R
from payops.ingest import ingest_objects

pytestmark = pytest.mark.slow


@pytest.fixture
def fake(monkeypatch):
    with FakeStripe(seed=9) as fs:
        monkeypatch.setenv("STRIPE_API_KEY", fs.api_key)
        monkeypatch.setenv("STRIPE_API_BASE", fs.url)
        yield fs


def sync_from(fake: FakeStripe) -> None:
    """What sync and webhooks do: store every object and event, then settle the requests."""
    kinds = ("customer", "payment_intent", "charge", "refund", "balance_transaction", "dispute", "payout")
    ingest_objects([o for k in kinds for o in fake.objects(k)] + fake.events())


def paid(fake: FakeStripe, amount: int = 5000, *, outcome: str = "succeeded", **kw) -> dict:
    """A payment intent confirmed with ``outcome``, stored in payops."""
    cus = fake.add({"id": f"cus_{len(fake.objects('customer')) + 1}", "object": "customer",
                    "created": fake.now(), "email": "ana@example.com", "name": "Ana", "metadata": {}})
    pi = fake.create_payment_intent(amount, kw.pop("currency", "usd"), customer=cus["id"], **kw)
    fake.confirm_payment_intent(pi["id"], outcome)
    sync_from(fake)
    return pi


def approved_request(fake: FakeStripe, amount: int = 2000) -> int:
    pi = paid(fake)
    rid = R.request(pi["id"], reason="requested_by_customer", amount=amount)["id"]
    assert R.approve(rid)[0].ok
    return rid


# ------------------------------------------------------------------ refunds


@pytest.mark.parametrize("final", ["succeeded", "failed"])
def test_pending_refund_stays_processing_until_its_event(fake, final):
    rid = approved_request(fake)
    fake.refund_outcomes = ["pending"]
    [res] = R.process()
    assert res.status == "PROCESSING" and "pending" in res.message, res.message
    req = R.get(rid)
    assert req["status"] == "PROCESSING" and req["stripe_refund_id"]
    sync_from(fake)
    R.sync_refund_failures()
    assert R.get(rid)["status"] == "PROCESSING"  # still pending at Stripe: nothing to settle yet
    if final == "succeeded":
        fake.succeed_refund(req["stripe_refund_id"])
    else:
        fake.fail_refund(req["stripe_refund_id"], "insufficient_funds")
    sync_from(fake)
    [res] = R.sync_refund_failures()
    expected = "PROCESSED" if final == "succeeded" else "FAILED"
    assert res.status == expected and R.get(rid)["status"] == expected, res.message
    assert R.sync_refund_failures() == []  # idempotent
    assert len(fake.objects("refund")) == 1  # never a second refund


def test_requires_action_refund_is_surfaced_to_the_reviewer(fake):
    rid = approved_request(fake)
    fake.refund_outcomes = ["requires_action"]
    [res] = R.process()
    assert res.status == "PROCESSING" and "requires_action" in res.message
    q = R.queue(status=("PROCESSING",))
    row = q[q["id"] == rid].iloc[0]
    assert row["stripe_refund_status"] == "requires_action"
    # the CLI's queue says it too, in the app's words
    from click.testing import CliRunner

    from payops.cli import cli
    from payops.refunds.processing import awaiting_message

    listed = CliRunner().invoke(cli, ["refunds", "list", "--status", "PROCESSING"], catch_exceptions=False).output
    assert awaiting_message(row["stripe_refund_id"], "requires_action") in listed
    # the customer never gives the details: the refund is canceled, the request FAILED (retryable)
    fake.cancel_refund(row["stripe_refund_id"])
    sync_from(fake)
    [res] = R.sync_refund_failures()
    assert res.status == "FAILED" and "canceled" in R.get(rid)["failure_message"]


def test_refund_failing_days_after_success_turns_the_request_failed(fake):
    rid = approved_request(fake)
    [res] = R.process()
    assert res.status == "PROCESSED"
    fake.set_now(fake.now() + 5 * 86400)
    fake.fail_refund(R.get(rid)["stripe_refund_id"], "expired_or_canceled_card")
    sync_from(fake)
    [res] = R.sync_refund_failures()
    assert res.status == "FAILED" and "expired_or_canceled_card" in R.get(rid)["failure_message"]


# ------------------------------------------------------------------ payments that cannot be refunded


@pytest.mark.parametrize("outcome, capture, words", [
    ("processing", "automatic", "still processing"),
    ("requires_action", "automatic", "waiting for the customer"),
    ("succeeded", "manual", "not captured"),
])
def test_unfinished_payment_is_not_refundable_with_a_clear_reason(fake, outcome, capture, words):
    sepa: dict[str, Any] = {"currency": "eur", "payment_method_type": "sepa_debit"} if outcome == "processing" else {}
    pi = paid(fake, outcome=outcome, capture_method=capture, **sepa)
    verdict = R.check(pi["id"])
    assert not verdict.eligible
    assert any(words in reason for reason in verdict.reasons), verdict.reasons


def test_canceled_payment_is_not_refundable(fake):
    pi = paid(fake, capture_method="manual")
    fake.cancel_payment_intent(pi["id"], "requested_by_customer")
    sync_from(fake)
    verdict = R.check(pi["id"])
    assert not verdict.eligible
    assert any("canceled" in reason for reason in verdict.reasons), verdict.reasons


def test_processing_payment_becomes_refundable_when_it_succeeds(fake):
    pi = paid(fake, outcome="processing", currency="eur", payment_method_type="sepa_debit")
    assert not R.check(pi["id"]).eligible
    fake.settle_processing(pi["id"], succeeded=True)
    sync_from(fake)
    assert R.check(pi["id"]).eligible


# ------------------------------------------------------------------ disputes in the money figures


def test_disputes_in_every_status_count_as_the_docs_say(fake):
    """disputed_amount: chargebacks on the day they opened, inquiries never, a won dispute's money
    back on the day it was reinstated; the same in the daily metrics and in a payment's breakdown."""
    from datetime import UTC, datetime

    from payops import metrics, payments

    day0 = fake.now() - 20 * 86400
    amounts = {}
    for i, status in enumerate(("warning_needs_response", "warning_under_review", "warning_closed",
                                "needs_response", "under_review", "won", "lost")):
        pi = fake.create_payment_intent(1000 * (i + 1), "usd", at=day0)
        fake.confirm_payment_intent(pi["id"], "succeeded", at=day0)
        fake.dispute_to(pi["latest_charge"], status, at=day0 + 86400, step=5 * 86400)
        amounts[status] = (pi["latest_charge"], 1000 * (i + 1))
    sync_from(fake)
    chargebacks = sum(a for s, (_, a) in amounts.items() if not s.startswith("warning_"))
    won_charge, won = amounts["won"]

    def day(ts: int):
        return datetime.fromtimestamp(ts, UTC).date()

    df = metrics.compute(day(day0), day(fake.now()), tz="UTC")
    by_day = dict(zip(df["day"], df["disputed_amount"], strict=True))
    assert by_day[day(day0 + 86400)] == chargebacks  # the day they opened
    assert by_day[day(day0 + 11 * 86400)] == -won  # won: the money came back (two steps after opening)
    assert int(df["disputed_amount"].sum()) == chargebacks - won
    for status, (charge, amount) in amounts.items():  # a payment's breakdown (the review app's pane)
        expected = 0 if status.startswith("warning_") or status == "won" else amount
        figures = payments.breakdown(charge)
        assert figures is not None and figures["disputed_amount"] == expected, status


# ------------------------------------------------------------------ payouts


def test_failed_and_canceled_payouts_are_shown_as_such_and_never_cash(fake):
    from payops import payments
    from payops.ui import display as D

    made = {status: fake.make_payout("usd", amount, status=status)
            for status, amount in (("paid", 10_000), ("in_transit", 20_000), ("pending", 30_000),
                                   ("failed", 40_000), ("canceled", 50_000))}
    sync_from(fake)
    df = payments.payouts()
    rows = {r["status"]: r for r in df.to_dict("records")}
    assert set(rows) == set(made)
    assert int(df.loc[df["cash"], "amount"].sum()) == 10_000  # only the paid payout is cash in the bank
    assert [s for s, r in rows.items() if r["returned"]] == ["failed", "canceled"]
    assert rows["failed"]["failure_code"] == "account_closed"
    assert "money back in the Stripe balance" in D.payout_badge("failed")
    assert D.payout_badge("canceled").startswith("🚫 canceled")


@pytest.mark.parametrize("status, refundable", [
    ("warning_needs_response", True), ("warning_under_review", True), ("warning_closed", True),
    ("needs_response", False), ("under_review", False), ("won", True), ("lost", False),
])
def test_a_payment_is_refundable_again_once_its_dispute_is_over(fake, status, refundable):
    """Only a chargeback blocks a refund (until it is won); an inquiry never does, an open one is a note."""
    pi = paid(fake)
    fake.dispute_to(pi["latest_charge"], status, 2000)
    sync_from(fake)
    verdict = R.check(pi["id"])
    assert verdict.eligible is refundable, verdict.reasons
    if not refundable:
        assert any("disputed" in r for r in verdict.reasons)
    assert bool(verdict.notes) is (status in ("warning_needs_response", "warning_under_review")), verdict.notes


@pytest.mark.parametrize("status", ["warning_needs_response", "warning_under_review"])
def test_a_payment_under_inquiry_is_refunded_end_to_end(fake, status):
    """Request -> approve -> process through the fake Stripe (which, like Stripe, allows it), with the
    inquiry shown to the reviewer as a note in the words of `payops refunds check` and the review app."""
    from payops.ui.review_html import _eligibility

    pi = paid(fake)
    fake.dispute_to(pi["latest_charge"], status, 5000)
    sync_from(fake)
    rid = R.request(pi["id"], reason="requested_by_customer", amount=5000)["id"]
    detail = R.request_detail(rid)
    headline, lines = R.eligibility_wording(detail.verdict)
    assert headline == "Eligible: $50.00 still refundable"
    assert lines == [f"note: payment {pi['latest_charge']} has an open inquiry ({status}): the card issuer is "
                     "asking, no money was taken; a refund is allowed and usually settles it"]
    assert "open inquiry" in _eligibility(detail)
    [res] = R.approve(rid)
    assert res.ok, res.message
    [res] = R.process()
    assert res.status == "PROCESSED", res.message
    [refund] = fake.objects("refund")
    assert refund["status"] == "succeeded" and refund["amount"] == 5000
    assert R.get(rid)["stripe_refund_id"] == refund["id"]


# ------------------------------------------------------------------ sync over HTTP


def test_sync_stores_every_lifecycle_status_exactly(monkeypatch):
    """A backfill then an incremental sync of an account with every status, over the fake's HTTP API:
    every object arrives as the server holds it, and a later transition arrives through its event."""
    import orjson

    from payops import query
    from payops.sync import STREAM_OBJECTS, run

    fake = FakeStripe(seed=13)
    now = fake.now()
    build_account(fake, 20, 300, now - 20 * 86400, now - 120, seed=13, emit_events=True, lifecycles=True)
    with fake:
        monkeypatch.setenv("STRIPE_API_KEY", fake.api_key)
        monkeypatch.setenv("STRIPE_API_BASE", fake.url)
        monkeypatch.setenv("PAYOPS_STRIPE_RPS", "1000")
        run(workers=2, progress=False)
        pending = next(r for r in fake.objects("refund") if r["status"] == "pending")
        fake.succeed_refund(pending["id"])
        run(workers=2, progress=False)  # incremental: the events since the backfill
        for stream, otype in STREAM_OBJECTS.items():
            rows = query(f"SELECT id, raw FROM {stream}")
            got = {i: orjson.loads(r) for i, r in zip(rows["id"], rows["raw"], strict=True)}
            assert got == {o["id"]: o for o in fake.objects(otype)}, stream
        statuses = query("SELECT status FROM disputes")["status"]
        assert set(statuses) == {"warning_needs_response", "warning_under_review", "warning_closed",
                                 "needs_response", "under_review", "won", "lost"}
        assert query("SELECT status FROM refunds WHERE id = ?", [pending["id"]])["status"][0] == "succeeded"

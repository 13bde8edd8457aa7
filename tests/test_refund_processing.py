"""Processing refunds through Stripe: the fake Stripe with faults, and localstripe."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import stripe
from click.testing import CliRunner
from servers import localstripe
from test_refunds import audit_rows, seed_payment, write_toml

from payops import refunds as R
from payops.cli import cli
from payops.db import connect, query
from payops.ingest import ingest_objects
from payops.stripe_api import get_client, to_dict

pytestmark = pytest.mark.slow


def approved(fake, amount=2000, n=1, charge_amount=4500) -> int:
    seed_payment(n, amount=charge_amount, fake=fake)
    rid = R.request(f"pi_{n}", reason="requested_by_customer", amount=amount)["id"]
    assert R.approve(rid)[0].ok
    return rid


def refund_posts(fake) -> list[dict]:
    return [r for r in fake.requests if r["method"] == "POST" and r["path"] == "/v1/refunds"]


def test_process_creates_one_refund_with_key_and_metadata(fake):
    rid = approved(fake)
    [res] = R.process()
    assert res.ok and res.status == "PROCESSED", res.message
    [refund] = fake.objects("refund")
    assert (refund["amount"], refund["charge"], refund["metadata"], refund["reason"]) == \
        (2000, "ch_1", {"payops_request_id": str(rid)}, "requested_by_customer")
    assert [r["idempotency_key"] for r in refund_posts(fake)] == [f"payops-refund-{rid}"]
    g = R.get(rid)
    assert (g["status"], g["stripe_refund_id"], g["attempts"]) == ("PROCESSED", refund["id"], 1)
    assert g["processed_at"] is not None
    # the refund row is stored in the same transaction
    stored = query("SELECT id, amount, payops_request_id FROM refunds")
    assert stored.to_dict("records") == [{"id": refund["id"], "amount": 2000, "payops_request_id": rid}]
    assert [a for _, a in audit_rows(rid)][-2:] == ["refund_request.process", "refund_request.processed"]
    # running it again creates nothing
    assert R.process() == []
    assert len(fake.objects("refund")) == 1 and len(refund_posts(fake)) == 1


def test_dry_run_changes_nothing(fake):
    rid = approved(fake)
    out = CliRunner().invoke(cli, ["refunds", "process", "--dry-run"], catch_exceptions=False)
    assert out.exit_code == 0 and f"request {rid}: would refund $20.00 on ch_1" in out.output
    assert fake.requests == [] and R.get(rid)["status"] == "APPROVED"


def test_stripe_error_ends_failed_with_its_message_then_retry(fake):
    rid = approved(fake)
    fake.next_refund_errors = [(400, "charge_already_refunded", "Charge ch_1 has already been refunded.")]
    out = CliRunner().invoke(cli, ["refunds", "process"], catch_exceptions=False)
    assert out.exit_code == 1 and "Charge ch_1 has already been refunded." in out.output
    g = R.get(rid)
    assert (g["status"], g["failure_message"]) == ("FAILED", "Charge ch_1 has already been refunded.")
    assert fake.objects("refund") == []
    # FAILED -> APPROVED -> processed with a fresh key
    assert R.approve(rid, note="Stripe glitch")[0].status == "APPROVED"
    [res] = R.process()
    assert res.ok and R.get(rid)["status"] == "PROCESSED"
    assert [r["idempotency_key"] for r in refund_posts(fake)] == \
        [f"payops-refund-{rid}", f"payops-refund-{rid}-retry1"]
    assert len(fake.objects("refund")) == 1


def test_real_stripe_refusal_amount_too_large(fake):
    rid = approved(fake, amount=2000)
    fake.get("ch_1")["amount_refunded"] = 4000  # refunded elsewhere (the dashboard), not yet synced
    [res] = R.process()
    assert not res.ok and res.status == "FAILED" and "greater than unrefunded amount" in res.message
    assert "greater than unrefunded" in R.get(rid)["failure_message"]


def test_payment_disputed_meanwhile_fails_before_calling_stripe(fake):
    approved(fake)
    with connect() as con:
        con.execute("UPDATE charges SET disputed = true")
    [res] = R.process()
    assert res.status == "FAILED" and "disputed" in res.message
    assert refund_posts(fake) == []


def test_timeout_then_retry_sends_the_same_idempotency_key(fake):
    rid = approved(fake)
    fake.refund_response_delay = 2.0
    api = get_client(timeout=0.5, backoff=0.05)
    [res] = R.process(api=api)
    assert res.ok and res.status == "PROCESSED", res.message
    posts = refund_posts(fake)
    assert len(posts) >= 2 and {p["idempotency_key"] for p in posts} == {f"payops-refund-{rid}"}
    assert len(fake.objects("refund")) == 1
    assert R.get(rid)["stripe_refund_id"] == fake.objects("refund")[0]["id"]


def test_stripe_unreachable_leaves_processing_then_reconcile_finishes(fake):
    rid = approved(fake)
    fake.next_refund_errors = [(500, "api_error", "Something went wrong")] * 3
    api = get_client(max_attempts=2, backoff=0.01)
    [res] = R.process(api=api)
    assert not res.ok and res.status == "PROCESSING" and "reconcile" in res.message
    g = R.get(rid)
    assert (g["status"], g["attempts"]) == ("PROCESSING", 1)
    [res] = R.reconcile(api=get_client(max_attempts=3, backoff=0.01))
    assert res.ok and R.get(rid)["status"] == "PROCESSED"
    assert len(fake.objects("refund")) == 1
    assert {p["idempotency_key"] for p in refund_posts(fake)} == {f"payops-refund-{rid}"}


KILLED = """
import sys
from payops.cli import main
main(["refunds", "process"])
"""


@pytest.mark.parametrize("finish", ["reconcile", "rerun"])
def test_killed_after_stripe_accepted_then_finished_once(fake, tmp_path, db_path, finish):
    rid = approved(fake)
    fake.refund_response_delay = 5.0
    env = {**os.environ, "PAYOPS_DB": str(db_path)}
    proc = subprocess.Popen([sys.executable, "-c", KILLED], env=env, cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while not fake.objects("refund") and time.monotonic() < deadline:
        time.sleep(0.02)
    assert fake.objects("refund"), "Stripe never received the refund"
    os.kill(proc.pid, signal.SIGKILL)  # Stripe has the refund; the database does not
    proc.wait(timeout=10)
    g = R.get(rid)
    assert (g["status"], g["stripe_refund_id"]) == ("PROCESSING", None)
    fake.refund_response_delay = 0.0
    if finish == "reconcile":
        out = CliRunner().invoke(cli, ["refunds", "reconcile"], catch_exceptions=False)
    else:
        write_toml(tmp_path, stuck_processing_hours=0)
        out = CliRunner().invoke(cli, ["refunds", "process"], catch_exceptions=False)
    assert out.exit_code == 0, out.output
    [refund] = fake.objects("refund")
    g = R.get(rid)
    assert (g["status"], g["stripe_refund_id"]) == ("PROCESSED", refund["id"])
    assert len(refund_posts(fake)) == 1  # found by metadata: no second create at all
    assert R.reconcile() == [] and len(fake.objects("refund")) == 1


def test_later_refund_failure_event_marks_request_failed(fake):
    rid = approved(fake)
    R.process()
    [refund] = fake.objects("refund")
    fake.set_now(int(time.time()) + 3600)  # the bank bounces it an hour later
    fake.fail_refund(refund["id"], "expired_or_canceled_card")
    events = fake.events("refund.failed") + fake.events("charge.refund.updated")
    ingest_objects(events)  # what sync / webhooks do
    [res] = R.sync_refund_failures()
    assert res.ok and res.status == "FAILED"
    g = R.get(rid)
    assert g["status"] == "FAILED" and "expired_or_canceled_card" in g["failure_message"]
    assert audit_rows(rid)[-1] == ("sync", "refund_request.fail")
    assert R.sync_refund_failures() == []  # idempotent
    # the failed refund gave the money back: a retry is eligible and makes a new refund
    ingest_objects([fake.get("ch_1")])
    assert R.approve(rid)[0].ok
    [res] = R.process()
    assert res.ok, res.message
    assert len([r for r in fake.objects("refund") if r["status"] == "succeeded"]) == 1


# --------------------------------------------------------------------------- localstripe


def test_process_against_localstripe(tmp_path, monkeypatch):
    # localstripe refuses the `reason` parameter ("Unexpected reason"): payops can be told
    # not to send it ([refunds] send_reason = false); Stripe itself accepts it.
    write_toml(tmp_path, send_reason=False)
    with localstripe() as url:
        monkeypatch.setenv("STRIPE_API_KEY", "sk_test_localstripe")
        monkeypatch.setenv("STRIPE_API_BASE", url)
        client = stripe.StripeClient("sk_test_localstripe", base_addresses={"api": url})
        cus = client.v1.customers.create({"email": "lena@example.com", "name": "Lena"})
        pi = client.v1.payment_intents.create({
            "amount": 4500, "currency": "usd", "customer": cus.id, "payment_method": "pm_card_visa",
            "confirm": True, "payment_method_types": ["card"]})
        pi = to_dict(client.v1.payment_intents.retrieve(pi.id))
        ingest_objects([to_dict(cus), pi])
        rid = R.request(pi["id"], reason="requested_by_customer", amount=1250)["id"]
        assert R.approve(rid)[0].ok
        [res] = R.process()
        assert res.ok, res.message
        charge = R.get(rid)["charge"]
        [refund] = to_dict(client.v1.refunds.list({"charge": charge})).get("data")
        assert refund["amount"] == 1250 and refund["metadata"] == {"payops_request_id": str(rid)}
        assert R.get(rid)["stripe_refund_id"] == refund["id"]
        assert R.process() == []  # nothing approved any more: nothing created
        assert len(client.v1.refunds.list({"charge": charge}).data) == 1
        # reconcile after a crash finds it by metadata instead of creating another
        with connect() as con:
            con.execute("UPDATE refund_requests SET status = 'PROCESSING', stripe_refund_id = NULL")
        [res] = R.reconcile()
        assert res.ok and R.get(rid)["stripe_refund_id"] == refund["id"]
        assert len(client.v1.refunds.list({"charge": charge}).data) == 1


def test_refund_failure_delivered_by_webhook_marks_request_failed(fake):
    """The same path end to end: a signed webhook carrying refund.failed fails its request."""
    import orjson
    import stripe as stripe_sdk

    from payops.webhooks import handle

    rid = approved(fake)
    R.process()
    [refund] = fake.objects("refund")
    fake.set_now(int(time.time()) + 3600)
    fake.fail_refund(refund["id"], "lost_or_stolen_card")
    [ev] = fake.events("refund.failed")
    payload = orjson.dumps(ev)
    secret = "whsec_payops_test"
    header = stripe_sdk.WebhookSignature.generate_signature_header(payload.decode(), secret)
    handle(payload, header, secret)
    g = R.get(rid)
    assert g["status"] == "FAILED" and "lost_or_stolen_card" in g["failure_message"]
    assert audit_rows(rid)[-1] == ("sync", "refund_request.fail")


def test_refundable_follows_payops_own_refund_before_any_sync(fake):
    """A $5.00 refund of a $20.00 payment: $15.00 left at once, and a $16.00 request refused."""
    rid = approved(fake, amount=500, n=7, charge_amount=2000)
    [res] = R.process()
    assert res.ok, res.message
    # no sync happened: the stored charge was brought up to date when the refund was recorded
    charge = query("SELECT amount_refunded, refunded FROM charges WHERE id = 'ch_7'").to_dict("records")
    assert charge == [{"amount_refunded": 500, "refunded": False}]
    runner = CliRunner()
    out = runner.invoke(cli, ["refunds", "check", "pi_7"], catch_exceptions=False)
    assert out.exit_code == 0 and "refundable $15.00" in out.output, out.output
    out = runner.invoke(cli, ["refunds", "request", "pi_7", "--amount", "16", "--reason", "duplicate"])
    assert out.exit_code != 0 and "more than the refundable $15.00" in out.output, out.output
    assert R.get(rid)["status"] == "PROCESSED"
    # even if the charge row is stale again (a sync that raced the refund), the refunds payops holds count
    with connect() as con:
        con.execute("UPDATE charges SET amount_refunded = 0, refunded = false WHERE id = 'ch_7'")
    assert R.check("pi_7").payment["refundable"] == 1500
    assert not R.check("pi_7", 1600).eligible

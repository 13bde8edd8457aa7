"""The test servers themselves: tests/fake_stripe.py (SDK + urllib) and localstripe."""

from __future__ import annotations

import json
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import stripe

sys.path.insert(0, str(Path(__file__).parent))

from fake_lifecycle import IllegalTransition  # noqa: E402
from fake_stripe import FakeStripe, build_account, parse_form, stripe_fee  # noqa: E402
from servers import localstripe  # noqa: E402

NOW = 1_790_000_000
DAY = 86400


def client(url: str, retries: int = 0) -> Any:  # Any: the tests send raw params dicts, not the SDK's TypedDicts
    return stripe.StripeClient("sk_test_x", base_addresses={"api": url},
                               max_network_retries=retries)


def http(url: str, path: str, *, method: str = "GET", data: bytes | None = None,
         key: str | None = "sk_test_x", headers: dict | None = None) -> tuple[int, dict]:
    h = dict(headers or {})
    if key:
        h["Authorization"] = f"Bearer {key}"
    req = urllib.request.Request(url + path, data=data, method=method, headers=h)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


@pytest.fixture(scope="module")
def account():
    """A 10k-object account, read-only for the tests that use it."""
    fake = FakeStripe(now=NOW, seed=7)
    build_account(fake, 300, 3000, NOW - 60 * DAY, NOW - 60, seed=7, emit_events=True, lifecycles=True)
    with fake:
        yield fake


@pytest.fixture
def fake():
    f = FakeStripe(now=NOW, seed=1)
    build_account(f, 20, 60, NOW - 10 * DAY, NOW - 60, seed=1)
    with f:
        yield f


def refundable_charge(fake: FakeStripe) -> dict:
    return next(c for c in fake.objects("charge")
                if c["status"] == "succeeded" and not c["refunded"] and not c["disputed"]
                and c["amount_refunded"] == 0)


# ------------------------------------------------------------------ wire format basics


def test_parse_form_nested_keys():
    pairs = [("metadata[payops_request_id]", "5"), ("created[gte]", "10"),
             ("types[]", "a"), ("types[]", "b"), ("expand[0]", "x"), ("expand[1]", "y"),
             ("limit", "3")]
    assert parse_form(pairs) == {"metadata": {"payops_request_id": "5"},
                                 "created": {"gte": "10"}, "types": ["a", "b"],
                                 "expand": ["x", "y"], "limit": "3"}


def test_fee_rounding_is_integer_half_even():
    assert stripe_fee(1000) == 59
    assert stripe_fee(5000) == 175
    assert stripe_fee(500) == 44  # 44.5 -> 44 (half-even)


def test_auth_and_unknown(fake):
    status, body = http(fake.url, "/v1/charges", key=None)
    assert status == 401 and body["error"]["type"] == "authentication_error"
    status, body = http(fake.url, "/v1/charges", key="pk_test_nope")
    assert status == 401
    status, body = http(fake.url, "/v1/charges/ch_missing")
    assert status == 404 and body["error"]["code"] == "resource_missing"
    with pytest.raises(stripe.AuthenticationError):
        stripe.StripeClient("rk_bad", base_addresses={"api": fake.url}).v1.charges.list()
    with pytest.raises(stripe.InvalidRequestError) as e:
        client(fake.url).v1.charges.list(params={"bogus": 1})
    assert e.value.code == "parameter_unknown"


def test_build_account_is_consistent(account):
    charges = {c["id"]: c for c in account.objects("charge")}
    txns = {t["id"]: t for t in account.objects("balance_transaction")}
    pis = {p["id"]: p for p in account.objects("payment_intent")}
    base = [p for p in pis.values() if not p["metadata"]["booking_id"].startswith("bk_l")]
    assert len(base) == 3000  # the lifecycle extras come on top of the requested payments
    assert {c["status"] for c in charges.values()} == {"succeeded", "failed", "pending"}
    for c in charges.values():
        assert pis[c["payment_intent"]]["latest_charge"] == c["id"] or c["status"] == "failed"
        assert NOW - 60 * DAY <= c["created"] <= NOW - 60
        if c["status"] == "succeeded" and c["captured"]:
            t = txns[c["balance_transaction"]]
            assert t["source"] == c["id"] and t["type"] == "charge"
            assert t["fee"] == stripe_fee(c["amount"]) and t["net"] == c["amount"] - t["fee"]
        elif c["status"] == "failed":
            assert c["balance_transaction"] is None and c["failure_code"]
    for r in account.objects("refund"):
        ch = charges[r["charge"]]
        assert r["created"] >= ch["created"] and r["amount"] <= ch["amount"]
        if r["balance_transaction"]:
            assert txns[r["balance_transaction"]]["amount"] == -r["amount"]
        else:
            assert r["status"] in ("requires_action", "canceled")
    assert account.objects("dispute") and account.objects("payout")
    assert {c["currency"] for c in charges.values()} >= {"usd", "eur"}


def test_build_100k_objects():
    f = FakeStripe(now=NOW)
    build_account(f, 2000, 34000, NOW - 365 * DAY, NOW, seed=3)
    total = sum(len(f.objects(k)) for k in ("customer", "payment_intent", "charge",
                                              "balance_transaction", "refund", "dispute",
                                              "payout"))
    assert total >= 100_000


# ------------------------------------------------------------------ lists


def test_list_pages_newest_first_with_created_window(account):
    lo, hi = NOW - 40 * DAY, NOW - 10 * DAY
    expected = sorted((c for c in account.objects("charge") if lo <= c["created"] < hi),
                      key=lambda c: (c["created"], c["id"]), reverse=True)
    assert len(expected) > 300
    got: list[str] = []
    pages, cursor = 0, None
    while True:
        params = {"limit": 100, "created": {"gte": lo, "lt": hi}}
        if cursor:
            params["starting_after"] = cursor
        page = client(account.url).v1.charges.list(params=params)
        pages += 1
        got.extend(c.id for c in page.data)
        if not page.has_more:
            break
        cursor = page.data[-1].id
    assert got == [c["id"] for c in expected]  # exact order, no dupes, no gaps
    assert pages == (len(expected) + 99) // 100


def test_list_auto_paging_ending_before_and_filters(account):
    sdk = client(account.url)
    all_ids = [p.id for p in sdk.v1.payment_intents.list(params={"limit": 100})
               .auto_paging_iter()]
    assert len(all_ids) == len(set(all_ids)) == len(account.objects("payment_intent"))
    # ending_before: the page just newer than the cursor, still newest first
    page = sdk.v1.payment_intents.list(params={"limit": 5, "ending_before": all_ids[20]})
    assert [p.id for p in page.data] == all_ids[15:20] and page.has_more
    # created=<exact>
    one = account.objects("charge")[0]
    same = sdk.v1.charges.list(params={"created": one["created"], "limit": 100})
    assert one["id"] in [c.id for c in same.data]
    assert all(c.created == one["created"] for c in same.data)
    # filters
    r = account.objects("refund")[0]
    by_charge = sdk.v1.refunds.list(params={"charge": r["charge"]})
    assert [x.id for x in by_charge.data] == [r["id"]]
    by_pi = sdk.v1.charges.list(params={"payment_intent": r["payment_intent"]})
    assert [x.id for x in by_pi.data] == [r["charge"]]
    status, body = http(account.url, "/v1/balance_transactions?type=refund&limit=100")
    assert status == 200 and body["data"] and {t["type"] for t in body["data"]} == {"refund"}
    # expand
    ch = sdk.v1.charges.retrieve(r["charge"], params={"expand": ["balance_transaction",
                                                                 "refunds"]})
    assert ch.balance_transaction.object == "balance_transaction"
    assert ch.refunds.data[0].id == r["id"]


def test_events_types_filter_and_retention(account):
    sdk = client(account.url)
    evs = list(sdk.v1.events.list(params={"types": ["charge.refunded", "refund.created"],
                                          "limit": 100}).auto_paging_iter())
    assert evs and {e.type for e in evs} == {"charge.refunded", "refund.created"}
    status, body = http(account.url, "/v1/events?types[]=charge.failed&limit=3")
    assert status == 200 and [e["type"] for e in body["data"]] == ["charge.failed"] * 3
    status, body = http(account.url, "/v1/events?type=payment_intent.*&limit=100")
    assert {e["type"] for e in body["data"]} <= {
        "payment_intent.created", "payment_intent.succeeded", "payment_intent.payment_failed",
        "payment_intent.requires_action", "payment_intent.processing", "payment_intent.canceled",
        "payment_intent.amount_capturable_updated"}
    # retention: nothing older than 30 days is listed, though older objects exist
    all_events, cursor = [], ""
    while True:
        status, body = http(account.url, f"/v1/events?limit=100{cursor}")
        all_events += body["data"]
        if not body["has_more"]:
            break
        cursor = "&starting_after=" + body["data"][-1]["id"]
    assert all_events and min(e["created"] for e in all_events) >= NOW - 30 * DAY
    assert len(all_events) == sum(1 for e in account.events() if e["created"] >= NOW - 30 * DAY)
    e0 = sdk.v1.events.retrieve(all_events[0]["id"]).to_dict()
    assert e0["api_version"] == stripe.api_version and e0["object"] == "event"
    assert e0["data"]["object"]["id"]


def test_event_retention_follows_server_clock():
    with FakeStripe(now=NOW) as f:
        f.add_event("charge.succeeded", {"id": "ch_old", "object": "charge"},
                    created=NOW - 31 * DAY)
        f.add_event("charge.succeeded", {"id": "ch_new", "object": "charge"},
                    created=NOW - 29 * DAY)
        ids = [e.data.object.id for e in client(f.url).v1.events.list().data]
        assert ids == ["ch_new"]
        f.set_now(NOW - 2 * DAY)
        ids = [e.data.object.id for e in client(f.url).v1.events.list().data]
        assert ids == ["ch_new", "ch_old"]


# ------------------------------------------------------------------ faults


def test_429_injection_raises_and_never_mutates(fake):
    ch = refundable_charge(fake)
    n_refunds = len(fake.objects("refund"))
    fake.fail_429_ratio = 1.0
    sdk = client(fake.url)
    with pytest.raises(stripe.RateLimitError):
        sdk.v1.charges.list()
    with pytest.raises(stripe.RateLimitError):
        sdk.v1.refunds.create(params={"charge": ch["id"]}, options={"idempotency_key": "k429"})
    assert len(fake.objects("refund")) == n_refunds and ch["amount_refunded"] == 0
    assert [r["status"] for r in fake.requests[-2:]] == [429, 429]
    fake.fail_429_ratio = 0.0
    # the 429 did not store a result under the idempotency key
    r = sdk.v1.refunds.create(params={"charge": ch["id"]}, options={"idempotency_key": "k429"})
    assert r.status == "succeeded" and ch["refunded"]


def test_rate_limit_token_bucket(fake):
    fake.rate_limit_rps = 5
    statuses = [http(fake.url, "/v1/customers?limit=1")[0] for _ in range(12)]
    assert statuses.count(429) >= 5 and statuses[:5] == [200] * 5
    time.sleep(0.45)  # refills ~2 tokens
    assert http(fake.url, "/v1/customers?limit=1")[0] == 200
    fake.rate_limit_rps = None
    assert all(http(fake.url, "/v1/customers?limit=1")[0] == 200 for _ in range(10))


def test_latency_and_request_log(fake):
    fake.latency = 0.05
    client(fake.url).v1.customers.list(params={"limit": 2, "created": {"gte": NOW - DAY}})
    entry = fake.requests[-1]
    assert entry["method"] == "GET" and entry["path"] == "/v1/customers"
    assert entry["query"] == {"limit": "2", "created": {"gte": str(NOW - DAY)}}
    assert entry["status"] == 200


# ------------------------------------------------------------------ refunds


def test_idempotent_refund_creation(fake):
    ch = refundable_charge(fake)
    sdk = client(fake.url)
    params = {"charge": ch["id"], "amount": 100, "reason": "requested_by_customer",
              "metadata": {"payops_request_id": "5"}}
    r1 = sdk.v1.refunds.create(params=params, options={"idempotency_key": "payops-refund-5"})
    r2 = sdk.v1.refunds.create(params=params, options={"idempotency_key": "payops-refund-5"})
    assert r1.id == r2.id and r1.metadata.to_dict() == {"payops_request_id": "5"}
    assert [r["id"] for r in fake.objects("refund") if r["charge"] == ch["id"]] == [r1.id]
    assert ch["amount_refunded"] == 100 and not ch["refunded"]
    with pytest.raises(stripe.IdempotencyError):
        sdk.v1.refunds.create(params={**params, "amount": 200},
                              options={"idempotency_key": "payops-refund-5"})
    # by payment_intent, default amount = remaining
    r3 = sdk.v1.refunds.create(params={"payment_intent": ch["payment_intent"]})
    assert r3.charge == ch["id"] and r3.amount == ch["amount"] - 100 and ch["refunded"]
    txn = fake.get(r3.balance_transaction)
    assert txn["type"] == "refund" and txn["amount"] == -r3.amount and txn["source"] == r3.id
    last3 = fake.events()[-3:]
    assert [e["type"] for e in last3] == ["refund.created", "charge.refunded",
                                          "charge.refund.updated"]
    assert [e["data"]["object"]["id"] for e in last3] == [r3.id, ch["id"], r3.id]
    assert last3[1]["data"]["object"]["refunded"] is True
    with pytest.raises(stripe.InvalidRequestError) as e:
        sdk.v1.refunds.create(params={"charge": ch["id"]})
    assert e.value.code == "charge_already_refunded"


def test_refund_refusals(fake):
    ch = refundable_charge(fake)
    sdk = client(fake.url)
    with pytest.raises(stripe.InvalidRequestError) as e:
        sdk.v1.refunds.create(params={"charge": ch["id"], "amount": ch["amount"] + 1})
    assert e.value.code == "amount_too_large" and e.value.http_status == 400
    assert "is greater than unrefunded amount on charge" in e.value.user_message
    assert e.value.param == "amount"
    failed = next(c for c in fake.objects("charge") if c["status"] == "failed")
    with pytest.raises(stripe.InvalidRequestError) as e:
        sdk.v1.refunds.create(params={"charge": failed["id"]})
    assert e.value.code == "charge_not_refundable"
    fake.make_dispute(ch["id"])
    with pytest.raises(stripe.InvalidRequestError) as e:
        sdk.v1.refunds.create(params={"charge": ch["id"], "amount": 1})
    assert e.value.code == "charge_disputed"
    assert fake.events("charge.dispute.created")[-1]["data"]["object"]["charge"] == ch["id"]
    assert ch["disputed"] and ch["amount_refunded"] == 0
    # queued injected errors come first, are not stored under the idempotency key
    ch2 = refundable_charge(fake)
    fake.next_refund_errors.append((400, "charge_already_refunded",
                                    f"Charge {ch2['id']} has already been refunded."))
    with pytest.raises(stripe.InvalidRequestError) as e:
        sdk.v1.refunds.create(params={"charge": ch2["id"]}, options={"idempotency_key": "q"})
    assert e.value.code == "charge_already_refunded" and ch2["amount_refunded"] == 0
    assert sdk.v1.refunds.create(params={"charge": ch2["id"]},
                                 options={"idempotency_key": "q"}).status == "succeeded"


def test_fail_refund_emits_events(fake):
    ch = refundable_charge(fake)
    r = client(fake.url).v1.refunds.create(params={"charge": ch["id"]})
    assert ch["refunded"]
    fake.fail_refund(r.id)
    got = client(fake.url).v1.refunds.retrieve(r.id)
    assert got.status == "failed" and got.failure_reason == "lost_or_stolen_card"
    assert ch["amount_refunded"] == 0 and not ch["refunded"]
    evs = client(fake.url).v1.events.list(params={"types": ["refund.failed",
                                                            "charge.refund.updated"]})
    assert [e.type for e in evs.data][:2] == ["charge.refund.updated", "refund.failed"]
    assert all(e.data.object.status == "failed" for e in evs.data[:2])


def test_refund_response_delay_client_timeout(fake):
    """Stripe accepted the refund but the client timed out: a retry with the same key
    returns the original refund, not a second one."""
    ch = refundable_charge(fake)
    fake.refund_response_delay = 1.0
    body = f"charge={ch['id']}&metadata[payops_request_id]=9".encode()
    headers = {"Idempotency-Key": "payops-refund-9",
               "Content-Type": "application/x-www-form-urlencoded",
               "Authorization": "Bearer sk_test_x"}
    req = urllib.request.Request(fake.url + "/v1/refunds", data=body, headers=headers)
    with pytest.raises(OSError):  # socket timeout
        urllib.request.urlopen(req, timeout=0.2)
    fake.refund_response_delay = 0.0
    assert ch["refunded"]
    status, again = http(fake.url, "/v1/refunds", method="POST", data=body,
                         headers={"Idempotency-Key": "payops-refund-9"})
    assert status == 200 and again["metadata"] == {"payops_request_id": "9"}
    assert [r["id"] for r in fake.objects("refund") if r["charge"] == ch["id"]] == [again["id"]]


def test_concurrent_same_key_creates_one_refund(fake):
    ch = refundable_charge(fake)
    fake.latency = 0.02
    ids: list[str] = []

    def go():
        r = client(fake.url).v1.refunds.create(params={"charge": ch["id"]},
                                                options={"idempotency_key": "race"})
        ids.append(r.id)

    threads = [threading.Thread(target=go) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(ids) == 8 and len(set(ids)) == 1
    assert len([r for r in fake.objects("refund") if r["charge"] == ch["id"]]) == 1


# ------------------------------------------------------------------ localstripe


@pytest.mark.slow
def test_localstripe_customer_roundtrip_and_quirks():
    with localstripe() as url:
        sdk = client(url)
        assert stripe.api_version == "2026-10-28.endive"
        cus = sdk.v1.customers.create(params={"email": "ada@example.com", "name": "Ada"})
        cus2 = sdk.v1.customers.create(params={"email": "bob@example.com"})
        listed = sdk.v1.customers.list(params={"limit": 10})
        # oldest first (insertion order), unlike Stripe
        assert [c.id for c in listed.data] == [cus.id, cus2.id]
        assert sdk.v1.customers.retrieve(cus.id).email == "ada@example.com"
        # created filters refused on customers (400) ...
        with pytest.raises(stripe.InvalidRequestError) as e:
            sdk.v1.customers.list(params={"created": {"gte": 1}})
        assert e.value.http_status == 400 and e.value.user_message == "Unexpected created"
        # ... and types[] on events
        with pytest.raises(stripe.InvalidRequestError) as e:
            sdk.v1.events.list(params={"types": ["customer.created"]})
        assert e.value.user_message == "Unexpected types"
        evs = sdk.v1.events.list(params={"created": {"gte": 1}, "type": "customer.created"})
        assert [e.data.object.id for e in evs.data] == [cus.id, cus2.id]
        # charges: created[gte] -> 500 "Not implemented"
        with pytest.raises(stripe.APIError) as api_err:
            sdk.v1.charges.list(params={"created": {"gte": 1_600_000_000}})
        assert api_err.value.http_status == 500
        # refunds ignore idempotency keys and refuse `reason`
        pi = sdk.v1.payment_intents.create(params={
            "amount": 1000, "currency": "usd", "customer": cus.id,
            "payment_method": "pm_card_visa", "confirm": True,
            "payment_method_types": ["card"]})
        assert pi.status == "succeeded"
        with pytest.raises(stripe.InvalidRequestError) as e:
            sdk.v1.refunds.create(params={"payment_intent": pi.id, "reason": "duplicate"})
        assert e.value.user_message == "Unexpected reason"
        r1 = sdk.v1.refunds.create(params={"payment_intent": pi.id, "amount": 100},
                                   options={"idempotency_key": "k"})
        r2 = sdk.v1.refunds.create(params={"payment_intent": pi.id, "amount": 100},
                                   options={"idempotency_key": "k"})
        assert r1.id != r2.id
        types = {e.type for e in sdk.v1.events.list(params={"limit": 100}).data}
        assert not any(t.startswith(("charge.", "refund.")) for t in types)


# ------------------------------------------------------------------ lifecycles (issue 15)


def event_types(fake: FakeStripe, since: int = 0) -> list[str]:
    """Types of the events emitted at or after ``since``, in the order they were emitted."""
    return [e["type"] for e in fake.objects("event") if e["created"] >= since]


def test_payment_intent_lifecycles_and_their_events():
    fake = FakeStripe(now=NOW, seed=2)
    pi = fake.create_payment_intent(5000, "usd", customer="cus_x")
    assert pi["status"] == "requires_payment_method" and event_types(fake) == ["payment_intent.created"]
    fake.attach_payment_method(pi["id"])
    assert pi["status"] == "requires_confirmation" and len(fake.events()) == 1  # Stripe sends nothing here
    fake.confirm_payment_intent(pi["id"], "requires_action")
    assert pi["status"] == "requires_action" and pi["next_action"]["type"] == "redirect_to_url"
    fake.complete_action(pi["id"], "succeeded")
    charge = fake.must(pi["latest_charge"])
    assert pi["status"] == "succeeded" and charge["status"] == "succeeded" and charge["balance_transaction"]
    assert event_types(fake)[-3:] == ["payment_intent.requires_action", "charge.succeeded",
                                      "payment_intent.succeeded"]

    sepa = fake.create_payment_intent(3000, "eur", payment_method_type="sepa_debit")
    fake.confirm_payment_intent(sepa["id"], "processing")
    assert sepa["status"] == "processing" and fake.must(sepa["latest_charge"])["status"] == "pending"
    assert fake.must(sepa["latest_charge"])["paid"] is False
    fake.settle_processing(sepa["id"], succeeded=False, at=NOW + 3 * DAY)
    assert sepa["status"] == "requires_payment_method" and fake.must(sepa["latest_charge"])["status"] == "failed"
    assert event_types(fake, NOW + 3 * DAY) == ["charge.failed", "payment_intent.payment_failed"]

    held = fake.create_payment_intent(4000, "usd", capture_method="manual")
    fake.confirm_payment_intent(held["id"], "succeeded")
    assert held["status"] == "requires_capture" and held["amount_capturable"] == 4000
    assert fake.must(held["latest_charge"])["captured"] is False
    fake.capture_payment_intent(held["id"])
    assert held["status"] == "succeeded" and fake.must(held["latest_charge"])["amount_captured"] == 4000

    released = fake.create_payment_intent(4000, "usd", capture_method="manual")
    fake.confirm_payment_intent(released["id"], "succeeded")
    fake.cancel_payment_intent(released["id"], "requested_by_customer")
    assert released["status"] == "canceled" and fake.must(released["latest_charge"])["refunded"]
    assert event_types(fake)[-2:] == ["charge.refunded", "payment_intent.canceled"]

    declined = fake.create_payment_intent(1000, "usd")
    fake.confirm_payment_intent(declined["id"], "failed", decline="card_declined")
    err = declined["last_payment_error"]
    assert declined["status"] == "requires_payment_method"
    assert err["decline_code"] == "generic_decline" and err["payment_method"]["object"] == "payment_method"


def test_illegal_transitions_are_refused():
    fake = FakeStripe(now=NOW, seed=2)
    pi = fake.create_payment_intent(5000, "usd")
    fake.confirm_payment_intent(pi["id"], "succeeded")
    with pytest.raises(IllegalTransition):
        fake.cancel_payment_intent(pi["id"])  # a succeeded payment is refunded, not canceled
    with pytest.raises(IllegalTransition):
        fake.capture_payment_intent(pi["id"])
    payout = fake.make_payout("usd", 1000, status="paid")
    with pytest.raises(IllegalTransition):
        fake.update_payout(payout["id"], "canceled")


def test_refund_lifecycles_over_http():
    with FakeStripe(now=NOW, seed=2) as fake:
        charges = []
        for _ in range(4):
            pi = fake.create_payment_intent(5000, "usd")
            fake.confirm_payment_intent(pi["id"], "succeeded")
            charges.append(fake.must(pi["latest_charge"]))
        sdk = client(fake.url)
        fake.refund_outcomes = ["pending", "requires_action", "requires_action"]
        pending = sdk.v1.refunds.create(params={"charge": charges[0]["id"], "amount": 1000})
        action = sdk.v1.refunds.create(params={"charge": charges[1]["id"]})
        cancel = sdk.v1.refunds.create(params={"charge": charges[2]["id"]})
        done = sdk.v1.refunds.create(params={"charge": charges[3]["id"]})
        assert (pending.status, action.status, cancel.status, done.status) == (
            "pending", "requires_action", "requires_action", "succeeded")
        assert pending.pending_reason == "processing"
        assert fake.must(action.id)["next_action"]["type"] == "display_details"
        assert charges[0]["amount_refunded"] == 1000  # counted while pending, as Stripe does
        fake.set_now(NOW + DAY)
        fake.succeed_refund(pending.id)
        fake.succeed_refund(action.id)
        fake.cancel_refund(cancel.id)
        assert charges[2]["amount_refunded"] == 0
        fake.set_now(NOW + 5 * DAY)  # a refund that succeeded fails days later
        fake.fail_refund(done.id, "expired_or_canceled_card")
        got = {r.id: r.status for r in sdk.v1.refunds.list(params={"limit": 10}).data}
        assert got == {pending.id: "succeeded", action.id: "succeeded", cancel.id: "canceled", done.id: "failed"}
        assert event_types(fake, NOW + DAY) == ["refund.updated", "charge.refund.updated"] * 3 + [
            "refund.failed", "charge.refund.updated"]
        failure = fake.must(fake.must(done.id)["failure_balance_transaction"])
        assert failure["type"] == "refund_failure" and failure["amount"] == 5000
        with pytest.raises(IllegalTransition):
            fake.cancel_refund(pending.id)  # only requires_action refunds can be canceled


@pytest.mark.parametrize("status, withdrawn, reinstated, last_event", [
    ("warning_needs_response", 0, 0, "charge.dispute.created"),
    ("warning_under_review", 0, 0, "charge.dispute.updated"),
    ("warning_closed", 0, 0, "charge.dispute.closed"),
    ("needs_response", 1, 0, "charge.dispute.funds_withdrawn"),
    ("under_review", 1, 0, "charge.dispute.updated"),
    ("won", 1, 1, "charge.dispute.closed"),
    ("lost", 1, 0, "charge.dispute.closed"),
])
def test_dispute_lifecycles_move_money_and_emit_events(status, withdrawn, reinstated, last_event):
    fake = FakeStripe(now=NOW + 60 * DAY, seed=2)
    pi = fake.create_payment_intent(5000, "usd")
    fake.confirm_payment_intent(pi["id"], "succeeded", at=NOW)
    dispute = fake.dispute_to(pi["latest_charge"], status, at=NOW + DAY)
    txns = dispute["balance_transactions"]
    assert dispute["status"] == status and len(txns) == withdrawn + reinstated
    assert sum(t["amount"] for t in txns) == -5000 * withdrawn + 5000 * reinstated
    if reinstated:
        assert txns[1]["reporting_category"] == "dispute_reversal" and txns[1]["net"] == 5000 + 1500
    assert event_types(fake)[-1] == last_event
    assert dispute["is_charge_refundable"] is status.startswith("warning_")
    assert fake.must(pi["latest_charge"])["disputed"]


def test_payout_lifecycles():
    fake = FakeStripe(now=NOW, seed=2)
    paid = fake.make_payout("usd", 10_000, status="paid")
    failed = fake.make_payout("usd", 20_000, status="failed")
    canceled = fake.make_payout("usd", 30_000, status="canceled")
    pending = fake.make_payout("usd", 40_000)
    assert [p["status"] for p in (paid, failed, canceled, pending)] == ["paid", "failed", "canceled", "pending"]
    assert failed["failure_code"] == "account_closed"
    for payout, kind in ((failed, "payout_failure"), (canceled, "payout_cancel")):
        back = fake.must(payout["failure_balance_transaction"])
        assert back["type"] == kind and back["amount"] == payout["amount"]  # the money is back in the balance
    assert paid["reconciliation_status"] == "completed" and pending["reconciliation_status"] == "in_progress"
    types = event_types(fake)
    assert types.count("payout.created") == 4 and {"payout.paid", "payout.failed", "payout.canceled"} <= set(types)

"""The sync against localstripe (PyPI): refused filters fall back; webhooks it sends apply."""

from __future__ import annotations

import threading
import time
import urllib.parse
import urllib.request

import orjson
import pytest
import stripe
from servers import free_port, localstripe

from payops import query
from payops.sync import STREAM_OBJECTS, run
from payops.webhooks import make_server

pytestmark = pytest.mark.slow

KEY = "sk_test_localstripe1234"
SECRET = "whsec_localstripe_test_secret"


@pytest.fixture(scope="module")
def ls():
    with localstripe() as url:
        yield url


@pytest.fixture
def account(ls, monkeypatch):
    """Customers, confirmed payment intents with metadata, partial and full refunds."""
    monkeypatch.setenv("STRIPE_API_KEY", KEY)
    monkeypatch.setenv("STRIPE_API_BASE", ls)
    monkeypatch.setenv("PAYOPS_STRIPE_RPS", "200")
    client = stripe.StripeClient(KEY, base_addresses={"api": ls})
    urllib.request.urlopen(urllib.request.Request(ls + "/_config/data", method="DELETE"))
    made = {"customers": [], "payment_intents": [], "refunds": []}
    for i in range(2):
        cus = client.v1.customers.create({"email": f"s{i}@example.com", "name": f"Student {i}"})
        made["customers"].append(cus.id)
        for j, amount in enumerate((2500, 4000)):
            pi = client.v1.payment_intents.create({
                "amount": amount, "currency": "usd", "customer": cus.id,
                "payment_method": "pm_card_visa", "confirm": True,
                "payment_method_types": ["card"],
                "metadata": {"booking_id": f"bk_{i}{j}", "tutor_id": "tut_1"}})
            made["payment_intents"].append((pi.id, amount))
    pi_partial, pi_full = made["payment_intents"][0], made["payment_intents"][1]
    made["refunds"].append(client.v1.refunds.create({"payment_intent": pi_partial[0], "amount": 1000}).id)
    made["refunds"].append(client.v1.refunds.create({"payment_intent": pi_full[0]}).id)
    return client, made


def test_sync_against_localstripe_falls_back_and_is_exact(account):
    client, made = account
    summary = run(workers=4, progress=False)
    text = "\n".join(summary.fallbacks)
    for stream in ("customers", "charges", "refunds", "payment_intents"):
        assert f"{stream}: the server refused the created filter" in text
    assert "disputes: skipped" in text

    assert sorted(query("SELECT id FROM customers")["id"]) == sorted(made["customers"])
    pis = query("SELECT id, amount, currency, status, booking_id, latest_charge FROM payment_intents")
    assert sorted(zip(pis["id"], pis["amount"], strict=False)) == sorted(made["payment_intents"])
    assert set(pis["status"]) == {"succeeded"} and set(pis["currency"]) == {"usd"}
    assert sorted(pis["booking_id"]) == ["bk_00", "bk_01", "bk_10", "bk_11"]
    charges = query("SELECT id, payment_intent, amount, amount_refunded, refunded FROM charges "
                    "ORDER BY amount, amount_refunded")
    assert len(charges) == 4 and set(charges["id"]) == set(pis["latest_charge"])
    by_pi = {p: (a, r, f) for p, a, r, f in zip(charges["payment_intent"], charges["amount"],
                                                charges["amount_refunded"], charges["refunded"], strict=False)}
    (partial, _), (full, _full_amount) = made["payment_intents"][0], made["payment_intents"][1]
    assert by_pi[partial] == (2500, 1000, False)
    assert by_pi[full] == (4000, 4000, True)
    refunds = query("SELECT id, amount FROM refunds ORDER BY amount")
    assert sorted(refunds["id"]) == sorted(made["refunds"]) and list(refunds["amount"]) == [1000, 4000]
    txns = query("SELECT source, amount, fee FROM balance_transactions")
    assert sorted(txns["amount"]) == sorted([-4000, -1000, 2500, 4000, 2500, 4000])
    assert set(txns["fee"]) == {0}  # localstripe charges no fees

    def snapshot():
        return {s: sorted(query(f"SELECT id, raw FROM {s}").itertuples(index=False))
                for s in STREAM_OBJECTS}

    before = snapshot()
    again = run(workers=4, progress=False)
    assert again.new == 0 and again.updated == 0
    assert any("types[]" in f for f in again.fallbacks)  # events read unfiltered
    assert snapshot() == before


def test_webhook_sent_by_localstripe_is_verified_and_applied(ls, monkeypatch):
    monkeypatch.setenv("STRIPE_API_KEY", KEY)
    lines: list[str] = []
    port = free_port()
    server = make_server("127.0.0.1", port, SECRET, log=lines.append)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        hook = f"http://127.0.0.1:{port}/"
        for name, secret in (("good", SECRET), ("forged", "whsec_someone_else")):
            data = urllib.parse.urlencode({"url": hook, "secret": secret,
                                           "events[]": "customer.created"}).encode()
            urllib.request.urlopen(urllib.request.Request(f"{ls}/_config/webhooks/{name}", data=data))
        client = stripe.StripeClient(KEY, base_addresses={"api": ls})
        cus = client.v1.customers.create({"email": "hook@example.com", "name": "Hook"})
        deadline = time.monotonic() + 15
        while len(lines) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert sorted(line[:3] for line in lines) == ["200", "400"], lines
        rows = query("SELECT e.type, c.email FROM events e JOIN customers c ON c.id = e.object_id")
        assert list(rows["type"]) == ["customer.created"] and list(rows["email"]) == ["hook@example.com"]
        assert query("SELECT id FROM customers")["id"].tolist() == [cus.id]

        # a tampered body with the real signature header is refused and writes nothing
        raw = query("SELECT raw FROM events")["raw"][0]
        body = orjson.dumps({**orjson.loads(raw), "id": "evt_tampered"})
        ts = int(time.time())
        sig = stripe.WebhookSignature._compute_signature(f"{ts}.{raw}", SECRET)
        req = urllib.request.Request(hook, data=body, headers={"Stripe-Signature": f"t={ts},v1={sig}"})
        with pytest.raises(urllib.error.HTTPError) as exc:
            urllib.request.urlopen(req)
        assert exc.value.code == 400
        assert query("SELECT count(*) AS n FROM events")["n"][0] == 1
    finally:
        for name in ("good", "forged"):  # stop localstripe sending to a closed port
            data = urllib.parse.urlencode({"url": "http://127.0.0.1:9/", "secret": "x",
                                           "events[]": "none.none"}).encode()
            urllib.request.urlopen(urllib.request.Request(f"{ls}/_config/webhooks/{name}", data=data))
        server.shutdown()
        server.server_close()

"""payops.stripe_api against the project's fake Stripe server (real HTTP on 127.0.0.1)."""

from __future__ import annotations

import time

import pytest
from fake_stripe import FakeStripe, build_account

from payops.errors import StripeAuthError, StripeError
from payops.stripe_api import TokenBucket, get_client, window_params

pytestmark = pytest.mark.slow  # starts a fake Stripe HTTP server

KEY = "sk_test_payopsunit0abcd"


@pytest.fixture
def fake(monkeypatch):
    now = int(time.time())
    f = FakeStripe(seed=5)
    build_account(f, 10, 250, now - 20 * 86400, now - 60, seed=5)
    with f:
        monkeypatch.setenv("STRIPE_API_KEY", KEY)
        monkeypatch.setenv("STRIPE_API_BASE", f.url)
        monkeypatch.setenv("PAYOPS_STRIPE_RPS", "500")
        yield f


def test_rejected_key_is_one_line_without_the_key(fake, monkeypatch):
    monkeypatch.setenv("STRIPE_API_KEY", "pk_wrong_kind_of_key_9876")
    with pytest.raises(StripeAuthError) as exc:
        get_client().check_key()
    assert str(exc.value) == "Stripe rejected the API key ending in ...9876"
    assert "pk_wrong" not in str(exc.value)


def test_list_window_returns_exactly_the_window(fake):
    api = get_client()
    charges = fake.objects("charge")
    mid = sorted(c["created"] for c in charges)[len(charges) // 2]
    got = list(api.list_window("charge", mid, None))
    assert sorted(o["id"] for o in got) == sorted(c["id"] for c in charges if c["created"] >= mid)
    assert all(type(o) is dict for o in got)
    assert window_params(1, 5) == {"created": {"gte": 1, "lt": 5}} and window_params(None, None) == {}


def test_429s_are_retried_never_success(fake):
    fake.fail_429_ratio = 0.4
    api = get_client(backoff=0.01, max_attempts=30)
    for otype in ("payment_intent", "charge", "balance_transaction", "customer"):
        got = list(api.list_all(otype, {"limit": 50}))
        assert sorted(o["id"] for o in got) == sorted(o["id"] for o in fake.objects(otype))
    assert api.stats["rate_limited"] > 0 and api.stats["retries"] >= api.stats["rate_limited"]


def test_refused_filter_is_detected(fake):
    api = get_client()
    verdict, page, _ = api.probe_list("charge", {"created": {"gte": 1}})
    assert verdict == "ok" and page["data"]
    verdict, page, message = api.probe_list("charge", {"bogus_filter": 1})
    assert verdict == "refused" and page is None and "bogus_filter" in message


def test_stripe_error_carries_code(fake):
    api = get_client()
    with pytest.raises(StripeError) as exc:
        api.retrieve("charge", "ch_missing")
    assert exc.value.code == "resource_missing"


def test_refund_helpers_keep_their_contract(fake):
    api = get_client()
    charge = next(c for c in fake.objects("charge") if c["status"] == "succeeded"
                  and not c["refunded"] and not c["disputed"])
    r1 = api.create_refund(charge=charge["id"], amount=100, idempotency_key="k-1")
    r2 = api.create_refund(charge=charge["id"], amount=100, idempotency_key="k-1")
    assert r1["id"] == r2["id"] and r1["amount"] == 100
    assert [r["id"] for r in api.list_refunds(charge=charge["id"])] == [r1["id"]]


def test_token_bucket_refuses_a_nonpositive_rate():
    from payops.errors import ConfigError
    with pytest.raises(ConfigError):
        TokenBucket(0)
    assert TokenBucket(5).acquire() == 0.0

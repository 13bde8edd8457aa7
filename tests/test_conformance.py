"""Shapes checked against Stripe's OpenAPI spec (issue 15): the fake Stripe and the demo.

The spec subset is vendored in tests/openapi/stripe_components.json (its ``x-source`` names the
stripe/openapi commit and the API version); tests/openapi/validate.py is the checker.
"""

from __future__ import annotations

import copy
import json
import re
import sys
import urllib.request
from collections import Counter
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from fake_stripe import FakeStripe, build_account  # noqa: E402
from openapi import trim  # noqa: E402
from openapi.validate import (  # noqa: E402
    OBJECT_SCHEMAS,
    SchemaViolation,
    api_version,
    assert_conforms,
    components,
    schemas,
    violations,
)

NOW = 1_790_000_000
DAY = 86400
RESOURCES = ("customers", "payment_intents", "charges", "refunds", "balance_transactions", "disputes",
             "payouts", "transfers", "application_fees", "events")


def get(fake: FakeStripe, path: str) -> dict:
    req = urllib.request.Request(fake.url + path, headers={"Authorization": "Bearer sk_test_x"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def summary(found) -> Counter:
    return Counter((re.sub(r"\[\d+\]", "[]", v.path), v.code) for v in found)


@pytest.fixture(scope="module")
def account():
    fake = FakeStripe(now=NOW, seed=3)
    build_account(fake, 40, 400, NOW - 40 * DAY, NOW - 60, seed=3, emit_events=True, lifecycles=True)
    with fake:
        yield fake


# ------------------------------------------------------------------ the vendored spec


def test_vendored_spec_names_its_source_and_holds_every_object():
    src = components()["x-source"]
    assert src["repository"] == "stripe/openapi" and re.fullmatch(r"[0-9a-f]{40}", src["commit"])
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}\.\w+", api_version())
    for name in OBJECT_SCHEMAS.values():  # the objects payops keeps and the Connect ones of issue 12
        assert "properties" in schemas()[name] and not schemas()[name].get("x-trimmed"), name
    # what issue 15 is about is in there: the dispute's evidence, refund statuses as plain strings
    assert "evidence" in schemas()["dispute"]["required"]
    assert "livemode" not in schemas()["refund"]["properties"]
    assert "livemode" not in schemas()["balance_transaction"]["properties"]


def test_vendored_file_is_in_trimmed_form():
    """Trimming the vendored schemas again changes nothing: only the kept keys are in the file."""
    for name, schema in schemas().items():
        if schema.get("x-trimmed"):
            assert schema == {"type": "object", "x-trimmed": True}
        else:
            assert trim.trim(schema) == schema, name


def test_trim_keeps_shape_and_drops_prose():
    spec = {"components": {"schemas": {
        "thing": {"title": "Thing", "description": "d", "required": ["id"], "type": "object", "properties": {
            "id": {"maxLength": 5000, "type": "string", "description": "x"},
            "kind": {"type": "string", "enum": [f"v{i}" for i in range(80)]},
            "other": {"nullable": True, "anyOf": [{"maxLength": 5000, "type": "string"},
                                                 {"$ref": "#/components/schemas/other"}],
                      "x-expansionResources": {}}}, "x-expandableFields": ["other"]}}}}
    got = trim.trim_spec(spec, ("thing",))
    assert got == {
        "other": {"type": "object", "x-trimmed": True},
        "thing": {"type": "object", "required": ["id"], "properties": {
            "id": {"type": "string"}, "kind": {"type": "string"},
            "other": {"nullable": True, "anyOf": [{"type": "string"}, {"$ref": "#/components/schemas/other"}]}}},
    }


# ------------------------------------------------------------------ the check can fail


def conforming_charge() -> dict:
    fake = FakeStripe(now=NOW, seed=1)
    pi = fake.create_payment_intent(2000, "usd", customer="cus_1")
    fake.confirm_payment_intent(pi["id"], "succeeded")
    return copy.deepcopy(fake.must(pi["latest_charge"]))


def test_check_fails_when_a_required_field_is_removed():
    charge = conforming_charge()
    assert_conforms(charge)
    del charge["amount"]
    with pytest.raises(SchemaViolation) as e:
        assert_conforms(charge)
    assert [(v.path, v.code) for v in e.value.violations] == [("$.amount", "missing_required")]
    assert "$.amount: missing_required" in str(e.value)


@pytest.mark.parametrize("mutate, path, code", [
    (lambda o: o.update(livemode=False), "$.livemode", "unknown_field"),            # invented on a refund
    (lambda o: o.update(status=None, amount="10"), "$.amount", "wrong_type"),
    (lambda o: o.update(reason="because"), "$.reason", "not_in_enum"),
    (lambda o: o.update(charge=12), "$.charge", "no_match"),                          # neither id nor object
    (lambda o: o.update(currency=None), "$.currency", "null_not_allowed"),
])
def test_check_names_each_kind_of_violation(mutate, path, code):
    fake = FakeStripe(now=NOW, seed=1)
    pi = fake.create_payment_intent(2000, "usd")
    fake.confirm_payment_intent(pi["id"], "succeeded")
    refund = copy.deepcopy(fake.make_refund(fake.must(pi["latest_charge"]), 500, reason="duplicate"))
    assert violations(refund) == []
    mutate(refund)
    assert (path, code) in {(v.path, v.code) for v in violations(refund)}


def test_expandable_fields_take_an_id_or_the_object():
    charge = conforming_charge()
    pi_obj = {"id": charge["payment_intent"], "object": "payment_intent", "created": NOW, "livemode": False,
              "status": "succeeded"}
    assert violations({**charge, "payment_intent": pi_obj}) == []
    broken = {**charge, "payment_intent": {**pi_obj, "status": "done"}}
    assert ("$.payment_intent.status", "not_in_enum") in {(v.path, v.code) for v in violations(broken)}


def test_last_payment_error_payment_method_is_an_object_and_decline_code_never_null():
    fake = FakeStripe(now=NOW, seed=1)
    pi = fake.create_payment_intent(2000, "usd")
    fake.confirm_payment_intent(pi["id"], "failed", decline="expired_card")
    err = fake.must(pi["id"])["last_payment_error"]
    assert isinstance(err["payment_method"], dict) and "decline_code" not in err
    assert_conforms(fake.must(pi["id"]))
    as_id = copy.deepcopy(fake.must(pi["id"]))
    as_id["last_payment_error"].update(payment_method="pm_123", decline_code=None)
    found = {(v.path, v.code) for v in violations(as_id)}
    assert ("$.last_payment_error.payment_method", "wrong_type") in found
    assert ("$.last_payment_error.decline_code", "null_not_allowed") in found


# ------------------------------------------------------------------ the fake


def test_every_object_the_fake_serves_conforms(account):
    """Every object of every list endpoint, as served over HTTP, and each event's data.object."""
    found: list = []
    seen: Counter = Counter()
    for resource in RESOURCES:
        cursor = ""
        while True:
            page = get(account, f"/v1/{resource}?limit=100{cursor}")
            found.extend(violations(page))
            seen[resource] += len(page["data"])
            if not page["has_more"]:
                break
            cursor = f"&starting_after={page['data'][-1]['id']}"
    assert not found, summary(found)
    assert all(seen[r] for r in RESOURCES), seen


def test_expanded_objects_conform(account):
    charge = next(c for c in account.objects("charge") if c["amount_refunded"])
    got = get(account, f"/v1/charges/{charge['id']}?expand[]=balance_transaction&expand[]=refunds"
                       "&expand[]=customer&expand[]=payment_intent")
    assert isinstance(got["balance_transaction"], dict) and got["refunds"]["data"]
    assert_conforms(got)
    pi = get(account, f"/v1/payment_intents/{charge['payment_intent']}?expand[]=latest_charge")
    assert isinstance(pi["latest_charge"], dict)
    assert_conforms(pi)


def test_the_fake_serves_every_lifecycle_status(account):
    def statuses(kind: str) -> set[str]:
        return {o["status"] for o in account.objects(kind)}

    assert statuses("payment_intent") == {"requires_payment_method", "requires_confirmation", "requires_action",
                                          "processing", "requires_capture", "canceled", "succeeded"}
    assert statuses("charge") == {"pending", "succeeded", "failed"}
    assert statuses("refund") == {"pending", "requires_action", "succeeded", "failed", "canceled"}
    assert statuses("dispute") == {"warning_needs_response", "warning_under_review", "warning_closed",
                                   "needs_response", "under_review", "won", "lost"}
    assert statuses("payout") >= {"pending", "in_transit", "paid", "failed", "canceled"}


# ------------------------------------------------------------------ the demo


DEMO_TABLES = ("customers", "payment_intents", "charges", "refunds", "balance_transactions", "disputes",
               "payouts", "transfers", "application_fees", "events")


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory):
    from datetime import date

    from payops.demo import build_demo

    path = tmp_path_factory.mktemp("demo") / "payops.duckdb"
    build_demo(path, seed=11, days=30, customers=120, as_of=date(2026, 6, 1), replace=True, progress=False)
    return path


def demo_raws(path, table: str) -> list[dict]:
    import duckdb

    con = duckdb.connect(str(path), read_only=True)
    try:
        return [json.loads(raw) for (raw,) in con.execute(f"SELECT raw FROM {table}").fetchall()]
    finally:
        con.close()


@pytest.mark.parametrize("table", DEMO_TABLES)
def test_every_raw_the_demo_stores_conforms(demo_db, table):
    raws = demo_raws(demo_db, table)
    assert raws, f"the demo stores no {table}"
    found = [v for raw in raws for v in violations(raw)]
    assert not found, summary(found)


def test_demo_declines_carry_the_payment_method_object(demo_db):
    errors = [pi["last_payment_error"] for pi in demo_raws(demo_db, "payment_intents") if pi["last_payment_error"]]
    assert errors and all(e["payment_method"]["object"] == "payment_method" for e in errors)
    assert all(e.get("decline_code") is not None for e in errors if "decline_code" in e)


def test_the_demo_shows_the_lifecycle_statuses_a_marketplace_sees(demo_db):
    def statuses(table: str) -> set[str]:
        return {o["status"] for o in demo_raws(demo_db, table)}

    assert statuses("payment_intents") >= {"requires_payment_method", "requires_action", "processing",
                                           "requires_capture", "canceled", "succeeded"}
    assert statuses("charges") == {"pending", "succeeded", "failed"}
    assert statuses("refunds") >= {"pending", "succeeded"}
    assert statuses("disputes") == {"warning_needs_response", "warning_under_review", "warning_closed",
                                    "needs_response", "under_review", "won", "lost"}
    assert statuses("payouts") >= {"paid", "failed"}


def test_docs_statuses_names_only_tests_that_exist():
    """Every ``file::test`` that docs/statuses.md cites is a test function in that file."""
    doc = (Path(__file__).resolve().parents[1] / "docs" / "statuses.md").read_text(encoding="utf-8")
    cited = set(re.findall(r"`(test_\w+\.py)::(test_\w+)", doc))
    assert len(cited) >= 15
    for file, name in sorted(cited):
        source = (Path(__file__).parent / file).read_text(encoding="utf-8")
        assert re.search(rf"^def {name}\(", source, re.M), f"docs/statuses.md cites {file}::{name}: no such test"
    for status in ("requires_payment_method", "requires_confirmation", "requires_action", "processing",
                   "requires_capture", "canceled", "succeeded", "pending", "failed", "warning_needs_response",
                   "warning_under_review", "warning_closed", "needs_response", "under_review", "won", "lost",
                   "in_transit", "paid"):
        assert f"| `{status}`" in doc, status

"""payops.webhooks: signature checks, idempotent apply, the HTTP endpoint, event files."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request

import orjson
import pytest
import stripe
from click.testing import CliRunner
from servers import free_port

from payops import query
from payops.cli import cli
from payops.errors import InvalidInput, SignatureError
from payops.webhooks import apply_file, handle, load_events, make_server

SECRET = "whsec_test_payops_webhooks"


def event(eid: str, created: int, amount_refunded: int, etype: str = "charge.refunded") -> dict:
    charge = {"id": "ch_1", "object": "charge", "amount": 5000, "amount_captured": 5000,
              "amount_refunded": amount_refunded, "currency": "usd", "status": "succeeded",
              "paid": True, "refunded": amount_refunded >= 5000, "disputed": False,
              "created": 1_700_000_000, "livemode": False, "metadata": {}}
    return {"id": eid, "object": "event", "api_version": "2026-10-28.endive", "created": created,
            "type": etype, "livemode": False, "data": {"object": charge}}


def signed(ev: dict, secret: str = SECRET, ts: int | None = None) -> tuple[bytes, str]:
    payload = orjson.dumps(ev)
    header = stripe.WebhookSignature.generate_signature_header(payload.decode(), secret, ts)
    return payload, header


def counts() -> tuple[int, int]:
    return (query("SELECT count(*) AS n FROM events")["n"][0],
            query("SELECT count(*) AS n FROM charges")["n"][0])


def test_valid_delivery_applies_and_duplicates_are_harmless():
    now = int(time.time())
    payload, header = signed(event("evt_1", now, 1000))
    s = handle(payload, header, SECRET)
    assert s.events_new == 1 and s.tables["charges"]["new"] == 1
    s = handle(payload, header, SECRET)
    assert s.events_new == 0 and s.events_duplicate == 1
    assert counts() == (1, 1)
    assert query("SELECT action FROM audit_log")["action"].tolist() == ["events.apply"]


@pytest.mark.parametrize("case", ["wrong secret", "tampered", "stale", "no header"])
def test_bad_signature_writes_nothing(case):
    now = int(time.time())
    ev = event("evt_2", now, 1000)
    payload, header = signed(ev, "whsec_other" if case == "wrong secret" else SECRET,
                             now - 3600 if case == "stale" else None)
    if case == "tampered":
        payload = payload.replace(b"1000", b"9000")
    if case == "no header":
        header = ""
    with pytest.raises(SignatureError):
        handle(payload, header, SECRET)
    assert counts() == (0, 0)


def test_out_of_order_events_end_in_the_newest_state():
    a, b = event("evt_a", 1_800_000_010, 1000), event("evt_b", 1_800_000_020, 5000)
    for ev in (b, a, b):
        payload, header = signed(ev)
        handle(payload, header, SECRET)
    row = query("SELECT amount_refunded, refunded FROM charges")
    assert row["amount_refunded"][0] == 5000 and row["refunded"][0]


@pytest.mark.parametrize("fmt", ["array", "list", "ndjson"])
def test_load_events_formats(fmt):
    evs = [event("evt_1", 1, 10), event("evt_2", 2, 20)]
    text = {"array": json.dumps(evs), "list": json.dumps({"object": "list", "data": evs}),
            "ndjson": "\n".join(json.dumps(e) for e in evs) + "\n"}[fmt]
    assert [e["id"] for e in load_events(text)] == ["evt_1", "evt_2"]


def test_events_apply_cli_and_bad_files(tmp_path):
    path = tmp_path / "events.ndjson"
    path.write_text("\n".join(json.dumps(e) for e in (event("evt_1", 1_800_000_000, 10),
                                                       event("evt_2", 1_800_000_100, 5000))))
    result = CliRunner().invoke(cli, ["events", "apply", str(path)], catch_exceptions=False)
    assert result.exit_code == 0
    assert result.output.startswith("2 new events, 0 already applied; charges: 1 new")
    result = CliRunner().invoke(cli, ["events", "apply", str(path)], catch_exceptions=False)
    assert result.output.startswith("0 new events, 2 already applied")
    assert query("SELECT amount_refunded FROM charges")["amount_refunded"][0] == 5000

    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"id": "ch_1", "object": "charge"}]))
    with pytest.raises(InvalidInput, match="not a Stripe event"):
        apply_file(bad)
    result = CliRunner().invoke(cli, ["events", "apply", str(bad)])
    assert result.exit_code == 2 and "Traceback" not in result.output


@pytest.mark.slow
def test_http_endpoint_answers_200_then_400():
    port = free_port()
    server = make_server("127.0.0.1", port, SECRET)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        def post(payload: bytes, header: str) -> tuple[int, dict]:
            req = urllib.request.Request(f"http://127.0.0.1:{port}/webhooks", data=payload,
                                         headers={"Stripe-Signature": header})
            try:
                with urllib.request.urlopen(req, timeout=10) as r:
                    return r.status, json.loads(r.read())
            except urllib.error.HTTPError as e:
                return e.code, json.loads(e.read())

        payload, header = signed(event("evt_h", int(time.time()), 700))
        assert post(payload, header) == (200, {"received": True, "id": "evt_h", "duplicate": False})
        assert post(payload, header)[1]["duplicate"] is True
        status, body = post(payload.replace(b"700", b"701"), header)
        assert status == 400 and "signature" in body["error"]
        assert counts() == (1, 1)
    finally:
        server.shutdown()
        server.server_close()


def test_serve_needs_the_secret():
    result = CliRunner().invoke(cli, ["webhooks", "serve", "--port", str(free_port())])
    assert result.exit_code == 1 and "STRIPE_WEBHOOK_SECRET is not set" in result.output

"""payops.webhooks: signature checks, idempotent apply, the HTTP endpoint, event files."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import orjson
import pytest
import stripe
from click.testing import CliRunner
from servers import free_port

from payops import connect, query
from payops.cli import cli
from payops.errors import InvalidInput, SignatureError
from payops.webhooks import WebhookLimits, apply_file, handle, load_events, make_server

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
def test_bad_signature_writes_nothing(case, empty_db):
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


# --- the receiver as a server on the open internet: caps, timeouts, bounded concurrency, 4xx ---------


@pytest.fixture
def receiver():
    """The webhook server on 127.0.0.1 with short timeouts; yields (port, log lines, limits)."""
    lines: list[str] = []
    with connect():  # the database the deliveries go to exists before the first one, as with `payops init`
        pass
    limits = WebhookLimits(header_timeout=1.0, body_timeout=1.0)
    server = make_server("127.0.0.1", 0, SECRET, log=lines.append, limits=limits)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], lines, limits
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def raw_exchange(port: int, data: bytes, *, then_send: int = 0, timeout: float = 10) -> tuple[bytes, int]:
    """Send ``data`` (then up to ``then_send`` more body bytes) on a raw socket; return (reply, extra bytes sent)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    sent = 0
    try:
        sock.sendall(data)
        chunk = b"x" * 65536
        try:
            while sent < then_send:
                sock.sendall(chunk)
                sent += len(chunk)
        except OSError:  # the server answered and closed: the rest was never read
            pass
        reply = b""
        try:
            while True:
                part = sock.recv(65536)
                if not part:
                    break
                reply += part
        except ConnectionResetError:  # unread bytes make the kernel reset after the reply
            pass
    finally:
        sock.close()
    return reply, sent


def status_of(reply: bytes) -> int:
    assert reply.startswith(b"HTTP/1.1 "), reply[:80]
    return int(reply.split(b" ", 2)[1])


def json_of(reply: bytes) -> dict:
    return json.loads(reply.split(b"\r\n\r\n", 1)[1])


FIFTY_MB = 50 * 1024 * 1024


@pytest.mark.slow
def test_a_50_mb_body_is_refused_before_it_is_read(receiver):
    port, lines, limits = receiver
    head = f"POST /webhooks HTTP/1.1\r\nHost: x\r\nContent-Length: {FIFTY_MB}\r\n\r\n".encode()
    # the reply comes with no byte of the body sent: the length alone is refused
    reply, _ = raw_exchange(port, head)
    assert status_of(reply) == 413 and "over the 1,048,576-byte limit" in json_of(reply)["error"]
    # a client that pushes the 50 MB anyway is cut off: the server reads a few socket buffers at most
    reply, sent = raw_exchange(port, head, then_send=FIFTY_MB)
    assert status_of(reply) == 413 and sent < FIFTY_MB
    # chunked, without a length: cut off as soon as it passes the cap
    chunk = b"10000\r\n" + b"x" * 65536 + b"\r\n"
    reply, _ = raw_exchange(port, b"POST /webhooks HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                            + chunk * 20)
    assert status_of(reply) == 413
    assert counts() == (0, 0)


@pytest.mark.slow
def test_slow_clients_time_out_and_others_are_served(receiver):
    port, lines, limits = receiver
    # a slowloris: headers that never end hold no slot; the connection is closed after header_timeout
    slow = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(20)]
    for s in slow:
        s.sendall(b"POST /webhooks HTTP/1.1\r\nHost: x\r\n")
    # meanwhile a real delivery is served
    payload, header = signed(event("evt_fast", int(time.time()), 700))
    code, _ = post(port, payload, header)
    assert code == 200
    for s in slow:
        assert s.recv(100) == b""  # closed by the server (the header timeout), not left hanging
        s.close()
    # a body that stops arriving gets 408
    reply, _ = raw_exchange(port, b"POST /webhooks HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"id\"")
    assert status_of(reply) == 408 and "did not arrive within 1 s" in json_of(reply)["error"]
    assert counts() == (1, 1)


@pytest.mark.slow
@pytest.mark.parametrize("request_bytes, status", [
    (b"GARBAGE\r\n\r\n", 400),
    (b"POST /webhooks HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n", 400),
    (b"POST /webhooks HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\nhello", 400),
    (b"POST /webhooks HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello", 400),
    (b"POST /webhooks HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nStripe-Signature: t=1,v1=ab\r\n\r\n\xff\xfe\x00ab",
     400),
    (b"PUT /webhooks HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello", 405),
    (b"POST /elsewhere HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello", 404),
    (b"POST /webhooks HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000\r\n\r\n", 413),
])
def test_malformed_requests_get_a_4xx_not_a_dropped_connection(receiver, request_bytes, status):
    port, lines, limits = receiver
    reply, _ = raw_exchange(port, request_bytes)
    assert status_of(reply) == status
    assert b"Traceback" not in reply
    if b"Content-Type: application/json" in reply:
        assert "error" in json_of(reply)
    # and the server is still there
    assert post(port, *signed(event(f"evt_after_{status}", int(time.time()), 700)))[0] == 200


def post(port: int, payload: bytes, header: str, path: str = "/webhooks") -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request("POST", path, body=payload, headers={"Stripe-Signature": header,
                                                         "Content-Type": "application/json"})
        r = conn.getresponse()
        return r.status, json.loads(r.read())
    finally:
        conn.close()


@pytest.mark.slow
def test_200_events_at_50_concurrent_are_all_stored_once(receiver):
    port, lines, limits = receiver
    now = int(time.time())
    deliveries = [signed(event(f"evt_c{i:03d}", now + i, i)) for i in range(200)]
    # every delivery is sent twice (Stripe redelivers), 50 at a time
    with ThreadPoolExecutor(max_workers=50) as pool:
        replies = list(pool.map(lambda d: post(port, *d), deliveries + deliveries))
    assert all(code == 200 for code, _ in replies), [r for r in replies if r[0] != 200][:3]
    assert sum(body["duplicate"] for _, body in replies) == 200
    assert query("SELECT count(*) AS n, count(DISTINCT id) AS d FROM events").iloc[0].tolist() == [200, 200]
    # newer-wins: the charge holds the newest event's state
    assert query("SELECT amount_refunded FROM charges")["amount_refunded"].tolist() == [199]


@pytest.mark.slow
def test_a_flood_beyond_the_queue_gets_503_and_a_retry_stores_it(tmp_path):
    lines: list[str] = []
    server = make_server("127.0.0.1", 0, SECRET, log=lines.append, limits=WebhookLimits(max_pending=2))
    port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    gate = threading.Event()
    server.receiver.writer.submit(gate.wait, 60)  # the one writer is busy: deliveries queue up
    try:
        now = int(time.time())
        deliveries = [signed(event(f"evt_f{i:02d}", now + i, i)) for i in range(40)]
        with ThreadPoolExecutor(max_workers=40) as pool:
            futures = [pool.submit(post, port, *d) for d in deliveries]
            # two wait for the writer, every other one is told 503 at once
            deadline = time.monotonic() + 30
            while sum(f.done() for f in futures) < 38 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert sum(f.done() for f in futures) == 38
            gate.set()
            replies = [f.result(timeout=30) for f in futures]
        busy = [d for d, (code, _) in zip(deliveries, replies, strict=True) if code == 503]
        assert len(busy) == 38 and sum(code == 200 for code, _ in replies) == 2
        for d in busy:  # what Stripe does with a 503: deliver again later
            assert post(port, *d)[0] == 200
        assert query("SELECT count(*) AS n FROM events")["n"][0] == 40
    finally:
        server.shutdown()
        server.server_close()

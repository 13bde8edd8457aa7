"""payops serve against a hub API on 127.0.0.1: identity from the hub only, roles, four-eyes, webhooks.

The hub here is a small real HTTP server answering ``GET /hub/api/user`` the way JupyterHub
does (the user model for a token, 403 for an unknown one); the service's real ``HubAuth``
talks to it. tests/test_hub.py does the same against a real JupyterHub with browsers.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
import stripe
import tornado.web
from servers import free_port, wait_for_port
from test_refunds import audit_rows, seed_payment, write_toml

from payops import refunds as R
from payops.errors import PermissionDenied
from payops.service import RemoteActions, ServiceClient
from payops.service.app import ServiceContext, make_app

ROLES = {"viewer": ["vic"], "reviewer": ["ana", "ben", "group:reviewers"], "senior": ["carla"],
         "processor": ["ben"]}
SCOPE = "access:services!service=payops"
# token -> (user, groups, scopes); "tok-noscope" is ana's token without access to the service
TOKENS = {
    "tok-ana": ("ana", [], [SCOPE]), "tok-ana-2": ("ana", [], [SCOPE]), "tok-ben": ("ben", [], [SCOPE]),
    "tok-carla": ("carla", [], [SCOPE]), "tok-vic": ("vic", [], [SCOPE]), "tok-noscope": ("ana", [], ["read:users"]),
    "tok-gus": ("gus", ["reviewers"], [SCOPE]), "tok-eve": ("eve", [], [SCOPE]),
}
PREFIX = "/services/payops/"
HOOK_SECRET = "whsec_service_test"


class HubUser(tornado.web.RequestHandler):
    """``GET /hub/api/user`` as JupyterHub answers it for a token."""

    def get(self) -> None:
        auth = self.request.headers.get("Authorization", "")
        token = auth.split(" ", 1)[1] if " " in auth else ""
        if token not in TOKENS:
            self.set_status(403)
            self.finish({"status": 403, "message": "Forbidden"})
            return
        name, groups, scopes = TOKENS[token]
        self.finish({"kind": "user", "name": name, "admin": False, "groups": groups, "scopes": scopes})


class Loop:
    """An asyncio loop in a thread, for servers the test talks to over HTTP."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=30)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)


@pytest.fixture
def service(tmp_path, db_path, monkeypatch):
    """The stub hub and payops serve's app on 127.0.0.1; yields the service URL."""
    from jupyterhub.services.auth import HubAuth

    write_toml(tmp_path, ROLES)
    hub_port, svc_port = free_port(), free_port()
    monkeypatch.setenv("PAYOPS_AUDIT_KEY", "service-test-audit-key-0123456789")
    loop = Loop()

    async def start():
        hub = tornado.web.Application([(r"/hub/api/user", HubUser)])
        hub_server = hub.listen(hub_port, "127.0.0.1")
        auth = HubAuth(api_url=f"http://127.0.0.1:{hub_port}/hub/api", api_token="service-token",
                       allow_token_in_url=False, cache_max_age=0, access_scopes={SCOPE})
        from payops.config import get_settings

        ctx = ServiceContext(settings=get_settings(), db=db_path, hub_auth=auth, log=lambda line: None)
        app, receiver = make_app(ctx, PREFIX, HOOK_SECRET)
        svc_server = app.listen(svc_port, "127.0.0.1")
        return hub_server, svc_server, ctx

    hub_server, svc_server, ctx = loop.run(start())
    try:
        yield f"http://127.0.0.1:{svc_port}{PREFIX}"
    finally:
        async def stop():
            svc_server.stop()
            hub_server.stop()
        loop.run(stop())
        ctx.writer.shutdown(wait=True)
        loop.stop()


def call(url: str, path: str, body: dict | None = None, headers: dict | None = None,
         method: str | None = None) -> tuple[int, dict]:
    """A raw HTTP call (no client library): what an attacker can send."""
    host_port, _, rest = url.removeprefix("http://").partition("/")
    host, port = host_port.split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        conn.request(method or ("POST" if body is not None else "GET"), "/" + rest + path,
                     body=orjson.dumps(body) if body is not None else None, headers=headers or {})
        r = conn.getresponse()
        return r.status, json.loads(r.read() or b"{}")
    finally:
        conn.close()


def acts(url: str, token: str) -> RemoteActions:
    return RemoteActions(ServiceClient(url, token))


def large_request() -> int:
    """A 60.00 refund on a 90.00 payment (LARGE: above 50.00), requested by eve."""
    seed_payment(amount=9000)
    return R.request("pi_1", reason="requested_by_customer", amount=6000, requested_by="eve")["id"]


def test_whoami_is_what_the_hub_says(service, monkeypatch):
    monkeypatch.setenv("PAYOPS_USER", "carla")  # ignored: the token decides
    me = acts(service, "tok-ana")
    assert (me.user, me.roles) == ("ana", ("reviewer",))
    assert acts(service, "tok-gus").roles == ("reviewer",)  # a hub group named in [roles]
    assert call(service, "api/whoami", headers={"Authorization": "token tok-carla"})[1]["user"] == "carla"


def test_no_token_or_a_forged_header_is_refused(service):
    rid = large_request()
    for headers in ({}, {"X-User": "carla"}, {"X-Remote-User": "carla", "X-Forwarded-User": "carla"},
                    {"Authorization": "token not-a-token", "X-User": "carla"}, {"Authorization": "carla"}):
        status, body = call(service, "api/refunds/approve", {"ids": [rid], "user": "carla"}, headers)
        assert status == 401, (headers, body)
    status, _ = call(service, "api/refunds/approve?token=tok-carla", {"ids": [rid]})
    assert status == 401  # no tokens in URLs
    status, body = call(service, "api/refunds/approve", {"ids": [rid]}, {"Authorization": "token tok-noscope"})
    assert status == 403 and "lacks access to this service" in body["error"]
    assert R.get(rid)["first_approver"] is None and audit_rows(rid) == [("eve", "refund_request.create")]


def test_four_eyes_by_two_hub_users(service):
    rid = large_request()
    # ana's first approval, whatever header she adds
    status, body = call(service, "api/refunds/approve", {"ids": [rid], "note": "ok"},
                        {"Authorization": "token tok-ana", "X-User": "carla"})
    assert status == 200 and body["results"][0]["status"] == "PENDING"
    # ana again, with her second token: still ana
    [again] = acts(service, "tok-ana-2").approve([rid])
    assert not again.ok and R.get(rid)["status"] == "PENDING"
    [second] = acts(service, "tok-carla").approve([rid])
    assert second.ok and second.status == "APPROVED"
    g = R.get(rid)
    assert (g["first_approver"], g["second_approver"]) == ("ana", "carla")
    assert audit_rows(rid) == [("eve", "refund_request.create"), ("ana", "refund_request.approve"),
                               ("carla", "refund_request.approve")]


def test_a_viewer_only_looks(service):
    rid = large_request()
    for path, body in (("refunds/approve", {"ids": [rid]}), ("refunds/reject", {"ids": [rid], "note": "no"}),
                       ("refunds/process", {}), ("refunds/apply-policy", {}),
                       ("refunds/request", {"payment": "pi_1", "reason": "duplicate", "amount": "1.00"})):
        status, reply = call(service, "api/" + path, body, {"Authorization": "token tok-vic"})
        assert status == 403 and reply["error"].startswith("vic lacks the"), (path, reply)
    with pytest.raises(PermissionDenied, match="vic lacks the reviewer or senior role"):
        acts(service, "tok-vic").approve([rid])
    assert R.get(rid)["status"] == "PENDING" and len(audit_rows(rid)) == 1


def test_a_request_through_the_service_is_by_the_hub_user(service):
    seed_payment(amount=9000)
    row = acts(service, "tok-ben").request("pi_1", reason="duplicate", amount="12.50", note="double charge")
    assert (row["requested_by"], row["amount"], row["status"]) == ("ben", 1250, "PENDING")
    # ben requested it: he cannot approve it... but ana can
    assert acts(service, "tok-ana").approve([row["id"]])[0].ok


def test_malformed_api_calls_get_a_4xx(service):
    h = {"Authorization": "token tok-ana"}
    assert call(service, "api/refunds/approve", {"ids": "all"}, h)[0] == 400
    assert call(service, "api/refunds/reject", {"ids": [1]}, h)[0] == 400  # a note is required
    assert call(service, "api/refunds/approve", headers=h, method="GET")[0] == 405
    assert call(service, "api/nope", {}, h)[0] == 404
    status, body = call(service, "api/refunds/request", {"payment": "pi_none", "reason": "duplicate"},
                        {"Authorization": "token tok-ben"})
    assert status == 404 and "no payment pi_none" in body["error"]


def test_webhooks_are_served_inside_the_service(service):
    ev = {"id": "evt_svc", "object": "event", "api_version": "2026-10-28.endive", "created": int(time.time()),
          "type": "customer.created", "livemode": False,
          "data": {"object": {"id": "cus_hook", "object": "customer", "created": 1_700_000_000,
                              "email": "h@example.com", "livemode": False, "metadata": {}}}}
    payload = orjson.dumps(ev)
    sig = stripe.WebhookSignature.generate_signature_header(payload.decode(), HOOK_SECRET)
    host_port = service.removeprefix("http://").split("/")[0]
    conn = http.client.HTTPConnection(*host_port.split(":"), timeout=30)
    conn.request("POST", PREFIX + "webhooks", body=payload, headers={"Stripe-Signature": sig})
    r = conn.getresponse()
    assert r.status == 200 and json.loads(r.read())["id"] == "evt_svc"
    conn.close()
    from payops import query

    assert query("SELECT id FROM customers")["id"].tolist() == ["cus_hook"]


@pytest.mark.slow
def test_payops_serve_needs_a_hub_and_stops_on_sigterm(tmp_path, db_path):
    write_toml(tmp_path, ROLES)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTERHUB_", "PAYOPS_AUDIT"))}
    exe = str(Path(sys.executable).with_name("payops"))
    # no audit key, then no hub: one line each, no traceback
    out = subprocess.run([exe, "serve"], env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert out.returncode == 1 and "no audit key" in out.stderr and "Traceback" not in out.stderr
    env["PAYOPS_AUDIT_KEY"] = "service-test-audit-key-0123456789"
    out = subprocess.run([exe, "serve"], env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert out.returncode == 1 and "JUPYTERHUB_API_TOKEN is not set" in out.stderr
    port = free_port()
    env.update(JUPYTERHUB_API_TOKEN="t", JUPYTERHUB_API_URL="http://127.0.0.1:9/hub/api",
               JUPYTERHUB_SERVICE_NAME="payops", JUPYTERHUB_SERVICE_URL=f"http://127.0.0.1:{port}",
               JUPYTERHUB_SERVICE_PREFIX=PREFIX)
    proc = subprocess.Popen([exe, "serve"], env=env, cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        wait_for_port("127.0.0.1", port, timeout=60, proc=proc)
        assert call(f"http://127.0.0.1:{port}{PREFIX}", "")[1]["service"] == "payops"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        assert "stopping" in proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()


# --- the attacks of issue 11, against the writer ----------------------------------------------


def refund_posts(fake) -> list[dict]:
    return [r for r in fake.requests if r["method"] == "POST" and r["path"] == "/v1/refunds"]


def user_cli(url: str, *args: str, token: str | None = None, **env_extra: str) -> subprocess.CompletedProcess:
    """`payops ...` as a user runs it: team mode, no audit key, no Stripe key."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PAYOPS_AUDIT", "STRIPE_", "JUPYTERHUB_"))}
    env.update(PAYOPS_SERVICE_URL=url, **env_extra)
    if token:
        env["JUPYTERHUB_API_TOKEN"] = token
    return subprocess.run([str(Path(sys.executable).with_name("payops")), *args], env=env, capture_output=True,
                          text=True, timeout=120, cwd=os.getcwd())


@pytest.mark.slow
def test_environment_names_do_not_pass_four_eyes(service):
    """PAYOPS_USER=ana then PAYOPS_USER=carla (or USER=carla) on a $105 refund: the token decides."""
    seed_payment(amount=10500)
    rid = R.request("pi_1", reason="requested_by_customer", amount=10500, requested_by="ben")["id"]
    for name in ("PAYOPS_USER", "USER"):
        out = user_cli(service, "refunds", "approve", str(rid), **{name: "carla"})
        assert out.returncode == 1 and out.stdout == ""
        assert out.stderr.strip().count("\n") == 0 and "set JUPYTERHUB_API_TOKEN" in out.stderr
    out = user_cli(service, "refunds", "approve", str(rid), token="tok-ana", PAYOPS_USER="carla", USER="carla")
    assert out.returncode == 0 and "first approval by ana" in out.stdout
    out = user_cli(service, "refunds", "approve", str(rid), token="tok-ana-2", PAYOPS_USER="carla")
    assert out.returncode == 1 and R.get(rid)["status"] == "PENDING"
    assert [a for a, _ in audit_rows(rid)] == ["ben", "ana"]


def test_a_split_refund_is_large_by_its_cumulative_amount(service):
    """$120 refunded as 50 + 50 + 20: the second and third need four-eyes."""
    seed_payment(amount=12000)
    ids = [R.request("pi_1", reason="requested_by_customer", amount=a, requested_by="ben")["id"]
           for a in (5000, 5000, 2000)]
    ana = acts(service, "tok-ana")
    first, second, third = ana.approve(ids)
    assert first.ok and first.status == "APPROVED"  # 50.00 is not above 50.00
    assert second.ok and second.status == "PENDING" and "LARGE" in second.message
    assert third.ok and third.status == "PENDING"
    assert [r.status for r in acts(service, "tok-carla").approve(ids[1:])] == ["APPROVED", "APPROVED"]
    assert (R.get(ids[2])["first_approver"], R.get(ids[2])["second_approver"]) == ("ana", "carla")
    # the queue shows them LARGE the same way
    large = R.queue(status=None, priority="LARGE")["id"].tolist()
    assert sorted(large) == sorted(ids[1:])


def test_apply_policy_needs_a_role_and_records_who_ran_it(service):
    seed_payment(1, amount=3000, booking="cancelled")
    seed_payment(2, amount=3000, booking="cancelled")
    mine = R.request("pi_1", reason="requested_by_customer", amount=3000, requested_by="ana")["id"]
    theirs = R.request("pi_2", reason="requested_by_customer", amount=3000, requested_by="ben")["id"]
    status, body = call(service, "api/refunds/apply-policy", {}, {"Authorization": "token tok-vic"})
    assert status == 403 and "vic lacks the reviewer or senior role" in body["error"]
    assert R.get(theirs)["status"] == "PENDING"
    results = acts(service, "tok-ana").apply_policy()
    assert [(r.request_id, r.status) for r in results] == [(theirs, "APPROVED")]  # never her own request
    assert R.get(mine)["status"] == "PENDING"
    from payops.audit import list_rows

    row = list_rows(entity="refund_request", entity_id=str(theirs), limit=1).iloc[0]
    assert row["actor"] == "policy" and "run by ana" in row["note"]
    assert json.loads(row["after"])["ran_by"] == "ana"


def test_an_import_records_the_importer_not_the_csv(service):
    seed_payment(amount=9000)
    rows = [{"payment": "pi_1", "reason": "duplicate", "amount": "10.00", "requested_by": "carla"}]
    [line] = acts(service, "tok-ben").import_rows(rows)
    assert line["ok"], line
    req = R.get(line["request"]["id"])
    assert req["requested_by"] == "ben" and "(on behalf of carla)" in req["note"]
    assert audit_rows(req["id"]) == [("ben", "refund_request.create")]
    from payops.audit import list_rows

    after = json.loads(list_rows(entity="refund_request", entity_id=str(req["id"]), limit=1).iloc[0]["after"])
    assert after["on_behalf_of"] == "carla"
    # a viewer imports nothing
    status, _ = call(service, "api/refunds/import", {"rows": rows}, {"Authorization": "token tok-vic"})
    assert status == 403


def test_a_row_changed_outside_the_workflow_is_refused_marked_and_reported(service, fake):
    """vic's UPDATE ... SET status='APPROVED', amount=2500: refused by payops query; and if he could
    write the file anyway, the writer refuses to pay it, marks it and `audit verify` reports it."""
    import payops
    from payops.db import connect
    from payops.errors import QueryRefused

    seed_payment(amount=4500, fake=fake)
    rid = R.request("pi_1", reason="duplicate", amount=500, requested_by="ben")["id"]
    with pytest.raises(QueryRefused):
        payops.query(f"UPDATE refund_requests SET status='APPROVED', amount=2500 WHERE id={rid}")
    with connect() as con:  # a write connection he should not have
        con.execute("UPDATE refund_requests SET status = 'APPROVED', amount = 2500 WHERE id = ?", [rid])
    [res] = acts(service, "tok-ben").process()
    assert not res.ok and res.status == "FAILED" and "does not follow from its audit history" in res.message
    assert "its amount is 2500 but its history says 500" in res.message
    assert refund_posts(fake) == [] and fake.objects("refund") == []
    assert R.get(rid)["status"] == "FAILED"
    status, report = call(service, "api/audit/verify", headers={"Authorization": "token tok-vic"})
    assert status == 200 and report["chain"]["ok"] and not report["ok"]
    assert [r["id"] for r in report["requests"]] == [rid]


def test_forged_audit_rows_are_detected_and_nothing_is_paid(service, fake):
    """Rewriting rows and recomputing hashes without the writer's key is found; no money moves."""
    from payops import audit
    from payops.db import connect

    seed_payment(amount=9000, fake=fake)
    rid = R.request("pi_1", reason="requested_by_customer", amount=6000, requested_by="ben")["id"]
    acts(service, "tok-ana").approve([rid])  # a first approval by ana, keyed by the writer
    with connect() as con:
        # the forger adds carla's second approval, chained with a hash he can compute
        prev, last_id = con.execute("SELECT hash, id FROM audit_log ORDER BY id DESC LIMIT 1").fetchone()
        at = datetime.now(UTC)
        after = '{"decided_by":"carla","roles":["senior"],"second_approver":"carla","status":"APPROVED"}'
        h = audit.row_hash(prev, last_id + 1, at, "carla", "refund_request.approve", "refund_request", str(rid),
                           None, after, None)
        con.execute('INSERT INTO audit_log (id, "at", actor, action, entity, entity_id, after, prev_hash, hash) '
                    "VALUES (?, ?, 'carla', 'refund_request.approve', 'refund_request', ?, ?, ?, ?)",
                    [last_id + 1, at, str(rid), after, prev, h])
        con.execute("UPDATE refund_requests SET status = 'APPROVED', second_approver = 'carla', "
                    "decided_by = 'carla' WHERE id = ?", [rid])
    [res] = acts(service, "tok-ben").process()
    assert not res.ok and "nothing sent to Stripe" in res.message and f"audit row {last_id + 1}" in res.message
    assert refund_posts(fake) == []
    status, report = call(service, "api/audit/verify", headers={"Authorization": "token tok-ana"})
    assert not report["chain"]["ok"] and report["chain"]["row_id"] == last_id + 1


def test_audit_verify_reports_every_request_that_does_not_follow_from_its_history():
    from click.testing import CliRunner

    from payops.cli import cli
    from payops.db import connect

    seed_payment(1, amount=4500)
    seed_payment(2, amount=4500)
    a = R.request("pi_1", reason="duplicate", amount=500)["id"]
    b = R.request("pi_2", reason="duplicate", amount=700)["id"]
    out = CliRunner().invoke(cli, ["audit", "verify"], catch_exceptions=False)
    assert out.exit_code == 0 and "audit chain intact" in out.output
    with connect() as con:
        con.execute("UPDATE refund_requests SET status = 'APPROVED', amount = 2500 WHERE id = ?", [a])
        con.execute("UPDATE refund_requests SET first_approver = 'carla' WHERE id = ?", [b])
    out = CliRunner().invoke(cli, ["audit", "verify"], catch_exceptions=False)
    assert out.exit_code == 1
    assert f"request {a}: its status is 'APPROVED' but its history says 'PENDING'" in out.output
    assert f"request {b}: its first_approver is 'carla' but its history says None" in out.output
    assert "2 refund request(s) do not follow from their audit history" in out.output

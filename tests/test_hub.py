"""Team mode with a real JupyterHub on 127.0.0.1: logins, payops serve as the one writer, attacks.

One module-scoped hub (it takes ~15 s to start): hub/jupyterhub_config.py as `make hub` uses it,
plus a test-only service token that may mint hub tokens for users (what a user does at
/hub/token). Reviewers log in through the hub's login form in their own Playwright contexts.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest
from servers import free_port, wait_for_port

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]
ARTIFACTS = REPO / "test-artifacts"
PROXY = REPO / "hub" / "node_modules" / ".bin" / "configurable-http-proxy"
PASSWORDS = {"vic": "vic-pw-1", "ana": "ana-pw-2", "ben": "ben-pw-3", "carla": "carla-pw-4"}
SCOPE = "access:services!service=payops"
TEST_TOKEN = "hub-test-service-token-0123456789abcdef"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed (.ci/run installs it)"),
    pytest.mark.skipif(not PROXY.exists(), reason="configurable-http-proxy is not installed (make hub installs it)"),
]

TEST_CONFIG = """
c = get_config()  # noqa: F821
load_subconfig({main!r})  # noqa: F821
# A test-only service that mints hub tokens for users, as a user does at /hub/token.
c.JupyterHub.services.append({{"name": "hub-test", "api_token": {token!r}}})
c.JupyterHub.load_roles.append({{"name": "hub-test", "scopes": ["tokens", "read:users"], "services": ["hub-test"]}})
# Whatever the environment claims, the hub's login decides who acts.
c.Spawner.environment["PAYOPS_USER"] = "mallory"
"""


@dataclass
class Hub:
    url: str
    service_url: str
    db: Path
    folder: Path
    proc: subprocess.Popen
    started_s: float
    tokens: dict[str, list[str]] = field(default_factory=dict)

    def api(self, method: str, path: str, body: dict | None = None, token: str = TEST_TOKEN) -> dict:
        req = urllib.request.Request(f"{self.url}hub/api/{path}", method=method,
                                     data=json.dumps(body).encode() if body is not None else None,
                                     headers={"Authorization": f"token {token}"})
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read() or b"{}")

    def token(self, user: str) -> str:
        """A fresh hub token of ``user`` that may call payops serve (what /hub/token gives)."""
        made = self.api("POST", f"users/{user}/tokens", {"scopes": [SCOPE], "expires_in": 3600, "note": "test"})
        self.tokens.setdefault(user, []).append(made["token"])
        return made["token"]


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hub")
    run = folder / "run"
    run.mkdir(mode=0o700)
    db = folder / "payops.duckdb"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PAYOPS_", "STRIPE_", "JUPYTERHUB_"))}
    # the demo database is built single-user, like `make hub` finds it
    subprocess.run([str(VENV_BIN / "payops"), "demo", "--db", str(db), "--seed", "7", "--days", "20",
                    "--customers", "40", "--replace", "-q"], env=env, check=True, timeout=300, cwd=folder,
                   capture_output=True)
    (run / "passwords.txt").write_text("".join(f"{u}:{p}\n" for u, p in PASSWORDS.items()))
    key = run / "audit.key"
    key.write_text("hub-test-audit-key-0123456789abcdef\n")
    key.chmod(0o600)
    config = folder / "jupyterhub_config.py"
    config.write_text(TEST_CONFIG.format(main=str(REPO / "hub" / "jupyterhub_config.py"), token=TEST_TOKEN))
    port = free_port()
    env.update(PAYOPS_HUB_DIR=str(run), PAYOPS_HUB_PORT=str(port), PAYOPS_HUB_API_PORT=str(free_port()),
               PAYOPS_HUB_PROXY_API_PORT=str(free_port()), PAYOPS_SERVICE_PORT=str(free_port()),
               PAYOPS_DB=str(db), PAYOPS_CONFIG=str(REPO / "hub" / "payops.toml"))
    log = open(folder / "hub.log", "w")
    t0 = time.monotonic()
    proc = subprocess.Popen([str(VENV_BIN / "jupyterhub"), "-f", str(config)], cwd=folder, env=env,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}/"
    hub = Hub(url=url, service_url=f"{url}services/payops/", db=db, folder=run, proc=proc, started_s=0.0)
    try:
        wait_for_port("127.0.0.1", port, timeout=120, proc=proc)
        deadline = time.monotonic() + 120
        while True:  # the hub answers and payops serve is routed
            try:
                with urllib.request.urlopen(hub.service_url, timeout=5) as r:
                    if json.loads(r.read()).get("service") == "payops":
                        break
            except (urllib.error.URLError, OSError, ValueError):
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"hub did not come up; see {folder / 'hub.log'}")
            time.sleep(0.2)
        hub.started_s = time.monotonic() - t0
        yield hub
    finally:
        stop(hub)
        log.close()


def stop(hub: Hub) -> None:
    if hub.proc.poll() is None:
        os.killpg(hub.proc.pid, signal.SIGTERM)
        try:
            hub.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(hub.proc.pid, signal.SIGKILL)
            hub.proc.wait(timeout=10)


def cli(hub: Hub, *args: str, token: str | None = None, **extra_env: str) -> subprocess.CompletedProcess:
    """`payops ...` as a user's terminal runs it (no audit key, no Stripe key)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PAYOPS_", "STRIPE_", "JUPYTERHUB_"))}
    env.update(PAYOPS_DB=str(hub.db), PAYOPS_CONFIG=str(REPO / "hub" / "payops.toml"),
               PAYOPS_SERVICE_URL=hub.service_url, **extra_env)
    if token:
        env["JUPYTERHUB_API_TOKEN"] = token
    return subprocess.run([str(VENV_BIN / "payops"), *args], env=env, capture_output=True, text=True, timeout=120)


def login(browser, hub: Hub, user: str):
    """A fresh browser context logged in as ``user`` through the hub's login form; returns its page."""
    context = browser.new_context(viewport={"width": 1400, "height": 1100})
    page = context.new_page()
    page.goto(f"{hub.url}hub/login", timeout=60_000)
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", PASSWORDS[user])
    page.click("input[type=submit], button[type=submit]")
    return page


def pending_large(hub: Hub, *, not_by: tuple[str, ...] = ()) -> int:
    """A new PENDING LARGE request (51.00 on a USD payment), asked for through payops serve by ben."""
    from payops import refunds
    from payops.db import query

    assert "ben" not in not_by
    df = query("SELECT payment_intent FROM charges WHERE status = 'succeeded' AND currency = 'usd' "
               "AND payment_intent IS NOT NULL AND amount_captured - amount_refunded >= 5100 ORDER BY created DESC",
               db=hub.db)
    for pi in df["payment_intent"]:
        if refunds.check(pi, 5100, db=hub.db).eligible:
            req = urllib.request.Request(
                hub.service_url + "api/refunds/request", method="POST",
                data=json.dumps({"payment": pi, "reason": "requested_by_customer", "amount": "51.00"}).encode(),
                headers={"Authorization": f"token {hub.token('ben')}", "Content-Type": "application/json"})
            made = json.loads(urllib.request.urlopen(req, timeout=60).read())["request"]
            assert made["requested_by"] == "ben" and made["status"] == "PENDING"
            return int(made["id"])
    raise AssertionError("the demo has no USD payment with 51.00 left to refund")


def row(hub: Hub, rid: int) -> dict:
    from payops import refunds

    return refunds.get(rid, db=hub.db)


def test_the_hub_and_the_writer_start(hub):
    print(f"\nhub start to payops serve routed: {hub.started_s:.1f} s")
    me = json.loads(urllib.request.urlopen(urllib.request.Request(
        hub.service_url + "api/whoami", headers={"Authorization": f"token {hub.token('ana')}"}), timeout=30).read())
    assert (me["user"], me["roles"]) == ("ana", ["reviewer"])


def test_ana_alone_cannot_pass_four_eyes(hub):
    rid = pending_large(hub, not_by=("ana", "carla"))
    token = hub.token("ana")
    # whatever the environment says, ana's token is ana
    out = cli(hub, "refunds", "approve", str(rid), token=token, PAYOPS_USER="carla", USER="carla", LOGNAME="carla")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "first approval by ana" in out.stdout
    out = cli(hub, "refunds", "approve", str(rid), token=token, PAYOPS_USER="carla", USER="carla")
    assert out.returncode == 1 and "needs a second approval" in out.stdout
    out = cli(hub, "refunds", "approve", str(rid), token=hub.token("ana"), PAYOPS_USER="carla")  # her second token
    assert out.returncode == 1
    # a forged header next to her token changes nothing
    req = urllib.request.Request(hub.service_url + "api/refunds/approve", method="POST",
                                 data=json.dumps({"ids": [rid], "user": "carla"}).encode(),
                                 headers={"Authorization": f"token {token}", "X-User": "carla",
                                          "X-Remote-User": "carla", "Content-Type": "application/json"})
    reply = json.loads(urllib.request.urlopen(req, timeout=30).read())
    assert reply["results"][0]["ok"] is False
    assert (row(hub, rid)["status"], row(hub, rid)["first_approver"]) == ("PENDING", "ana")


def test_no_token_or_a_forged_header_is_refused(hub):
    rid = pending_large(hub, not_by=("ana", "carla"))
    for headers in ({}, {"X-User": "carla"}, {"Authorization": "token forged", "X-User": "carla"}):
        req = urllib.request.Request(hub.service_url + "api/refunds/approve", method="POST",
                                     data=b'{"ids": [%d]}' % rid, headers=headers)
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(req, timeout=30)
        assert info.value.code == 401
    out = cli(hub, "refunds", "approve", str(rid), PAYOPS_USER="carla")  # no token: one line saying how
    assert out.returncode != 0 and out.stderr.count("\n") == 1 and "JUPYTERHUB_API_TOKEN" in out.stderr
    assert row(hub, rid)["first_approver"] in (None, "ana")


def test_a_viewer_is_refused(hub):
    rid = pending_large(hub, not_by=("vic",))
    before = row(hub, rid)
    out = cli(hub, "refunds", "approve", str(rid), token=hub.token("vic"))
    assert out.returncode != 0 and "vic lacks the reviewer or senior role" in out.stderr
    out = cli(hub, "refunds", "apply-policy", token=hub.token("vic"))
    assert out.returncode != 0 and "vic lacks the" in out.stderr
    assert row(hub, rid) == before


def test_two_reviewers_log_in_and_pass_four_eyes_in_their_browsers(hub):
    """ana's first approval and carla's second, each in a browser logged in through the hub's form."""
    from playwright.sync_api import expect, sync_playwright

    rid = pending_large(hub, not_by=("ana", "carla"))
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            t0 = time.monotonic()
            ana = login(browser, hub, "ana")
            ana.locator(".payops-user").wait_for(state="visible", timeout=180_000)
            first_page = time.monotonic() - t0
            # who you are is what the hub says (the spawner's environment claims PAYOPS_USER=mallory)
            expect(ana.locator(".payops-user")).to_have_text("ana")
            carla = login(browser, hub, "carla")
            carla.locator(".payops-user").wait_for(state="visible", timeout=180_000)
            expect(carla.locator(".payops-user")).to_have_text("carla")

            def approve(page, expected: str) -> float:
                # the demo's queue is short: the request is on the first page (a filter change would
                # re-open the first row meanwhile)
                expect(page.locator(f".payops-row-{rid}")).to_be_visible(timeout=60_000)
                page.locator(f"button.payops-open-{rid}").click()
                expect(page.locator(".payops-pane-title")).to_contain_text(f"Request #{rid}", timeout=60_000)
                t = time.monotonic()
                page.locator("button.payops-approve-one").click()
                expect(page.locator(".payops-feedback")).to_contain_text(expected, timeout=60_000)
                return time.monotonic() - t

            round_trip = approve(ana, "first approval by ana")
            assert (row(hub, rid)["status"], row(hub, rid)["first_approver"]) == ("PENDING", "ana")
            ana.screenshot(path=str(ARTIFACTS / "hub_ana_first_approval.png"), full_page=True)
            approve(carla, "second approval; first by ana")
            carla.screenshot(path=str(ARTIFACTS / "hub_carla_second_approval.png"), full_page=True)
        finally:
            browser.close()
    print(f"\nlogin to first review page (spawn + Voila): {first_page:.1f} s; "
          f"a decision's round trip through payops serve (click to feedback): {round_trip:.2f} s")
    got = row(hub, rid)
    assert (got["status"], got["first_approver"], got["second_approver"]) == ("APPROVED", "ana", "carla")
    from payops.audit import list_rows

    actors = list_rows(entity="refund_request", entity_id=str(rid), db=hub.db)["actor"].tolist()[::-1]
    assert actors[-2:] == ["ana", "carla"]


def test_stopping_the_hub_stops_everything(hub):
    family = psutil.Process(hub.proc.pid).children(recursive=True)
    names = " ".join(" ".join(p.cmdline()) for p in family)
    # the proxy, payops serve and the users' servers (with their kernels) all descend from the hub
    assert "configurable-http-proxy" in names and "payops serve" in names and "jupyterhub-singleuser" in names
    stop(hub)
    gone, alive = psutil.wait_procs(family, timeout=30)
    assert alive == [], [" ".join(p.cmdline()) for p in alive]
    assert not (hub.folder / "jupyterhub.pid").exists()

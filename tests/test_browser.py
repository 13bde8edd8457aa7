"""Real-browser tests: Voila serves the review app, Playwright drives Debian's chromium.

One Voila server serves the demo for the module in single-user mode (the demo's mode: no
``[roles]``, the library decides as ``PAYOPS_USER``, here carla); each test opens its own page
(a fresh kernel) and picks requests no other test touches. Team mode (the hub, ``payops
serve``) has its own browser tests. Screenshots go to test-artifacts/ (git-ignored) for a
person to look at.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from servers import free_port, wait_for_port

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]
USER = "carla"  # single-user mode: every role; gives the second approval of ana's LARGE request

pytestmark = [
    pytest.mark.slow,
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed (.ci/run installs it)"),
]


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Iterator[dict]:
    """The demo database and the Voila URL of notebooks/refund_review.ipynb."""
    from payops.demo import build_demo

    folder = tmp_path_factory.mktemp("voila")
    db = folder / "payops.duckdb"
    build_demo(db, seed=42, days=30, customers=60, replace=True, progress=False)
    port, token = free_port(), secrets.token_urlsafe(16)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PAYOPS_", "STRIPE_"))}
    env.update(PAYOPS_DB=str(db), PAYOPS_USER=USER, PAYOPS_DB_TIMEOUT="20")
    log = open(folder / "voila.log", "w")
    proc = subprocess.Popen(
        [str(REPO / ".venv/bin/voila"), str(REPO / "notebooks/refund_review.ipynb"), "--no-browser",
         f"--port={port}", "--Voila.ip=127.0.0.1", "--strip_sources=True", f"--token={token}"],
        cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        wait_for_port("127.0.0.1", port, timeout=60, proc=proc)
        yield {"url": f"http://127.0.0.1:{port}/?token={token}", "db": db}
    finally:
        # Its own process group: the kernels Voila started go with it.
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=15)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        log.close()


@pytest.fixture
def app_db(served, monkeypatch) -> Path:
    """This process reads and writes the database Voila serves."""
    monkeypatch.setenv("PAYOPS_DB", str(served["db"]))
    return served["db"]


@pytest.fixture
def page(served):
    """A chromium page showing the app, once the kernel has drawn it."""
    from playwright.sync_api import expect, sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            pg = browser.new_page(viewport={"width": 1480, "height": 1000})
            pg.goto(served["url"], timeout=60_000)
            pg.locator(".payops-user").wait_for(state="visible", timeout=120_000)  # kernel up, notebook run
            expect(pg.locator(".payops-user")).to_have_text(USER)
            yield pg
        finally:
            browser.close()


def _small_pending(n: int) -> list:
    """``n`` PENDING, eligible, not LARGE requests of the app's first page, in queue order."""
    from payops import refunds

    out = []
    for r in refunds.queue(limit=25).itertuples(index=False):
        if "LARGE" in r.priorities or not refunds.check(
                r.payment_intent or r.charge, int(r.amount), exclude=int(r.id)).eligible:
            continue
        out.append(r)
        if len(out) == n:
            return out
    pytest.skip("the demo has too few small eligible pending requests on the first page")


def _new_large_request() -> int:
    """A PENDING LARGE request on a USD payment of the demo that has room for it."""
    import payops
    from payops import refunds

    amount = refunds.large_threshold("usd") + 100
    payments = payops.query(
        "SELECT c.payment_intent FROM charges c WHERE c.status = 'succeeded' AND c.currency = 'usd' "
        "AND c.amount_captured - c.amount_refunded > ? AND NOT c.disputed AND c.payment_intent IS NOT NULL "
        "AND c.payment_intent NOT IN (SELECT payment_intent FROM refund_requests WHERE payment_intent IS NOT NULL) "
        "ORDER BY c.created DESC, c.id", [amount])["payment_intent"]
    pi = next(p for p in payments if refunds.check(p, amount).eligible)
    req = refunds.request(pi, reason="duplicate", amount=amount, requested_by="support-bot")
    assert int(req.id) in set(refunds.queue(priority="LARGE", limit=None)["id"])
    return int(req.id)


def _status(rid: int) -> str:
    from payops import refunds

    row = refunds.get(rid)
    return str(row["status"] if isinstance(row, dict) else row.status)


def test_a_tick_hidden_by_a_search_is_not_approved(page, app_db):
    from playwright.sync_api import expect

    hidden, shown = _small_pending(2)
    hid, sid = int(hidden.id), int(shown.id)
    page.locator(f".payops-select-{hid} input[type=checkbox]").check()
    expect(page.locator(".payops-selection")).to_contain_text("1 selected", timeout=30_000)
    # Type a search that shows only the other request (its payment id), as a person would.
    search = page.locator(".payops-filter-search input")
    search.fill(str(shown.payment_intent))
    search.press("Enter")
    expect(page.locator(f".payops-select-{hid}")).to_have_count(0, timeout=30_000)
    expect(page.locator(".payops-selection")).to_contain_text(f"Unticked 1 request no longer on screen: #{hid}")
    expect(page.locator(".payops-detail")).to_contain_text(str(shown.payment_intent))  # the pane follows
    expect(page.locator(".payops-pane-title")).to_contain_text(f"Request #{sid}")
    expect(page.locator("button.payops-approve")).to_be_disabled()
    page.screenshot(path=str(ARTIFACTS / "review_hidden_selection.png"), full_page=True)
    page.locator(f".payops-select-{sid} input[type=checkbox]").check()
    expect(page.locator(".payops-selection")).to_contain_text("1 selected")
    page.locator("button.payops-approve").click()
    expect(page.locator(".payops-feedback")).to_contain_text(f"approved by {USER}", timeout=30_000)
    assert _status(sid) == "APPROVED"
    assert _status(hid) == "PENDING"  # the defect of issue 13: it used to be approved too


def test_bulk_approve_asks_for_a_confirmation(page, app_db):
    from playwright.sync_api import expect

    from payops.ui.review_html import money_totals

    rows = _small_pending(2)
    ids = [int(r.id) for r in rows]
    for rid in ids:
        page.locator(f".payops-select-{rid} input[type=checkbox]").check()
    totals = money_totals((int(r.amount), str(r.currency)) for r in rows)
    expect(page.locator(".payops-selection")).to_contain_text(f"{len(ids)} selected: {totals}", timeout=30_000)
    page.locator("button.payops-approve").click()
    confirm = page.locator(".payops-confirm")
    expect(confirm).to_be_visible(timeout=30_000)
    expect(confirm).to_contain_text(f"Approve {len(ids)} requests, total {totals}?")
    page.screenshot(path=str(ARTIFACTS / "review_confirmation.png"), full_page=True)
    assert [_status(i) for i in ids] == ["PENDING"] * len(ids)  # nothing before the answer
    page.locator("button.payops-confirm-no").click()
    expect(confirm).to_be_hidden(timeout=30_000)
    assert [_status(i) for i in ids] == ["PENDING"] * len(ids)
    page.locator("button.payops-approve").click()
    page.locator("button.payops-confirm-yes").click()
    expect(page.locator(".payops-feedback")).to_contain_text(f"Done: {len(ids)} requests approved.", timeout=30_000)
    assert [_status(i) for i in ids] == ["APPROVED"] * len(ids)


def test_the_four_eyes_marker(served, app_db):
    from playwright.sync_api import expect, sync_playwright

    from payops import refunds

    # A LARGE request of its own (the demo's requests depend on the day it was built for),
    # opened by support-bot, gets its first approval from ana before carla opens the app.
    rid = _new_large_request()
    [first] = refunds.approve(rid, user="ana", note="first look")
    assert first.ok and _status(rid) == "PENDING", first.message

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1480, "height": 1000})
            page.goto(served["url"], timeout=60_000)
            page.locator(".payops-user").wait_for(state="visible", timeout=120_000)
            page.locator(".payops-filter-priority select").select_option("LARGE")
            row = page.locator(f".payops-row-{rid}")
            expect(row).to_contain_text("1 of 2: waiting for a senior", timeout=30_000)
            page.locator(f"button.payops-open-{rid}").click()
            expect(page.locator(".payops-pane-title")).to_contain_text(f"Request #{rid}", timeout=30_000)
            state = page.locator(".payops-pane .payops-state")
            expect(state).to_contain_text("1 of 2: waiting for a senior. First approval by ana")
            expect(state).to_contain_text("You can give the second approval.")
            approve = page.locator("button.payops-approve-one")
            expect(approve).to_contain_text(f"Approve #{rid} (second of 2)")
            page.screenshot(path=str(ARTIFACTS / "review_four_eyes.png"), full_page=True)
            approve.click()
            expect(page.locator(".payops-feedback")).to_contain_text("second approval; first by ana", timeout=30_000)
            expect(page.locator(f".payops-row-{rid}")).to_have_count(0)
            page.screenshot(path=str(ARTIFACTS / "review_after_second_approval.png"), full_page=True)
        finally:
            browser.close()
    row_after = refunds.get(rid)
    assert _status(rid) == "APPROVED"
    assert (row_after["second_approver"] if isinstance(row_after, dict) else row_after.second_approver) == USER
    assert (ARTIFACTS / "review_four_eyes.png").stat().st_size > 10_000

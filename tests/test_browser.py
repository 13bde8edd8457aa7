"""One real-browser test: Voila serves the review app, Playwright drives Debian's chromium."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
from pathlib import Path

import pytest
from servers import free_port, wait_for_port

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed (.ci/run installs it)"),
]


@pytest.fixture
def demo(db_path: Path) -> Path:
    from payops.demo import build_demo

    build_demo(db_path, seed=42, days=30, customers=60, replace=True, progress=False)
    return db_path


@pytest.fixture
def voila(demo: Path, tmp_path: Path):
    """Voila serving notebooks/refund_review.ipynb as ana (reviewer); yields the page URL."""
    config = tmp_path / "payops.toml"
    config.write_text('[roles]\nreviewer = ["ana"]\nviewer = ["vic"]\n')
    port, token = free_port(), secrets.token_urlsafe(16)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PAYOPS_", "STRIPE_"))}
    env.update(PAYOPS_DB=str(demo), PAYOPS_USER="ana", PAYOPS_CONFIG=str(config), PAYOPS_DB_TIMEOUT="20")
    log = open(tmp_path / "voila.log", "w")
    proc = subprocess.Popen(
        [str(REPO / ".venv/bin/voila"), str(REPO / "notebooks/refund_review.ipynb"), "--no-browser",
         f"--port={port}", "--Voila.ip=127.0.0.1", "--strip_sources=True", f"--token={token}"],
        cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        wait_for_port("127.0.0.1", port, timeout=60, proc=proc)
        yield f"http://127.0.0.1:{port}/?token={token}"
    finally:
        # Its own process group: the kernel Voila started goes with it.
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=15)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        log.close()


def test_reviewer_approves_a_request_in_the_browser(voila: str, demo: Path, tmp_path: Path):
    from playwright.sync_api import expect, sync_playwright

    from payops import refunds
    from payops.audit import list_rows

    queue = refunds.queue(limit=25)
    rid = next(int(r.id) for r in queue.itertuples() if "LARGE" not in r.priorities)  # one approval suffices
    assert refunds.get(rid)["status"] == "PENDING"

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1100})
            page.goto(voila, timeout=60_000)
            box = page.locator(f".payops-select-{rid} input[type=checkbox]")
            box.wait_for(state="visible", timeout=120_000)  # the kernel starts and runs the notebook
            expect(page.locator(".payops-user")).to_have_text("ana")
            box.check()
            expect(page.locator(".payops-detail")).to_contain_text(f"Request #{rid}", timeout=30_000)
            page.locator(".payops-note textarea").fill("Approved in the browser test")
            page.locator("button.payops-approve").click()
            expect(page.locator(".payops-feedback")).to_contain_text("approved by ana", timeout=30_000)
            expect(page.locator(f".payops-select-{rid}")).to_have_count(0)  # it left the pending queue
            page.screenshot(path=str(ARTIFACTS / "review_app.png"), full_page=True)
        finally:
            browser.close()

    row = refunds.get(rid)
    assert row["status"] == "APPROVED"
    assert row["decided_by"] == "ana"
    audit = list_rows(entity="refund_request", entity_id=str(rid), limit=1)
    assert audit.iloc[0]["actor"] == "ana"
    assert audit.iloc[0]["action"] == "refund_request.approve"
    assert audit.iloc[0]["note"] == "Approved in the browser test"
    assert (ARTIFACTS / "review_app.png").stat().st_size > 10_000

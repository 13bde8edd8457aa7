"""Issue 13, CLI and messages: grouped failures with a summary, headers, no ``nan``, integer money, plurals."""

from __future__ import annotations

from click.testing import CliRunner
from test_refunds import seed_payment

from payops import refunds as R
from payops.cli import cli
from payops.text import plural, text_or


def run(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_plural_and_missing_text():
    assert [plural(n, "payment") for n in (0, 1, 2, 1234)] == ["0 payments", "1 payment", "2 payments",
                                                               "1,234 payments"]
    assert plural(1, "entry", "entries") == "1 entry" and plural(3, "entry", "entries") == "3 entries"
    assert [text_or(v, "-") for v in (None, float("nan"), "x", 0)] == ["-", "-", "x", "0"]


def test_identical_failures_are_one_line_and_a_summary(db_path):
    ids = [str(i) for i in range(101, 111)]
    out = run("refunds", "reject", *ids, "--note", "dup")
    assert out.exit_code == 1
    assert out.output.splitlines() == [
        "FAIL no refund request (10 requests: #101, #102, #103, #104, #105, #106, #107, #108, #109, #110)",
        "0 rejected, 10 failed.",
    ]


def test_mixed_results_keep_one_line_each_and_count(db_path):
    seed_payment(1)
    seed_payment(2)
    a = R.request("pi_1", reason="duplicate", amount=1000)
    b = R.request("pi_2", reason="duplicate", amount=1000)
    out = run("refunds", "approve", str(a.id), str(b.id), "999")
    assert out.exit_code == 1
    assert out.output.splitlines() == [
        f"ok   request approved by tester: $10.00 (2 requests: #{a.id}, #{b.id})",
        "FAIL no refund request 999",
        "2 approved, 1 failed.",
    ]
    out = run("refunds", "approve", str(a.id))  # already approved: one failure, not a traceback
    assert out.output.splitlines()[-1] == "0 approved, 1 failed."


def test_list_has_a_header_and_no_nan(db_path):
    seed_payment(1)
    req = R.request("pi_1", reason="duplicate", amount=1000)  # no note
    out = run("refunds", "list")
    lines = out.output.splitlines()
    assert lines[0].split() == ["id", "status", "priority", "amount", "age", "customer", "payment", "reason"]
    assert lines[1].startswith(f"#{req.id} ") and "pi_1" in lines[1]
    assert lines[-1] == "showing 1-1 of 1 request"
    shown = run("refunds", "show", str(req.id)).output
    assert "nan" not in shown.lower().split() and "None" not in shown, shown
    assert "note:" not in shown


def test_check_words_eligibility_like_the_review_app(db_path):
    from payops.ui.review_html import _eligibility

    seed_payment(1, amount=4500)
    out = run("refunds", "check", "pi_1")
    headline, reasons = R.eligibility_wording(R.check("pi_1"))
    assert (headline, reasons) == ("Eligible: $45.00 still refundable", [])
    assert f"{headline}." in out.output.splitlines()

    class Detail:  # what _eligibility reads of the app's detail
        verdict = R.check("pi_1", 99999)
        request: dict = {"currency": "usd"}

    headline, reasons = R.eligibility_wording(Detail.verdict)
    assert headline == "Not eligible" and reasons
    html = _eligibility(Detail())  # type: ignore[arg-type]  # a stand-in with the two fields it reads
    assert ">Not eligible</span>" in html
    out = run("refunds", "check", "pi_1", "--amount", "999.99")
    assert out.exit_code == 1 and "Not eligible:" in out.output.splitlines()


def test_query_prints_money_totals_as_integers(db_path):
    seed_payment(1, amount=4500)
    seed_payment(2, amount=1250)
    out = run("query", "SELECT sum(amount) AS total, count(*) AS n FROM charges")
    assert out.output.split() == ["total", "n", "5750", "2"], out.output
    out = run("query", "SELECT sum(amount) AS total FROM charges", "--format", "json")
    assert out.output.strip() == '[{"total":5750}]'


def test_a_connection_error_names_its_full_cause_without_secrets(monkeypatch):
    import socket

    import pytest

    from payops.errors import StripeUnavailable
    from payops.stripe_api import get_client

    with socket.socket() as s:  # a port on 127.0.0.1 nobody listens on any more
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("STRIPE_API_KEY", "sk_test_payopsunit0abcd")
    monkeypatch.setenv("STRIPE_API_BASE", f"http://127.0.0.1:{port}")
    with pytest.raises(StripeUnavailable) as caught:
        get_client(backoff=0, max_attempts=1).retrieve("charge", "ch_1")
    message = caught.value.message
    assert message.startswith("Stripe could not be reached after 1 attempt: ConnectionError: ")
    assert "Connection refused" in message and f"port={port}" in message, message
    assert "\n" not in message and "payopsunit" not in message and "support@stripe.com" not in message


def test_cause_chain_is_one_line_and_masks_keys():
    from payops.stripe_api.transport import cause_chain

    try:
        try:
            raise ConnectionRefusedError(111, "Connection refused")
        except OSError as inner:
            raise RuntimeError("proxy said: bad key sk_live_abcdef123 / Bearer rk_x") from inner
    except RuntimeError as exc:
        assert cause_chain(exc) == ("RuntimeError: proxy said: bad key [redacted] / [redacted] <- "
                                    "ConnectionRefusedError: [Errno 111] Connection refused")


def test_progress_bars_draw_only_on_a_terminal():
    import io

    from payops.progress import bar

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    log, tty = io.StringIO(), Terminal()
    for out in (log, tty):
        for _ in bar(range(3), enabled=True, file=out, desc="x"):
            pass
    assert log.getvalue() == "" and "3/3" in tty.getvalue()
    off = Terminal()
    list(bar(range(3), enabled=False, file=off))
    assert off.getvalue() == ""


def test_report_kernel_runs_without_the_tcp_warning(tmp_path):
    import asyncio

    from payops.reports import _kernel_manager_class

    async def start_and_stop() -> str:
        km = _kernel_manager_class()(kernel_name="python3", connection_file=str(tmp_path / "k.json"))
        err = open(tmp_path / "kernel.err", "w")  # noqa: SIM115  # closed below, after the kernel stops
        try:
            await km.start_kernel(stderr=err, stdout=err)
            kc = km.client()
            kc.start_channels()
            await kc.wait_for_ready(timeout=60)
            kc.stop_channels()
            await km.shutdown_kernel(now=True)
        finally:
            err.close()
        return km.transport

    assert asyncio.run(start_and_stop()) == "ipc"
    log = (tmp_path / "kernel.err").read_text()
    assert "without encryption" not in log, log


def test_counts_in_cli_lines_are_pluralised(db_path):
    from payops.db import connect

    seed_payment(1)
    out = run("fix", "--dry-run", "--kind", "booking_unknown_payment_intent")
    assert out.output.splitlines() == ["No inconsistencies found."]
    with connect() as con:
        con.execute("INSERT INTO bookings VALUES ('bk_x', 'pi_gone', 'cus_1', 'tut_1', now(), 'scheduled', now())")
    out = run("fix", "--dry-run", "--kind", "booking_unknown_payment_intent")
    assert out.output.splitlines()[-1] == "1 finding; nothing changed (--dry-run)."


HOSTILE = "eve\x1b]0;PWNED\x07\x1b[2J\x1b[8m\rfake\x9b\u202egro.elpmaxe@x.com"


def test_data_never_drives_the_terminal(db_path):
    """A customer's email with a window-title sequence, a screen clear, hidden text, a bare CR
    and a C1 control: every CLI line shows them escaped (the `payops` command's stdout guard)."""
    import subprocess
    import sys

    import factories as f

    from payops.ingest import ingest_objects

    seed_payment(1)
    ingest_objects([f.customer("cus_1", name="Student Number1", email=HOSTILE)])
    req = R.request("pi_1", reason="duplicate", amount=1000, note="note\x1b[1A\x1b[2Kforged line")
    outputs = [run(*args).output for args in (
        ("refunds", "list"), ("refunds", "show", str(req.id)),
        ("query", "SELECT email FROM customers"), ("query", "SELECT email FROM customers", "--format", "csv"))]
    # and through the real entry point, on a real pipe
    real = subprocess.run([sys.executable, "-m", "payops", "refunds", "list"], capture_output=True, text=True,
                          env={**__import__("os").environ, "PAYOPS_DB": str(db_path)}, timeout=120)
    outputs.append(real.stdout)
    for out in outputs:
        assert "eve" in out or "forged" in out, out
        assert not any(c in out for c in "\x1b\x07\x9b\u202e"), repr(out)
        assert "\r" not in out.replace("\r\n", "\n"), repr(out)
    assert "eve\\x1b]0;PWNED\\x07" in outputs[0]

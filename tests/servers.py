"""Start test servers on 127.0.0.1: free ports, readiness wait, localstripe subprocess.

What localstripe (1.15.x, as installed) actually does, measured with stripe-python 16.1.0
and the pinned API version "2026-10-28.endive" (it ignores Stripe-Version; the SDK works
against it unchanged). Asserted in tests/test_fake_stripe.py::test_localstripe_*.
Use tests/fake_stripe.py (FakeStripe) for everything localstripe lacks.

Lists
* Generic lists (customers, payment_intents, payouts, balance_transactions, ...) accept
  only ``limit`` and ``starting_after``; any other parameter -> HTTP 400
  ``{"error": {"type": "invalid_request_error", "message": "Unexpected <param>"}}``
  (no ``code``, no ``param``; SDK: InvalidRequestError). So ``created[...]`` and
  ``ending_before`` are refused there: "Unexpected created", "Unexpected ending_before".
* /v1/charges: accepts ``customer`` and ``created[gt]`` only (one key, value must be
  > 1500000000, else 400 "Bad request"); ``created[gte|lt|lte]`` or ``created=<int>`` ->
  HTTP 500 ``{"error": {"message": "Not implemented", ...}}`` (SDK: APIError).
  ``payment_intent=`` -> HTTP 500 with a plain-text body (SDK: APIError).
* /v1/refunds: accepts ``charge`` or ``payment_intent`` filters; ``created[...]`` -> HTTP 500
  plain-text "500 Internal Server Error" (SDK: APIError).
* /v1/events: accepts ``type`` (exact match only; ``charge.*`` matches nothing) and
  ``created[gt|gte|lt|lte]`` (any combination). ``types[]`` / ``types[0]`` -> 400
  "Unexpected types". No 30-day retention.
* /v1/disputes and /v1/balance/history do not exist (404 plain text / 500).
* Order: store insertion order, i.e. OLDEST FIRST, for customers, payment_intents, charges,
  refunds, payouts, events; only balance_transactions are sorted newest first.
  ``has_more`` is correct; ``limit`` has no maximum. An unknown ``starting_after`` id is
  silently ignored (you get the first page again -> an endless loop for a naive pager).

Events
* Only customer.*, payment_intent.succeeded / payment_intent.payment_failed, invoice.*,
  payout.*, plan/product/subscription events are emitted. Creating/confirming a payment or
  a refund emits NO charge.* and NO refund.* events (no charge.succeeded, charge.refunded,
  refund.created, charge.dispute.*).

Refunds
* POST /v1/refunds takes only ``charge`` | ``payment_intent``, ``amount``, ``metadata``;
  ``reason`` -> 400 "Unexpected reason".
* Idempotency-Key is ignored: the same key twice creates two refunds.
* No over-refund check (refunding 999999 on a 1000 charge succeeds), no
  charge_already_refunded / charge_disputed errors; refunding a failed payment -> 400
  "Cannot refund a failed payment." (no code). Errors never carry ``code``.

Object shapes (keys returned)
* customer: id, object, created, email, name, description, metadata, livemode, currency
  ("eur" by default), address, phone, shipping, preferred_locales, delinquent,
  default_source, discount, invoice_settings, legacy account_balance / business_vat_id,
  and embedded lists sources / subscriptions / tax_ids.
* payment_intent: id, object, amount, currency, customer, status, created, capture_method
  ("automatic_async"), client_secret, invoice, last_payment_error, livemode, metadata,
  next_action, payment_method, legacy ``charges`` list, and ``latest_charge`` ALWAYS
  EXPANDED (a charge dict, not an id). Missing: amount_received, application_fee_amount,
  payment_method_types.
* charge: id, object, amount, amount_refunded, balance_transaction (id), captured, created,
  currency, customer, description, failure_code, failure_message, invoice, livemode,
  metadata, paid, payment_intent, payment_method, receipt_email, receipt_number, refunded
  (amount <= amount_refunded), embedded ``refunds`` list, statement_descriptor, status.
  Missing: amount_captured, disputed, payment_method_details, application_fee_amount,
  outcome.
* refund: id, object, amount, balance_transaction, charge, created, currency, legacy
  ``date``, livemode, metadata, payment_intent (null when created with ``charge``),
  status ("succeeded"). Missing: reason, failure_reason.
* balance_transaction: id, object, amount, available_on, created, currency, description,
  exchange_rate (1.0, not null), fee (always 0), fee_details ([]), net, reporting_category,
  source, status, type ("charge" / "refund").
* Auth: any ``sk_...`` key (Bearer or Basic) works; without one -> 401 "Unauthorized".
* Payments: ``payment_intents.create(amount, currency, customer, payment_method=
  "pm_card_visa", confirm=True, payment_method_types=["card"])`` succeeds immediately;
  ``charges.create(source="tok_visa")`` -> 400 "Bad request".
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

LOCALSTRIPE_SCRIPT = Path(__file__).with_name("localstripe_server.py")


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_for_port(host: str, port: int, timeout: float = 10.0,
                  proc: subprocess.Popen | None = None) -> None:
    """Block until ``host:port`` accepts TCP connections; TimeoutError after ``timeout``.

    With ``proc``, fail early (RuntimeError) if that process exits meanwhile.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            pass
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server process exited with code {proc.returncode} "
                               f"before listening on {host}:{port}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"nothing listening on {host}:{port} after {timeout:.0f}s")
        time.sleep(0.05)


@contextlib.contextmanager
def localstripe(port: int | None = None, *, timeout: float = 20.0,
                log_path: str | os.PathLike | None = None) -> Iterator[str]:
    """Run tests/localstripe_server.py (in-memory, 127.0.0.1 only) with this interpreter.

    Yields its base URL, e.g. "http://127.0.0.1:54321", for
    ``stripe.StripeClient("sk_test_...", base_addresses={"api": url})``.
    Its output goes to ``log_path`` (default: discarded). Terminated (then killed) at exit.
    """
    host = "127.0.0.1"
    port = port or free_port(host)
    out = open(log_path, "ab") if log_path else subprocess.DEVNULL
    proc = subprocess.Popen([sys.executable, str(LOCALSTRIPE_SCRIPT), "--port", str(port)],
                            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        wait_for_port(host, port, timeout, proc=proc)
        yield f"http://{host}:{port}"
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        if log_path:
            out.close()

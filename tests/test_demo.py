"""The demo marketplace: deterministic, realistic, and consistent with the money rules."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import duckdb
import pytest
from click.testing import CliRunner
from dbread import rows

from payops.audit import GENESIS, row_hash
from payops.authority import audit_key
from payops.demo import TABLES, build_demo
from payops.errors import InvalidInput

AS_OF = date(2026, 11, 20)
MOMENT = datetime(2026, 11, 20, 12, tzinfo=UTC)
SMALL = dict(customers=60, days=20, as_of=AS_OF, progress=False)


def contents(path) -> dict[str, list]:
    """Every row of every table (schema_migrations records when the schema was made)."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        tables = [r[0] for r in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_name <> 'schema_migrations'"
        ).fetchall()]
        return {t: con.execute(f"SELECT * FROM {t} ORDER BY ALL").fetchall() for t in sorted(tables)}
    finally:
        con.close()


@pytest.fixture(scope="module")
def default_demo(tmp_path_factory):
    """The default-size demo (400 customers, 90 days), built once."""
    path = tmp_path_factory.mktemp("demo") / "default.duckdb"
    summary = build_demo(path, as_of=AS_OF, progress=False)
    return path, summary


@pytest.fixture
def small(tmp_path):
    path = tmp_path / "small.duckdb"
    return path, build_demo(path, seed=7, **SMALL)


def test_same_seed_and_as_of_give_identical_tables(tmp_path):
    a, b = tmp_path / "a.duckdb", tmp_path / "b.duckdb"
    build_demo(a, seed=3, **SMALL)
    build_demo(b, seed=3, **SMALL)
    ca, cb = contents(a), contents(b)
    assert set(TABLES) <= set(ca)
    for table in ca:
        assert ca[table] == cb[table], f"{table} differs between two builds with the same seed"
    assert all(ca[t] for t in TABLES), "every demo table has rows"


def test_different_seed_gives_different_data(tmp_path):
    a, b = tmp_path / "a.duckdb", tmp_path / "b.duckdb"
    build_demo(a, seed=1, **SMALL)
    build_demo(b, seed=2, **SMALL)
    ca, cb = contents(a), contents(b)
    assert ca["charges"] != cb["charges"] and ca["customers"] != cb["customers"]


def test_nothing_depends_on_the_wall_clock(small):
    path, _ = small
    # synced_at, applied_at and every created time are derived from as_of
    assert rows(path, "SELECT DISTINCT synced_at FROM charges") == [(MOMENT,)]
    assert rows(path, "SELECT DISTINCT applied_at FROM events") == [(MOMENT,)]
    start = MOMENT - timedelta(days=20)
    for table in ("customers", "payment_intents", "charges", "refunds", "balance_transactions", "disputes",
                  "payouts", "events"):
        lo, hi = rows(path, f"SELECT min(created), max(created) FROM {table}")[0]
        assert start <= lo and hi < MOMENT, table
    (bad,) = rows(path, "SELECT count(*) FROM refund_requests WHERE updated_at >= ? OR requested_at >= ?",
                  [MOMENT, MOMENT])[0]
    assert bad == 0
    (bad,) = rows(path, "SELECT count(*) FROM audit_log WHERE \"at\" >= ?", [MOMENT])[0]
    assert bad == 0


def test_summary(small):
    path, summary = small
    assert summary.path == path and summary.seed == 7 and summary.as_of == AS_OF
    assert summary.counts["payment_intents"] == summary.counts["bookings"] > 0
    assert "payments" in str(summary) and str(path) in str(summary)


def test_every_status_and_priority_among_refund_requests(small):
    path, _ = small
    statuses = {s for (s,) in rows(path, "SELECT DISTINCT status FROM refund_requests")}
    assert statuses == {"PENDING", "APPROVED", "REJECTED", "PROCESSING", "PROCESSED", "FAILED"}
    pending = rows(path, "SELECT requested_at, amount, currency FROM refund_requests WHERE status = 'PENDING'")
    ages = [(MOMENT - r[0]).total_seconds() / 86400 for r in pending]
    assert any(a > 3 for a in ages), "URGENT"
    assert any(1 <= a <= 3 for a in ages), "HIGH"
    assert any(r[1] > (5000 if r[2] in ("usd", "eur", "gbp", "jpy") else 0) for r in pending), "LARGE"
    assert any(a > 3 and r[1] > 5000 for a, r in zip(ages, pending, strict=False)), "URGENT and LARGE"


def test_refund_request_fields_are_consistent(small):
    path, _ = small
    reqs = rows(path, "SELECT id, status, requested_by, decided_by, decided_at, decision_note, second_approver, "
                      "stripe_refund_id, processed_at, failure_message, amount, currency, first_approver "
                      "FROM refund_requests ORDER BY id")
    cast = {"ana", "ben", "carla", "support-bot"}
    for (rid, status, by, decided_by, decided_at, note, second, refund_id, processed_at, failure,
         amount, _currency, first) in reqs:
        assert by in cast
        if status == "REJECTED":
            assert decided_by in cast and decided_by != by and decided_at and note
        if status == "PROCESSED" or (status == "PROCESSING" and refund_id):
            # PROCESSING with a refund: one waiting for the customer (payops/demo/lifecycles.py)
            assert (processed_at is not None) is (status == "PROCESSED") and refund_id
            ((meta, ramount, rstatus),) = rows(path, "SELECT metadata->>'payops_request_id', amount, status "
                                                     "FROM refunds WHERE id = ?", [refund_id])
            assert meta == str(rid) and ramount == amount
            assert rstatus == ("succeeded" if status == "PROCESSED" else "requires_action")
        else:
            assert refund_id is None and processed_at is None
        if status == "FAILED":
            assert failure and "{charge}" not in failure
        if status in ("APPROVED", "PROCESSING", "PROCESSED", "FAILED") and amount > 5000 and first != "policy":
            assert second and second != first and second != by
    (n,) = rows(path, "SELECT count(*) FROM refund_requests "
                      "WHERE status = 'APPROVED' AND second_approver IS NOT NULL")[0]
    assert n >= 1


def test_a_refund_waits_for_the_customer_and_the_returned_payout_is_sent_again(small):
    """The demo's requires_action refund (its request PROCESSING, surfaced in the review queue) and its
    pending payout (the failed payout's money sent again: not cash, not a reconciliation problem)."""
    from payops import payments, payouts, refunds

    path, _ = small
    [(rid, refund_id, amount, charge, bt)] = rows(path, """
        SELECT q.id, f.id, f.amount, f.charge, f.balance_transaction FROM refund_requests q
        JOIN refunds f ON f.id = q.stripe_refund_id WHERE f.status = 'requires_action'""")
    assert bt is None  # no money moved yet: no balance transaction, no transfer reversal
    assert rows(path, "SELECT count(*) FROM transfer_reversals WHERE source_refund = ?", [refund_id])[0][0] == 0
    assert rows(path, "SELECT amount_refunded FROM charges WHERE id = ?", [charge])[0][0] == amount  # as Stripe
    queue = refunds.queue(status=("PROCESSING",), db=path)
    row = queue[queue["id"] == rid].iloc[0]
    assert row["stripe_refund_status"] == "requires_action" and row["status"] == "PROCESSING"
    assert list(refunds.history(rid, db=path)["action"])[-2:] == ["refund_request.process",
                                                                  "refund_request.awaiting_refund"]
    df = payments.payouts(db=path)
    pending = df[df["status"] == "pending"].to_dict("records")
    failed = df[df["status"] == "failed"].to_dict("records")
    assert len(pending) == 1 and len(failed) == 1
    assert pending[0]["amount"] == failed[0]["amount"] and not pending[0]["cash"]
    ok, verdicts = payouts.reconcile(db=path)
    assert ok and [v.verdict for v in verdicts if v.status == "pending"] == ["pending: not settled yet"]


def test_audit_trail_is_chained_and_in_time_order(small):
    path, _ = small
    audit = rows(path, 'SELECT id, "at", actor, action, entity, entity_id, "before", after, note, prev_hash, hash '
                       "FROM audit_log ORDER BY id")
    assert audit
    prev = GENESIS
    for row in audit:
        assert row[9] == prev
        assert row[10] == row_hash(prev, row[0], row[1], *row[2:9], key=audit_key())
        prev = row[10]
    times = [r[1] for r in audit]
    assert times == sorted(times)
    actions = {r[3] for r in audit}
    assert {"refund_request.create", "refund_request.approve", "refund_request.reject",
            "refund_request.process"} <= actions
    (n_req,) = rows(path, "SELECT count(*) FROM refund_requests")[0]
    (n_create,) = rows(path, "SELECT count(*) FROM audit_log WHERE action = 'refund_request.create'")[0]
    assert n_create == n_req
    # a failure's audit note names the real charge, as the request's own message does
    fails = rows(path, "SELECT a.note, r.failure_message FROM audit_log a JOIN refund_requests r "
                       "ON a.entity_id = r.id::VARCHAR WHERE a.action = 'refund_request.fail'")
    assert fails and all(note == message and "{charge}" not in note for note, message in fails)


def test_yesterday_has_payments(small):
    path, _ = small
    yesterday = AS_OF - timedelta(days=1)
    (n,) = rows(path, "SELECT count(*) FROM payment_intents WHERE created::DATE = ?", [yesterday])[0]
    assert n >= 1


def test_default_size_volume_and_failure_rate(default_demo):
    path, summary = default_demo
    assert 2500 <= summary.counts["payment_intents"] <= 3300
    failed, total = rows(path, "SELECT count(*) FILTER (WHERE status = 'failed'), count(*) FROM charges")[0]
    assert 0.03 <= failed / total <= 0.06
    codes = {c for (c,) in rows(path, "SELECT DISTINCT failure_code FROM charges WHERE failure_code IS NOT NULL")}
    assert {"card_declined", "expired_card", "incorrect_cvc"} <= codes
    assert rows(path, "SELECT count(*) FROM charges "
                      "WHERE status = 'failed' AND balance_transaction IS NOT NULL")[0][0] == 0
    # a failed payment intent waits for a new payment method
    assert rows(path, "SELECT DISTINCT p.status FROM payment_intents p JOIN charges c ON c.id = p.latest_charge "
                      "WHERE c.status = 'failed'") == [("requires_payment_method",)]
    currencies = {c for (c,) in rows(path, "SELECT DISTINCT currency FROM charges")}
    assert currencies == {"usd", "eur", "gbp", "jpy", "kwd"}
    (non_usd,) = rows(path, "SELECT avg((currency <> 'usd')::INT) FROM payment_intents")[0]
    assert 0.01 <= non_usd <= 0.06
    (refunded,) = rows(path, "SELECT avg((amount_refunded > 0)::INT) FROM charges WHERE status = 'succeeded'")[0]
    assert 0.02 <= refunded <= 0.07
    dstatuses = {s for (s,) in rows(path, "SELECT DISTINCT status FROM disputes")}
    assert dstatuses == {"needs_response", "under_review", "won", "lost", "warning_needs_response",
                         "warning_under_review", "warning_closed"}  # inquiries: payops/demo/lifecycles.py
    bstatuses = {s for (s,) in rows(path, "SELECT DISTINCT status FROM bookings")}
    assert bstatuses == {"scheduled", "completed", "cancelled", "no_show"}
    assert rows(path, "SELECT count(*) FROM bookings WHERE status = 'scheduled' AND session_start <= ?",
                [MOMENT])[0][0] == 0
    # more volume on weekday afternoons and evenings (UTC) than at night
    evening, night = rows(path, "SELECT count(*) FILTER (WHERE hour(created) BETWEEN 15 AND 21), "
                                "count(*) FILTER (WHERE hour(created) BETWEEN 1 AND 7) FROM payment_intents")[0]
    assert evening > 3 * night


def test_money_is_consistent(default_demo):
    path, _ = default_demo
    bad = rows(path, """
        SELECT c.id FROM charges c LEFT JOIN (
            SELECT charge, sum(amount) AS total FROM refunds WHERE status IN ('succeeded', 'pending', 'requires_action')
            GROUP BY charge
        ) r ON r.charge = c.id
        WHERE c.captured AND (c.amount_refunded <> coalesce(r.total, 0)
           OR c.refunded <> (c.amount_refunded = c.amount_captured AND c.amount_captured > 0)
           OR c.amount_refunded > c.amount_captured)""")  # a released authorisation: amount_refunded = amount
    assert bad == []
    assert rows(path, "SELECT count(*) FROM balance_transactions WHERE net <> amount - fee")[0][0] == 0
    # Stripe's card fee on charges; the platform's 15% only in application_fee_amount
    for amount, fee, cur, app_fee in rows(path, """
            SELECT b.amount, b.fee, b.currency, c.application_fee_amount
            FROM balance_transactions b JOIN charges c ON c.balance_transaction = b.id"""):
        expected = {"usd": round(amount * 0.029) + 30, "jpy": round(amount * 0.036)}.get(cur)
        if expected is not None:
            assert abs(fee - expected) <= 1
        assert app_fee == amount * 15 // 100 or abs(app_fee - amount * 0.15) <= 0.5
    # JPY is zero-decimal: whole yen at yen prices
    for (amount,) in rows(path, "SELECT amount FROM charges WHERE currency = 'jpy'"):
        assert 3000 <= amount <= 12000 and amount % 500 == 0
    for (amount,) in rows(path, "SELECT amount FROM charges WHERE currency = 'usd'"):
        assert 2500 <= amount <= 12000 and amount % 100 == 0
    assert rows(path, "SELECT count(*) FROM charges WHERE currency = 'usd' AND amount > 5000")[0][0] > 0
    # the refund requests never exceed what is still refundable (an open request whose refund Stripe holds
    # is already in amount_refunded, as payops.refunds.eligibility counts it)
    over = rows(path, """
        SELECT c.id FROM charges c JOIN refund_requests q ON q.charge = c.id
        GROUP BY c.id, c.amount_captured, c.amount_refunded
        HAVING c.amount_refunded + coalesce(sum(q.amount) FILTER (
                   WHERE q.status IN ('PENDING', 'APPROVED', 'PROCESSING') AND q.stripe_refund_id IS NULL), 0)
               > c.amount_captured
            OR max(q.amount) > c.amount_captured
            OR bool_or(c.status <> 'succeeded' OR c.disputed)""")
    assert over == []
    # payouts: one automatic payout per day and currency (besides, the manual one that sends a failed
    # payout's money again), positive
    assert rows(path, "SELECT count(*) FROM payouts WHERE amount <= 0")[0][0] == 0
    assert rows(path, "SELECT count(*) FROM (SELECT created::DATE, currency FROM payouts "
                      "WHERE raw->>'$.automatic' = 'true' GROUP BY ALL HAVING count(*) > 1)")[0][0] == 0
    assert rows(path, "SELECT count(*) FROM payouts WHERE raw->>'$.automatic' = 'false'") == rows(
        path, "SELECT count(*) FROM payouts WHERE status = 'failed'")
    # disputes: the charge says so, and the balance moved
    assert rows(path, "SELECT count(*) FROM disputes d JOIN charges c ON c.id = d.charge "
                      "WHERE NOT c.disputed")[0][0] == 0
    assert rows(path, "SELECT count(*) FROM balance_transactions WHERE type = 'adjustment' "
                      "AND reporting_category = 'dispute'")[0][0] == rows(
        path, "SELECT count(*) FROM disputes WHERE status NOT LIKE 'warning_%'")[0][0]  # inquiries move no money


def test_references_are_ids_and_objects_look_like_stripe(default_demo):
    path, _ = default_demo
    ((raw,),) = rows(path, "SELECT raw FROM charges WHERE status = 'succeeded' ORDER BY id LIMIT 1")
    import json

    charge = json.loads(raw)
    for key in ("id", "object", "amount", "amount_captured", "amount_refunded", "application_fee_amount",
                "balance_transaction", "billing_details", "captured", "created", "currency", "customer",
                "description", "disputed", "failure_code", "failure_message", "livemode", "metadata",
                "outcome", "paid", "payment_intent", "payment_method", "payment_method_details",
                "receipt_email", "refunded", "status"):
        assert key in charge, key
    assert charge["livemode"] is False
    assert charge["id"].startswith("ch_3Q") and len(charge["id"]) == 3 + 24
    for key in ("customer", "payment_intent", "balance_transaction"):
        assert isinstance(charge[key], str)
    card = charge["payment_method_details"]["card"]
    assert charge["payment_method_details"]["type"] == "card"
    assert {"brand", "last4", "exp_month", "exp_year", "country", "funding"} <= set(card)
    assert rows(path, "SELECT count(*) FROM payment_intents WHERE booking_id IS NULL OR tutor_id IS NULL "
                      "OR metadata->>'session_start' IS NULL")[0][0] == 0
    assert rows(path, "SELECT count(*) FROM bookings b JOIN payment_intents p ON p.id = b.payment_intent "
                      "AND p.booking_id = b.booking_id")[0][0] == rows(path, "SELECT count(*) FROM bookings")[0][0]
    assert rows(path, "SELECT DISTINCT api_version FROM events") == [("2026-10-28.endive",)]


def test_existing_data_needs_replace(tmp_path):
    path = tmp_path / "r.duckdb"
    build_demo(path, seed=1, **SMALL)
    with pytest.raises(InvalidInput, match=r"already has data.*; use --replace"):
        build_demo(path, seed=2, **SMALL)
    build_demo(path, seed=1, replace=True, **SMALL)
    assert contents(path)["charges"]  # replaced, not appended
    (n,) = rows(path, "SELECT count(*) FROM refund_requests WHERE id = 1")[0]
    assert n == 1  # a fresh file: ids start again


def test_empty_database_is_filled_without_replace(tmp_path):
    from payops.db import connect

    path = tmp_path / "e.duckdb"
    with connect(path):
        pass
    build_demo(path, **SMALL)
    assert rows(path, "SELECT count(*) FROM charges")[0][0] > 0


def test_cli_demo(tmp_path):
    from payops.cli import cli

    path = tmp_path / "cli.duckdb"
    runner = CliRunner()
    args = ["demo", "--customers", "50", "--days", "10", "--db", str(path), "--as-of", "2026-11-20", "-q"]
    result = runner.invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "Demo marketplace in" in result.output and "seed 42" in result.output
    assert rows(path, "SELECT count(*) FROM charges")[0][0] > 0

    again = runner.invoke(cli, args, catch_exceptions=False)
    assert again.exit_code == 2 and "--replace" in again.output

    replaced = runner.invoke(cli, args + ["--replace"], catch_exceptions=False)
    assert replaced.exit_code == 0, replaced.output

    bad = runner.invoke(cli, ["demo", "--as-of", "20-11-2026", "--db", str(path)])
    assert bad.exit_code == 2 and "YYYY-MM-DD" in bad.output


def test_cli_demo_uses_payops_db_by_default(db_path):
    from payops.cli import cli

    result = CliRunner().invoke(cli, ["demo", "--customers", "20", "--days", "5", "-q"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert db_path.exists() and str(db_path) in result.output


def test_the_plan_needs_no_database_and_follows_the_seed():
    """Planning is pure (the same seed, the same marketplace); the builder turns the plan into objects."""
    from payops.demo.plan import plan_marketplace
    from payops.demo.stripe_objects import StripeBuilder

    def make(seed: int):
        return plan_marketplace(seed, 20, 60, AS_OF, large=dict.fromkeys(("usd", "eur", "gbp", "jpy", "kwd"), 5000),
                                request_ids=lambda n: list(range(1, n + 1)))

    a, b, other = make(5), make(5), make(6)
    assert (a.customers, a.payments, a.requests, a.audit) == (b.customers, b.payments, b.requests, b.audit)
    assert a.payments != other.payments
    assert {r.status for r in a.requests} == {"PENDING", "APPROVED", "REJECTED", "PROCESSING", "PROCESSED", "FAILED"}
    assert all(p.succeeded and p.dispute is None for p in a.payments if p.request is not None)
    assert all(r.payment_intent is None for r in a.requests)  # their ids are the builder's to draw

    builder = StripeBuilder(a)
    objects = builder.customers()
    payment_objects, bookings = builder.payments(0, len(a.payments))
    objects += payment_objects + builder.payouts()
    assert len(bookings) == len(a.payments) == sum(o["object"] == "payment_intent" for o in objects)
    ids = {o["id"] for o in objects}
    assert all(r.payment_intent in ids and r.charge in ids for r in a.requests)
    assert {r.stripe_refund_id for r in a.requests if r.status == "PROCESSED"} <= ids

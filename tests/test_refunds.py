"""Refund rules: eligibility, the refundable-amount guard, transitions, priorities, the queue, the session rule."""

from __future__ import annotations

import copy
import time
from datetime import UTC, datetime, timedelta

import duckdb
import factories as f
import pytest
from click.testing import CliRunner

from payops import refunds as R
from payops.cli import cli
from payops.db import connect
from payops.errors import InvalidInput, NotEligible, NotFound
from payops.ingest import ingest_objects

NOW = int(time.time())


def seed_payment(n: int = 1, *, amount: int = 4500, currency: str = "usd", age_days: float = 1, booking=None,
                 session_start=None, fake=None, **charge_kw) -> tuple[str, str]:
    """A succeeded payment (customer, payment intent, charge) in the database (and in ``fake``)."""
    created = NOW - int(age_days * 86400)
    cus, pi, ch = f"cus_{n}", f"pi_{n}", f"ch_{n}"
    objs = [
        f.customer(cus, name=f"Student Number{n}"),
        f.payment_intent(pi, customer=cus, latest_charge=ch, amount=amount, amount_received=amount,
                         currency=currency, created=created, metadata={"booking_id": f"bk_{n}", "tutor_id": "tut_1"}),
        f.charge(ch, **{"customer": cus, "payment_intent": pi, "amount": amount, "amount_captured": amount,
                        "currency": currency, "created": created, **charge_kw}),
    ]
    ingest_objects(objs)
    if fake is not None:
        for o in objs:
            fake.add(copy.deepcopy(o))
    if booking:
        start = session_start or datetime.now(UTC) - timedelta(days=1)
        with connect() as con:
            con.execute("INSERT INTO bookings VALUES (?, ?, ?, 'tut_1', ?, ?, now())",
                        [f"bk_{n}", pi, cus, start, booking])
    return pi, ch


def write_toml(tmp_path, roles: dict | None = None, **refunds) -> None:
    """A payops.toml in the test's cwd (no [roles] keeps single-user mode)."""
    def toml(v) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, dict):
            return "{ " + ", ".join(f"{k} = {toml(x)}" for k, x in v.items()) + " }"
        if isinstance(v, (list, tuple)):
            return "[" + ", ".join(toml(x) for x in v) + "]"
        return f'"{v}"' if isinstance(v, str) else str(v)

    lines = []
    if roles:
        lines.append("[roles]")
        lines += [f"{k} = {toml(v)}" for k, v in roles.items()]
    if refunds:
        lines.append("[refunds]")
        lines += [f"{k} = {toml(v)}" for k, v in refunds.items()]
    (tmp_path / "payops.toml").write_text("\n".join(lines) + "\n")


def audit_rows(rid: int) -> list[tuple]:
    with connect() as con:
        return con.execute("SELECT actor, action FROM audit_log WHERE entity = 'refund_request' AND entity_id = ? "
                           "ORDER BY id", [str(rid)]).fetchall()


def set_status(rid: int, status: str, **cols) -> None:
    sets = {"status": status, **cols}
    with connect() as con:
        con.execute(f"UPDATE refund_requests SET {', '.join(f'{k} = ?' for k in sets)} WHERE id = ?",
                    list(sets.values()) + [rid])


# --------------------------------------------------------------------------- eligibility


def test_check_eligible_payment_reports_figures():
    seed_payment()
    v = R.check("pi_1")
    assert v.eligible and v.reasons == []
    p = v.payment
    assert (p["payment_intent"], p["charge"], p["currency"], p["captured"], p["refundable"]) == \
        ("pi_1", "ch_1", "usd", 4500, 4500)
    assert R.check("ch_1").payment["payment_intent"] == "pi_1"


@pytest.mark.parametrize("kw, words", [
    (dict(status="failed", amount_captured=0, captured=False), "status failed"),
    (dict(disputed=True), "disputed"),
    (dict(amount_refunded=4500, refunded=True), "already fully refunded"),
    (dict(age_days=200), "refund window"),
])
def test_ineligible_payments_say_why(kw, words):
    seed_payment(**kw)
    v = R.check("pi_1")
    assert not v.eligible and any(words in r for r in v.reasons), v.reasons
    with pytest.raises(NotEligible, match=words):
        R.request("pi_1", reason="requested_by_customer")


def test_every_reason_is_listed():
    seed_payment(disputed=True, age_days=400)
    reasons = R.check("pi_1", 999_999).reasons
    assert any("disputed" in r for r in reasons) and any("window" in r for r in reasons)
    assert any("more than the refundable" in r for r in reasons)


def test_refundable_guard_counts_refunds_and_other_open_requests():
    seed_payment(amount_refunded=1000)
    first = R.request("pi_1", reason="requested_by_customer", amount=2000)
    with pytest.raises(NotEligible, match=r"\$20.00 is more than the refundable \$15.00"):
        R.request("ch_1", reason="duplicate", amount=2000)
    # the default amount is all that is still refundable
    second = R.request("ch_1", reason="duplicate")
    assert second["amount"] == 1500 and first["amount"] == 2000
    with pytest.raises(NotEligible, match="nothing left to refund"):
        R.request("pi_1", reason="duplicate", amount=1)
    # a rejected request frees its amount again
    R.reject(first["id"], note="duplicate of another request")
    assert R.check("pi_1").payment["refundable"] == 2000


def test_approve_rechecks_eligibility_excluding_itself():
    seed_payment()
    r = R.request("pi_1", reason="requested_by_customer")  # the whole 45.00
    assert not R.check("pi_1", r["amount"]).eligible  # counted as an open request...
    assert R.check("pi_1", r["amount"], exclude=r["id"]).eligible  # ...unless excluded
    [res] = R.approve(r["id"])
    assert res.ok, res.message  # its own amount does not count against it
    seed_payment(2)
    r2 = R.request("pi_2", reason="requested_by_customer")
    with connect() as con:  # the payment was disputed meanwhile
        con.execute("UPDATE charges SET disputed = true WHERE id = 'ch_2'")
    [res] = R.approve(r2["id"])
    assert not res.ok and "disputed" in res.message and R.get(r2["id"])["status"] == "PENDING"


def test_request_input_errors():
    seed_payment()
    with pytest.raises(InvalidInput, match="unknown reason"):
        R.request("pi_1", reason="because")
    with pytest.raises(InvalidInput, match="positive"):
        R.request("pi_1", reason="duplicate", amount=0)
    with pytest.raises(NotFound, match="pi_nope"):
        R.request("pi_nope", reason="duplicate")
    with pytest.raises(InvalidInput, match="not a payment id"):
        R.check("cus_1")


def test_request_is_stored_and_audited():
    seed_payment()
    r = R.request("pi_1", reason="fraudulent", amount=1200, note="card stolen", requested_by="ana")
    assert (r["status"], r["amount"], r["currency"], r["charge"], r["customer"], r["requested_by"]) == \
        ("PENDING", 1200, "usd", "ch_1", "cus_1", "ana")
    assert audit_rows(r["id"]) == [("ana", "refund_request.create")]
    assert R.get(r["id"])["note"] == "card stolen"
    with pytest.raises(NotFound):
        R.get(999)


# --------------------------------------------------------------------------- transitions


def test_legal_decisions_pending_to_approved_and_rejected():
    seed_payment()
    a = R.request("pi_1", reason="duplicate", amount=1000)
    b = R.request("pi_1", reason="duplicate", amount=1000)
    [ra] = R.approve(a["id"], note="fine")
    [rb] = R.reject(b["id"], note="not a duplicate")
    assert (ra.ok, ra.status, rb.ok, rb.status) == (True, "APPROVED", True, "REJECTED")
    ga, gb = R.get(a["id"]), R.get(b["id"])
    assert (ga["decided_by"], ga["decision_note"]) == ("tester", "fine")
    assert (gb["decided_by"], gb["decision_note"]) == ("tester", "not a duplicate")
    assert audit_rows(a["id"])[-1] == ("tester", "refund_request.approve")
    assert audit_rows(b["id"])[-1] == ("tester", "refund_request.reject")
    h = R.history(b["id"])
    assert list(h["action"]) == ["refund_request.create", "refund_request.reject"]


def test_rejection_needs_a_note():
    seed_payment()
    r = R.request("pi_1", reason="duplicate")
    [res] = R.reject(r["id"], note="  ")
    assert not res.ok and "needs a note" in res.message
    assert R.get(r["id"])["status"] == "PENDING" and len(audit_rows(r["id"])) == 1


ILLEGAL = [
    ("approve", "REJECTED"), ("approve", "APPROVED"), ("approve", "PROCESSING"), ("approve", "PROCESSED"),
    ("reject", "APPROVED"), ("reject", "REJECTED"), ("reject", "PROCESSING"), ("reject", "PROCESSED"),
    ("reject", "FAILED"),
]


@pytest.mark.parametrize("action, status", ILLEGAL)
def test_illegal_transitions_change_nothing(action, status):
    seed_payment()
    r = R.request("pi_1", reason="duplicate")
    set_status(r["id"], status, decided_by="ana", decided_at=datetime(2025, 1, 2, tzinfo=UTC))
    before = R.get(r["id"])
    res = R.approve(r["id"]) if action == "approve" else R.reject(r["id"], note="no")
    [res] = res
    assert not res.ok and res.status == status
    if status in ("APPROVED", "REJECTED"):
        assert f"already {status.lower()} by ana at 2025-01-02" in res.message
    assert R.get(r["id"]) == before and len(audit_rows(r["id"])) == 1


def test_process_ignores_requests_that_are_not_approved():
    seed_payment()
    r = R.request("pi_1", reason="duplicate")
    for status in ("PENDING", "REJECTED", "PROCESSED", "FAILED"):
        set_status(r["id"], status)
        assert R.process(api=object()) == []  # nothing picked, Stripe never called
        assert R.get(r["id"])["status"] == status


def test_failed_goes_back_to_approved_for_a_retry():
    seed_payment()
    r = R.request("pi_1", reason="duplicate")
    set_status(r["id"], "FAILED", failure_message="Stripe said no")
    [res] = R.approve(r["id"], note="try again")
    assert res.ok and res.status == "APPROVED"
    g = R.get(r["id"])
    assert (g["status"], g["retries"], g["failure_message"]) == ("APPROVED", 1, None)
    assert audit_rows(r["id"])[-1] == ("tester", "refund_request.retry")
    assert R.idempotency_key(r["id"], g["retries"]) == f"payops-refund-{r['id']}-retry1"


def test_unknown_request_is_a_result_not_an_exception():
    [res] = R.approve(42)
    assert not res.ok and "no refund request 42" in res.message


# --------------------------------------------------------------------------- priorities and the queue


def _aged(rid: int, days: float) -> None:
    with connect() as con:
        con.execute("UPDATE refund_requests SET requested_at = now() - to_microseconds(?) WHERE id = ?",
                    [int(days * 86400e6), rid])


def test_queue_page_is_one_screen_from_one_connection(monkeypatch):
    ids = []
    # (amount, age in days, currency): NORMAL, LARGE, HIGH, URGENT and LARGE, URGENT
    for i, (amount, age, cur) in enumerate([(1000, 0.1, "usd"), (6000, 0.2, "usd"), (1000, 2, "eur"),
                                            (6000, 4, "usd"), (1000, 5, "usd")], start=1):
        seed_payment(i, amount=amount, currency=cur)
        ids.append(R.request(f"pi_{i}", reason="duplicate")["id"])
        _aged(ids[-1], age)
    now = datetime.now(UTC)
    real, opened = duckdb.connect, [0]

    def counting(*args, **kwargs):
        opened[0] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(duckdb, "connect", counting)
    page = R.queue_page(page=1, page_size=2, now=now)
    assert opened[0] == 1
    assert (page.total, page.pages, page.page, page.offset) == (5, 3, 1, 2)
    assert list(page.rows["id"]) == list(R.queue(limit=2, offset=2, now=now)["id"]) == [ids[3 - 1], ids[2 - 1]]
    assert page.by_priority == R.pending_by_priority(now=now) == {"URGENT": 2, "HIGH": 1, "LARGE": 2, "NORMAL": 1,
                                                                        "ALL": 5}
    assert page.waiting is None and page.currencies == ["eur", "usd"]
    last = R.queue_page(page=7, page_size=2, now=now)  # past the end: the last page
    assert last.page == 2 and list(last.rows["id"]) == [ids[0]]
    large = R.queue_page(priority="LARGE", sort="amount", page_size=10, now=now)
    assert large.total == 2 and large.by_priority == page.by_priority and set(large.rows["id"]) == {ids[1], ids[3]}
    none = R.queue_page(status="APPROVED", page=3)
    assert (none.total, none.page, none.pages) == (0, 0, 1)
    assert none.rows.empty and list(none.rows.columns) == list(R.QUEUE_COLUMNS)
    with connect() as con:
        opened[0] = 0
        again = R.queue_page(page=1, page_size=2, now=now, con=con)  # the caller's connection, left open
        assert opened[0] == 0 and con.execute("SELECT 1").fetchone() == (1,)
    assert list(again.rows["id"]) == list(page.rows["id"])
    with pytest.raises(InvalidInput, match="unknown sort"):
        R.queue_page(sort="id")


def test_queue_order_and_badges():
    ids = {}
    # name: (amount, age in days)
    plan = {"normal": (1000, 0.1), "large": (6000, 0.2), "high": (1000, 2), "high_large": (6000, 1.5),
            "urgent": (1000, 4), "urgent_large": (6000, 3.5), "urgent_older": (1000, 5)}
    for i, (name, (amount, age)) in enumerate(plan.items(), start=1):
        seed_payment(i, amount=amount)
        ids[name] = R.request(f"pi_{i}", reason="duplicate")["id"]
        _aged(ids[name], age)
    q = R.queue()
    order = [next(k for k, v in ids.items() if v == rid) for rid in q["id"]]
    assert order == ["urgent_large", "urgent_older", "urgent", "high_large", "high", "large", "normal"]
    badges = dict(zip(q["id"], q["priorities"], strict=False))
    assert badges[ids["urgent_large"]] == ["URGENT", "LARGE"] and badges[ids["normal"]] == []
    assert badges[ids["high"]] == ["HIGH"]
    row = q.iloc[0]
    assert row["amount_display"] == "$60.00" and row["customer_email"] == "cus_6@example.com"
    assert 83 < row["age_hours"] < 85
    counts = R.pending_by_priority()
    assert counts == {"URGENT": 3, "HIGH": 2, "LARGE": 3, "NORMAL": 1, "ALL": 7}
    # said as parts of the total by age, LARGE apart (it overlaps them)
    assert R.pending_parts(counts) == ([("URGENT", 3), ("HIGH", 2), ("newer", 2)], [("LARGE", 3)])
    assert list(R.queue(priority="LARGE")["id"]) == [ids["urgent_large"], ids["high_large"], ids["large"]]
    assert list(R.queue(limit=2, offset=1)["id"]) == [ids["urgent_older"], ids["urgent"]]
    assert R.queue_count(priority="URGENT") == 3
    assert list(R.queue(search="NUMBER2")["id"]) == [ids["large"]]
    assert list(R.queue(min_amount=5000, priority="HIGH")["id"]) == [ids["high_large"]]
    assert R.queue(status="APPROVED").empty and list(R.queue(status="APPROVED").columns) == list(R.QUEUE_COLUMNS)
    assert len(R.queue(status=None)) == 7


def test_large_threshold_per_currency_from_config(tmp_path):
    write_toml(tmp_path, large_above={"default": "100.00", "jpy": "5000"})
    seed_payment(1, amount=6000)                   # $60: not large at 100.00
    seed_payment(2, amount=6000, currency="jpy")   # ¥6000: large
    a = R.request("pi_1", reason="duplicate")["id"]
    b = R.request("pi_2", reason="duplicate")["id"]
    q = R.queue()
    assert list(q["id"]) == [b, a] and q.iloc[0]["amount_display"] == "¥6,000"


def test_cli_list_shows_badges_ages_amounts():
    seed_payment(1, amount=6000)
    rid = R.request("pi_1", reason="duplicate")["id"]
    _aged(rid, 4.2)
    result = CliRunner().invoke(cli, ["refunds", "list"], catch_exceptions=False)
    assert result.exit_code == 0
    assert "🔥 URGENT" in result.output and "💰 LARGE" in result.output
    assert "$60.00" in result.output and "4d 4h" in result.output and "showing 1-1 of 1" in result.output


def test_cli_request_in_major_units_and_check():
    seed_payment(1, amount=4500)
    seed_payment(2, amount=4500, currency="jpy")
    runner = CliRunner()
    out = runner.invoke(cli, ["refunds", "request", "pi_1", "--amount", "12.50", "--reason", "duplicate",
                              "--note", "double booking"], catch_exceptions=False)
    assert out.exit_code == 0 and "$12.50" in out.output
    assert R.get(1)["amount"] == 1250
    out = runner.invoke(cli, ["refunds", "request", "pi_2", "--amount", "12.5", "--reason", "duplicate"])
    assert out.exit_code == 2 and "more decimals than JPY" in out.output
    out = runner.invoke(cli, ["refunds", "check", "pi_1"], catch_exceptions=False)
    assert out.exit_code == 0 and "refundable $32.50" in out.output
    assert "Eligible: $32.50 still refundable." in out.output  # the review app's words (eligibility_wording)
    out = runner.invoke(cli, ["refunds", "check", "pi_1", "--amount", "40"], catch_exceptions=False)
    assert out.exit_code == 1 and "more than the refundable $32.50" in out.output


def test_cli_bulk_commands_report_each_and_fail_if_any_failed():
    seed_payment()
    R.request("pi_1", reason="duplicate", amount=1000)
    R.request("pi_1", reason="duplicate", amount=1000)
    runner = CliRunner()
    out = runner.invoke(cli, ["refunds", "approve", "1", "7"], catch_exceptions=False)
    assert out.exit_code == 1
    assert "ok   request 1 approved by tester" in out.output and "FAIL no refund request 7" in out.output
    out = runner.invoke(cli, ["refunds", "reject", "2", "--note", "no"], catch_exceptions=False)
    assert out.exit_code == 0 and "request 2 rejected" in out.output
    out = runner.invoke(cli, ["refunds", "reject", "2"])
    assert out.exit_code == 2 and "--note" in out.output


def test_cli_import_requests(tmp_path):
    seed_payment(1)
    seed_payment(2)
    csv = tmp_path / "requests.csv"
    csv.write_text("payment,amount,reason,note\npi_1,10.00,duplicate,x\npi_2,99.00,duplicate,too much\n"
                   "ch_2,,requested_by_customer,\n")
    out = CliRunner().invoke(cli, ["refunds", "import", str(csv)], catch_exceptions=False)
    assert out.exit_code == 1
    lines = out.output.splitlines()
    assert lines[0].startswith("ok") and "$10.00 on pi_1" in lines[0]
    assert lines[1].startswith("FAIL") and "line 3" in lines[1] and "more than the refundable" in lines[1]
    assert "$45.00 on ch_2" in lines[2]
    assert R.queue_count() == 2


# --------------------------------------------------------------------------- session rule


@pytest.mark.parametrize("booking, start_days, approved", [
    ("cancelled", -1, True), ("no_show", -1, True), ("scheduled", +2, True),
    ("completed", -1, False), ("scheduled", -1, False),
])
def test_session_rule(booking, start_days, approved):
    seed_payment(booking=booking, session_start=datetime.now(UTC) + timedelta(days=start_days))
    r = R.request("pi_1", reason="requested_by_customer", amount=3000)
    results = R.apply_policy()
    g = R.get(r["id"])
    if approved:
        assert [x.ok for x in results] == [True]
        assert (g["status"], g["decided_by"]) == ("APPROVED", "policy")
        assert audit_rows(r["id"])[-1] == ("policy", "refund_request.approve")
    else:
        assert results == [] and g["status"] == "PENDING"


def test_session_rule_respects_cap_large_and_eligibility(tmp_path):
    write_toml(tmp_path, auto_approve_cap="20.00")
    seed_payment(1, booking="cancelled")
    seed_payment(2, booking="cancelled", amount=9000)
    seed_payment(3, booking="cancelled")
    over_cap = R.request("pi_1", reason="requested_by_customer", amount=2500)["id"]
    under_cap = R.request("pi_2", reason="requested_by_customer", amount=2000)["id"]
    write_toml(tmp_path, auto_approve_cap="1000.00")
    large = R.request("pi_2", reason="requested_by_customer", amount=6000)["id"]
    ineligible = R.request("pi_3", reason="requested_by_customer", amount=1000)["id"]
    with connect() as con:
        con.execute("UPDATE charges SET disputed = true WHERE id = 'ch_3'")
    write_toml(tmp_path, auto_approve_cap="20.00")
    results = {r.request_id: r for r in R.apply_policy()}
    assert set(results) == {under_cap, ineligible}
    assert results[under_cap].ok and not results[ineligible].ok and "disputed" in results[ineligible].message
    assert R.get(over_cap)["status"] == R.get(large)["status"] == R.get(ineligible)["status"] == "PENDING"
    assert R.apply_policy()[0].request_id == ineligible  # approved ones are not touched again


def test_queue_works_on_demo_data(tmp_path):
    demo = pytest.importorskip("payops.demo")
    if not hasattr(demo, "build_demo"):
        pytest.skip("payops.demo.build_demo not there yet")
    demo.build_demo(None, seed=1, days=20, customers=30, progress=False)
    with connect() as con:
        statuses = dict(con.execute("SELECT status, count(*) FROM refund_requests GROUP BY 1").fetchall())
    assert sum(statuses.values()) > 0
    q = R.queue(status=None, limit=20)
    assert len(q) == min(20, sum(statuses.values()))
    assert list(q["priority_rank"]) == sorted(q["priority_rank"])
    assert sum(R.pending_by_priority()[k] for k in ("URGENT", "HIGH")) <= statuses.get("PENDING", 0)
    pending = R.queue(limit=1)
    if len(pending):
        v = R.check(pending.iloc[0]["payment_intent"])
        assert v.payment["charge"] == pending.iloc[0]["charge"]

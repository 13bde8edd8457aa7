"""The pure pieces of payops.refunds: eligibility reasons, the transitions table, priorities,
the SQL forms of the rules (checked against the Python ones on a real DuckDB), and the
writes other modules use (repairs, erasure, the demo's bulk insert, audit.rows)."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from test_refunds import seed_payment

from payops import audit, refunds
from payops import refunds as R
from payops.config import RefundPolicy, get_settings
from payops.db import connect, transaction
from payops.errors import InvalidInput

NOW = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)
POLICY = RefundPolicy()
FACTS = R.PaymentFacts(payment_intent="pi_1", charge="ch_1", customer="cus_1", currency="usd", amount=4500,
                       captured=4500, refunded=0, open_requests=0, disputed=False, status="succeeded",
                       created=NOW - timedelta(days=10))


# --------------------------------------------------------------------------- eligibility_reasons


def test_an_eligible_payment_has_no_reasons():
    assert R.eligibility_reasons(FACTS, None, POLICY, NOW) == []
    assert R.eligibility_reasons(FACTS, 4500, POLICY, NOW, currency="USD") == []


@pytest.mark.parametrize("changes, amount, currency, words", [
    (dict(status="failed", captured=0), None, None,
     "payment ch_1 has status failed; only succeeded payments can be refunded"),
    (dict(status="requires_payment_method", charge=None, captured=0), None, None,
     "payment pi_1 has status requires_payment_method; only succeeded payments can be refunded"),
    (dict(disputed=True), None, None,
     "payment ch_1 is disputed; a refund would be paid twice (answer the dispute instead)"),
    (dict(refunded=4500), None, None, "payment ch_1 is already fully refunded ($45.00)"),
    (dict(refunded=1500, open_requests=3000), None, None,
     "nothing left to refund on ch_1: captured $45.00 - refunded $15.00 - open requests $30.00"),
    ({}, None, "eur", "the request is in EUR but payment ch_1 is in USD"),
    ({}, 0, None, "the amount must be positive, got $0.00"),
    ({}, -5, None, "the amount must be positive, got -$0.05"),
    (dict(refunded=1000, open_requests=500), 3001, None,
     "$30.01 is more than the refundable $30.00 (captured $45.00 - refunded $10.00 - open requests $5.00)"),
    (dict(created=NOW - timedelta(days=181)), None, None,
     "payment ch_1 was made 181 days ago, outside the 180-day refund window"),
])
def test_every_reason(changes, amount, currency, words):
    assert R.eligibility_reasons(replace(FACTS, **changes), amount, POLICY, NOW, currency=currency) == [words]


def test_reasons_add_up_and_only_the_stronger_of_two_overlapping_ones_shows():
    facts = replace(FACTS, disputed=True, refunded=4500, created=NOW - timedelta(days=400))
    reasons = R.eligibility_reasons(facts, 100, POLICY, NOW, currency="jpy")
    assert [r.split(" ")[0:3] for r in reasons] == [
        ["payment", "ch_1", "is"], ["payment", "ch_1", "is"], ["the", "request", "is"], ["payment", "ch_1", "was"]]
    assert not any("nothing left" in r for r in reasons)  # "fully refunded" already says it
    assert not any("more than the refundable" in r for r in reasons)  # nothing refundable: said above


DISPUTED = "payment ch_1 is disputed; a refund would be paid twice (answer the dispute instead)"


@pytest.mark.parametrize("status, blocks, note", [
    ("warning_needs_response", False, True), ("warning_under_review", False, True), ("warning_closed", False, False),
    ("needs_response", True, False), ("under_review", True, False), ("won", False, False), ("lost", True, False),
])
def test_only_a_chargeback_blocks_a_refund_an_open_inquiry_is_a_note(status, blocks, note):
    # the charge's flag stays true whatever the stored dispute's status: the stored disputes decide
    facts = replace(FACTS, disputed=True, disputes=(status,))
    assert R.eligibility_reasons(facts, None, POLICY, NOW) == ([DISPUTED] if blocks else [])
    assert facts.open_chargeback is blocks and facts.as_dict()["disputed"] is blocks
    notes = R.eligibility_notes(facts)
    assert notes == ([f"payment ch_1 has an open inquiry ({status}): the card issuer is asking, no money was taken; "
                      "a refund is allowed and usually settles it"] if note else [])


def test_an_inquiry_next_to_a_chargeback_still_blocks_and_the_flag_counts_only_without_disputes():
    both = replace(FACTS, disputed=True, disputes=("warning_closed", "needs_response"))
    assert R.eligibility_reasons(both, None, POLICY, NOW) == [DISPUTED]
    assert R.eligibility_reasons(replace(FACTS, disputed=True), None, POLICY, NOW) == [DISPUTED]
    assert R.eligibility_reasons(replace(FACTS, disputes=("warning_under_review",)), None, POLICY, NOW) == []


def test_notes_are_worded_after_the_reasons_the_same_for_the_cli_and_the_app():
    ok = R.Verdict(eligible=True, reasons=[], payment={"refundable": 4500, "currency": "usd"}, notes=["asked"])
    assert R.eligibility_wording(ok) == ("Eligible: $45.00 still refundable", ["note: asked"])
    no = R.Verdict(eligible=False, reasons=["too old"], payment={}, notes=["asked"])
    assert R.eligibility_wording(no) == ("Not eligible", ["too old", "note: asked"])


def test_refund_window_edges_and_no_window():
    on_the_edge = replace(FACTS, created=NOW - timedelta(days=180))
    assert R.eligibility_reasons(on_the_edge, None, POLICY, NOW) == []
    old = replace(FACTS, created=NOW - timedelta(days=900))
    assert R.eligibility_reasons(old, None, replace(POLICY, refund_window_days=None), NOW) == []
    assert R.eligibility_reasons(replace(FACTS, created=None), None, POLICY, NOW) == []


def test_refundable_never_below_zero():
    assert replace(FACTS, refunded=4000, open_requests=2000).refundable == 0


# --------------------------------------------------------------------------- the transitions table

LEGAL = {
    ("PENDING", "PENDING"), ("PENDING", "APPROVED"), ("PENDING", "REJECTED"),
    ("APPROVED", "PROCESSING"), ("APPROVED", "FAILED"), ("APPROVED", "PROCESSED"),
    ("PROCESSING", "PROCESSING"), ("PROCESSING", "PROCESSED"), ("PROCESSING", "FAILED"),
    ("PROCESSED", "PROCESSED"), ("PROCESSED", "FAILED"),
    ("FAILED", "APPROVED"), ("FAILED", "PROCESSED"),
}


def test_the_table_is_exactly_the_documented_transitions():
    assert set(R.TRANSITIONS) == LEGAL
    assert all(a in R.STATUSES and b in R.STATUSES for a, b in R.TRANSITIONS)
    assert not any(a == "REJECTED" for a, _ in R.TRANSITIONS)  # a rejection is final


@pytest.mark.parametrize("pair", sorted(itertools.product(R.STATUSES, repeat=2)))
def test_every_pair(pair):
    a, b = pair
    if pair in LEGAL:
        for action in R.TRANSITIONS[pair]:
            R.check_transition(a, b, action)
        with pytest.raises(R.IllegalTransition, match="cannot move a refund request"):
            R.check_transition(a, b, "teleport")
    else:
        for action in {x for acts in R.TRANSITIONS.values() for x in acts}:
            with pytest.raises(R.IllegalTransition, match=f"cannot go from {a} to {b}"):
                R.check_transition(a, b, action)


def test_actions_per_pair():
    assert R.TRANSITIONS[("PENDING", "REJECTED")] == {"reject"}
    assert R.TRANSITIONS[("FAILED", "APPROVED")] == {"retry"}
    assert "reject" not in R.TRANSITIONS[("PENDING", "APPROVED")]


def _pending_request(amount=1000) -> R.RefundRequest:
    seed_payment(amount=max(amount, 4500))
    return R.request("pi_1", reason="duplicate", amount=amount)


def test_transition_writes_the_row_and_its_audit_row_or_nothing():
    req = _pending_request()
    with connect() as con, transaction(con):
        with pytest.raises(R.IllegalTransition):
            R.transition(con, req, "PROCESSED", action="processed", actor="ana")
        with pytest.raises(ValueError, match="cannot set id"):
            R.transition(con, req, "REJECTED", action="reject", actor="x", changes={"id": 9})
        done = R.transition(con, req, "REJECTED", action="reject", actor="ana", note="no",
                            changes={"decided_by": "ana", "decision_note": "no"})
        # the same (stale) request again: the row no longer matches, nothing is written
        assert R.transition(con, req, "APPROVED", action="approve", actor="ben") is None
    assert done is not None and done.status == "REJECTED" and done.decided_by == "ana"
    assert R.get(req.id) == done
    hist = R.history(req.id)
    assert list(hist["action"]) == ["refund_request.create", "refund_request.reject"]


def test_processing_bookkeeping_keeps_the_moment_processing_began():
    req = _pending_request()
    start = NOW - timedelta(hours=5)
    with connect() as con, transaction(con):
        req = R.transition(con, req, "APPROVED", action="approve", actor="ana", at=start)
        req = R.transition(con, req, "PROCESSING", action="process", actor="carla", at=start)
        req = R.transition(con, req, "PROCESSING", action="reconcile", actor="carla", changes={"attempts": 2})
    assert req.updated_at == start and req.attempts == 2


# --------------------------------------------------------------------------- the request row


def test_refund_request_is_a_fixed_set_of_fields():
    req = _pending_request()
    assert req.status == req["status"] == req.get("status") == "PENDING"
    assert list(req) == list(R.COLUMNS) and len(req) == len(R.COLUMNS)
    with pytest.raises(KeyError):
        req["_previous_attempts"]
    assert req.get("_previous_attempts") is None
    with pytest.raises(AttributeError):
        req.status = "APPROVED"  # type: ignore[misc]  # frozen: the point of the test
    assert dict(req) == req.as_dict()


# --------------------------------------------------------------------------- priorities


@pytest.mark.parametrize("status, age_h, amount, currency, expected", [
    ("PENDING", 73, 100, "usd", ["URGENT"]),
    ("PENDING", 72, 100, "usd", ["HIGH"]),  # exactly 3 days: not yet URGENT
    ("PENDING", 25, 5001, "usd", ["HIGH", "LARGE"]),
    ("PENDING", 24, 5000, "usd", []),  # exactly a day, exactly the threshold: neither
    ("PENDING", 1, 5001, "jpy", ["LARGE"]),  # JPY's own threshold is 5000 yen
    ("PENDING", 1, 5000, "jpy", []),
    ("APPROVED", 200, 100, "usd", []),  # age counts only while PENDING
    ("APPROVED", 200, 9000, "usd", ["LARGE"]),
])
def test_priorities(status, age_h, amount, currency, expected):
    requested = NOW - timedelta(hours=age_h)
    assert R.priorities(status, requested, amount, currency, POLICY, NOW) == expected
    assert R.priority(status, requested, amount, currency, POLICY, NOW) == (expected[0] if expected else "NORMAL")


def test_large_is_the_configured_threshold(tmp_path):
    (tmp_path / "payops.toml").write_text('[refunds]\nlarge_above = { default = "10.00", jpy = "900" }\n')
    assert R.large_threshold("usd") == 1000 and R.large_threshold("jpy") == 900
    assert R.is_large(1001, "usd", get_settings().refund_policy) and not R.is_large(1000, "usd", POLICY)


# --------------------------------------------------------------------------- the SQL forms agree


def _rows():
    statuses = R.STATUSES
    out = []
    for i, (status, age_h, amount, cur) in enumerate(itertools.product(
            statuses, (0.5, 24, 25, 72, 73, 200), (100, 5000, 5001, 50000, 50001), ("usd", "jpy", "krw"))):
        requested = NOW - timedelta(hours=age_h)
        decided = None if status == "PENDING" else requested + timedelta(hours=(i % 5) * 7)
        out.append((i, status, requested, amount, cur, decided, decided if status == "PROCESSED" else None))
    return out


def test_sql_and_python_rules_agree():
    rows = _rows()
    with connect() as con:
        con.execute("CREATE TEMP TABLE r (id INT, status VARCHAR, requested_at TIMESTAMPTZ, amount BIGINT, "
                    "currency VARCHAR, decided_at TIMESTAMPTZ, processed_at TIMESTAMPTZ, updated_at TIMESTAMPTZ)")
        con.executemany("INSERT INTO r VALUES (?, ?, ?, ?, ?, ?, ?, ?)", [(*x, x[2]) for x in rows])
        urgent, high = R.priority_cutoffs(POLICY, NOW)
        moments = [NOW - timedelta(hours=h) for h in (0, 30, 72, 100)]
        pend = ", ".join(f"{R.pending_at_sql(f'$t{k}')} AS p{k}" for k in range(len(moments)))
        got = con.execute(
            f"""WITH th AS ({R.large_thresholds_sql(['usd', 'jpy', 'krw', "x'); DROP TABLE r; --"])})
                SELECT r.id, {R.priority_sql(urgent_before='$u', high_before='$h', large='th.large')},
                       {R.open_sql()}, {R.decided_at_sql()}, {pend}
                FROM r LEFT JOIN th USING (currency) ORDER BY r.id""",
            {"u": urgent, "h": high, **{f"t{k}": m for k, m in enumerate(moments)}}).fetchall()
    assert len(got) == len(rows)
    for (i, status, requested, amount, cur, decided, processed), (gid, prio, is_open, dec, *pending) in zip(
            rows, got, strict=True):
        assert gid == i
        assert prio == R.priority(status, requested, amount, cur, POLICY, NOW), (status, requested, amount, cur)
        assert is_open == (status in R.OPEN_STATUSES)
        moment = R.decided_moment(status, decided, processed, requested)
        assert dec == moment
        assert pending == [R.is_pending_at(m, requested, moment) for m in moments]


def test_pending_at_edges():
    t = NOW
    assert R.is_pending_at(t, t, None)  # asked at t: pending at t
    assert not R.is_pending_at(t, t + timedelta(seconds=1), None)
    assert not R.is_pending_at(t, t - timedelta(days=1), t)  # decided at t: no longer pending at t
    assert R.is_pending_at(t, t - timedelta(days=1), t + timedelta(seconds=1))
    assert R.decided_moment("PENDING", None, None, t) is None
    assert R.decided_moment("REJECTED", None, None, t) == t


# --------------------------------------------------------------------------- writes for other modules


def _processed(refund_id="re_1") -> R.RefundRequest:
    req = _pending_request()
    done = {"stripe_refund_id": refund_id, "processed_at": NOW - timedelta(days=1)}
    with connect() as con, transaction(con):
        for to, action in (("APPROVED", "approve"), ("PROCESSING", "process"), ("PROCESSED", "processed")):
            req = R.transition(con, req, to, action=action, actor="ana", changes=done if to == "PROCESSED" else None)
    return req


def test_repairs_are_transitions_with_their_audit_rows():
    req = _processed(refund_id=None)
    with connect() as con, transaction(con):
        assert R.link_refund(con, req.id, "re_9", actor="fixer", audit_action="maintenance.fix.x", note="why")
        assert not R.mark_processed(con, req.id, "FAILED", "re_9", NOW, actor="fixer")  # not FAILED: no change
        assert R.mark_failed(con, req.id, "payops fix: gone", "re_9", actor="fixer")
        assert not R.mark_failed(con, req.id, "again", None, actor="fixer")  # no longer PROCESSED
        assert R.mark_processed(con, req.id, "FAILED", "re_10", NOW, actor="fixer")
    got = R.get(req.id)
    assert (got.status, got.stripe_refund_id, got.failure_message) == ("PROCESSED", "re_10", None)
    assert got.processed_at == NOW - timedelta(days=1)  # the first processed_at is kept
    actions = list(R.history(req.id)["action"])[-3:]
    assert actions == ["maintenance.fix.x", "refund_request.fail", "refund_request.mark_processed"]
    assert audit.verify_chain().ok


def test_set_texts_only_touches_free_text():
    req = _pending_request()
    with connect() as con, transaction(con):
        R.set_texts(con, ["note"], [(req.id, ["[erased]"])])
        with pytest.raises(InvalidInput, match="free-text"):
            R.set_texts(con, ["amount"], [(req.id, ["1"])])
    assert R.get(req.id).note == "[erased]"


def test_insert_many_and_audit_rows_for_generated_histories():
    seed_payment()
    at = NOW - timedelta(days=1)
    with connect() as con, transaction(con):
        ids = R.new_ids(con, 2)
        reqs = [R.RefundRequest(id=i, payment_intent="pi_1", charge="ch_1", customer="cus_1", amount=100 * (k + 1),
                                currency="usd", reason="duplicate", note=None, status="PENDING",
                                requested_by="demo", requested_at=at, updated_at=at)
                for k, i in enumerate(ids)]
        assert R.insert_many(con, reqs) == 2
        new = audit.rows(con, [audit.Entry("demo", "refund_request.create", "refund_request", r.id,
                                           after={"status": "PENDING"}, at=at) for r in reqs])
        with pytest.raises(InvalidInput, match="non-positive"):
            R.insert_many(con, [replace(reqs[0], id=ids[-1] + 5, amount=0)])
    assert [R.get(i) for i in ids] == reqs
    assert len(new) == 2 and new == sorted(new)
    later = R.request("pi_1", reason="duplicate", amount=100)  # the sequence moved past the bulk ids
    assert later.id > max(ids)
    assert audit.verify_chain().ok


def test_import_csv_reports_each_line(tmp_path):
    seed_payment(1)
    path = tmp_path / "r.csv"
    path.write_text('payment,reason,amount,note\npi_1,duplicate,10.00,"two\nlines"\npi_1,nope,,\n'
                    "pi_1,duplicate,0.001,\n")
    lines = R.import_csv(path)
    assert [(x.line, x.ok) for x in lines] == [(2, True), (4, False), (5, False)]
    assert lines[0].request is not None and lines[0].request.note == "two\nlines"
    assert "unknown reason 'nope'" in lines[1].message and "more decimals than USD" in lines[2].message
    (tmp_path / "bad.csv").write_text("payment,amount\npi_1,1\n")
    with pytest.raises(InvalidInput, match="needs columns payment and reason"):
        R.import_csv(tmp_path / "bad.csv")


def test_public_names():
    promised = ("check request get queue queue_count pending_by_priority approve reject apply_policy process "
                "reconcile history sync_refund_failures large_threshold idempotency_key STATUSES REASONS "
                "PRIORITIES OPEN_STATUSES Verdict ActionResult RefundRequest TRANSITIONS transition "
                "IllegalTransition eligibility_reasons").split()
    assert set(promised) <= set(refunds.__all__)
    assert all(hasattr(refunds, n) for n in refunds.__all__)
    assert not [n for n in refunds.__all__ if n.startswith("_")]

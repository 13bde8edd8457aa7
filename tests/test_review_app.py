"""The refund review app (payops.ui.review), driven in Python like a person would click it."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import factories as F
import pytest

from payops import refunds
from payops.audit import list_rows
from payops.errors import PayopsError
from payops.ingest import ingest_objects
from payops.ui.review import RefundReview

# 24 payments: cus_0..cus_23; every 6th in EUR; amounts 20.00 .. 66.00 (LARGE above 50.00).
N = 24


def _amount(i: int) -> int:
    return 2000 + 200 * i


def _objects(i: int) -> list[dict]:
    now = int(time.time()) - 7200
    cur = "eur" if i % 6 == 0 else "usd"
    amount = _amount(i)
    return [
        F.customer(f"cus_{i}", email=f"student{i}@example.com", name=f"Student {i}", created=now),
        F.payment_intent(f"pi_{i}", customer=f"cus_{i}", latest_charge=f"ch_{i}", amount=amount,
                         amount_received=amount, currency=cur, application_fee_amount=amount * 15 // 100,
                         created=now, metadata={"booking_id": f"bk_{i}", "tutor_id": "tut_1"}),
        F.charge(f"ch_{i}", customer=f"cus_{i}", payment_intent=f"pi_{i}", balance_transaction=f"txn_{i}",
                 amount=amount, amount_captured=amount, currency=cur, application_fee_amount=amount * 15 // 100,
                 created=now),
        F.balance_transaction(f"txn_{i}", source=f"ch_{i}", amount=amount, fee=100 + i, net=amount - 100 - i,
                              currency=cur, created=now),
    ]


@pytest.fixture(scope="module")
def _template(tmp_path_factory) -> tuple[Path, dict[str, int]]:
    # Built once through the real library, then copied for each test (keeps the suite short).
    db = tmp_path_factory.mktemp("review") / "template.duckdb"
    ingest_objects([o for i in range(N) for o in _objects(i)], db=db)
    out = {}
    for i in range(N):
        req = refunds.request(f"pi_{i}", reason="requested_by_customer", requested_by="support",
                              note=f"request {i}", db=db)
        out[f"pi_{i}"] = int(req["id"])
    return db, out


@pytest.fixture
def requests(_template, db_path) -> dict[str, int]:
    """A database with N pending refund requests; returns payment intent -> request id."""
    shutil.copyfile(_template[0], db_path)
    return dict(_template[1])


@pytest.fixture
def roles(tmp_path, monkeypatch):
    """A payops.toml: ana and ben review, carla is senior and processor, vic only views."""
    path = tmp_path / "payops.toml"
    path.write_text(
        '[roles]\nviewer = ["vic"]\nreviewer = ["ana", "ben"]\nsenior = ["carla"]\nprocessor = ["carla"]\n'
    )
    monkeypatch.setenv("PAYOPS_CONFIG", str(path))
    return path


def _audit(request_id: int):
    return list_rows(entity="refund_request", entity_id=str(request_id), limit=None)


# --------------------------------------------------------------------- filters and paging
def test_first_page_is_the_queue_in_priority_order(requests):
    app = RefundReview(page_size=10)
    assert app.total == N and app.pages == 3
    assert len(app.ids) == 10
    # Fresh requests are neither URGENT nor HIGH: LARGE ones (> 50.00) come first.
    large = [int(r) for r in app.rows["amount"]]
    assert all(a > 5000 for a in large[: sum(1 for i in range(N) if _amount(i) > 5000)][:10])
    assert "💰 LARGE" in app._row_html[0].value
    assert "⏳ PENDING" in app._row_html[0].value
    # Rows past the page are hidden, page rows are shown.
    assert all(line.layout.display == "flex" for line in app._row_lines[:10])


def test_paging_walks_every_request_once(requests):
    app = RefundReview(page_size=10)
    seen = list(app.ids)
    assert app.w_prev.disabled and not app.w_next.disabled
    app.w_next.click()
    assert app.page == 1
    seen += app.ids
    app.w_next.click()
    seen += app.ids
    assert app.w_next.disabled and len(app.ids) == N - 20
    assert sorted(seen) == sorted(requests.values())
    assert "Page 3 of 3" in app.w_page.value
    app.w_prev.click()
    assert app.page == 1
    # Rows not on the last page are hidden there.
    app.go_to(2)
    assert [line.layout.display for line in app._row_lines[N - 20:]] == ["none"] * (10 - (N - 20))


def test_filters_give_the_right_rows(requests):
    app = RefundReview(page_size=50)
    app.w_currency.value = "eur"  # through the widget, as a person does
    eur = {requests[f"pi_{i}"] for i in range(N) if i % 6 == 0}
    assert set(app.ids) == eur and app.total == len(eur)
    app.set_filter(currency=None, min_amount="50.00")
    assert set(app.ids) == {requests[f"pi_{i}"] for i in range(N) if _amount(i) >= 5000}
    assert app.w_min.value == "50.00"
    app.set_filter(min_amount=None)
    app.w_search.value = "student7@"
    assert app.ids == [requests["pi_7"]]
    app.set_filter(search="PI_13")  # payment ids, case-insensitive
    assert app.ids == [requests["pi_13"]]
    app.set_filter(search=None, priority="LARGE")
    assert set(app.ids) == {requests[f"pi_{i}"] for i in range(N) if _amount(i) > 5000}
    app.set_filter(priority=None, status="APPROVED")
    assert app.ids == [] and "No refund requests match" in app.w_empty.value
    with pytest.raises(TypeError):
        app.set_filter(colour="red")


def test_priorities_follow_age(requests):
    later = datetime.now(UTC) + timedelta(days=4)
    app = RefundReview(page_size=50, now=later)
    assert all("🔥 URGENT" in h.value for h in app._row_html[:N])
    app.set_filter(priority="HIGH")
    assert app.total == 0
    assert "🔥 URGENT <b>24</b>" in app.header.value


# --------------------------------------------------------------------- decisions
def test_tick_and_approve_changes_the_database_with_the_user_in_the_audit(requests, roles):
    app = RefundReview(user="ana", page_size=50)
    i = app.ids.index(requests["pi_3"])  # 26.00: one approval is enough
    app._row_boxes[i].value = True  # tick its box
    assert app.selected == {requests["pi_3"]}
    assert "Stripe fee" in app.w_detail.value and "Net" in app.w_detail.value
    app.w_note.value = "Tutor confirmed"
    app.w_approve.click()
    row = refunds.get(requests["pi_3"])
    assert row["status"] == "APPROVED" and row["decided_by"] == "ana"
    audit = _audit(requests["pi_3"])
    assert audit.iloc[0]["actor"] == "ana" and audit.iloc[0]["action"] == "refund_request.approve"
    assert audit.iloc[0]["note"] == "Tutor confirmed"
    assert "approved by ana" in app.feedback
    assert "class=\"ok\"" in app.w_feedback.value
    assert requests["pi_3"] not in app.ids  # it left the pending queue
    assert app.w_note.value == ""  # the note went with the decision
    assert app.selected == set()


def test_bulk_approve_of_the_whole_page(requests, roles):
    app = RefundReview(user="ana", page_size=50)
    app.set_filter(currency="eur")
    app.w_select_all.value = True
    assert app.selected == set(app.ids) and len(app.ids) == 4
    results = app.approve()
    assert len(results) == 4 and all(r.ok for r in results)
    # 56.00 is LARGE: ana's approval is the first of two, so it stays pending.
    assert app.ids == [requests["pi_18"]]
    assert "first approval by ana" in app.feedback
    approved = refunds.queue(status="APPROVED", currency="eur", limit=None)
    assert sorted(approved["id"]) == sorted(requests[f"pi_{i}"] for i in (0, 6, 12))


def test_reject_without_a_note_changes_nothing_and_says_why(requests, roles):
    app = RefundReview(user="ana")
    rid = requests["pi_5"]
    before = len(_audit(rid))
    app.select([rid])
    app.w_note.value = ""
    app.w_reject.click()
    assert refunds.get(rid)["status"] == "PENDING"
    assert len(_audit(rid)) == before
    assert "nothing changed" in app.feedback and "needs a note" in app.feedback
    assert 'class="bad"' in app.w_feedback.value
    app.reject("Session was held")
    assert refunds.get(rid)["status"] == "REJECTED"
    assert _audit(rid).iloc[0]["actor"] == "ana"


def test_a_viewer_cannot_approve_and_is_told_the_missing_role(requests, roles):
    app = RefundReview(user="vic")
    rid = requests["pi_4"]
    app.select([rid])
    app.approve()
    assert refunds.get(rid)["status"] == "PENDING"
    assert "vic lacks the reviewer or senior role" in app.feedback
    assert app.w_process.disabled  # not a processor
    app.w_process.click()  # disabled in a browser; scripted, it still refuses
    assert app.w_confirm.layout.display == "none"
    assert "processor role" in app.feedback


def test_two_reviewers_deciding_the_same_request(requests, roles):
    ana, ben = RefundReview(user="ana"), RefundReview(user="ben")
    rid = requests["pi_2"]
    ana.select([rid])
    ben.select([rid])
    ana.approve()
    ben.reject("duplicate request")
    row = refunds.get(rid)
    assert row["status"] == "APPROVED" and row["decided_by"] == "ana"
    assert "already approved by ana" in ben.feedback
    assert "nothing changed" in ben.feedback
    ben.approve()
    assert "already approved by ana" in ben.feedback
    assert [a for a in _audit(rid)["actor"]] == ["ana", "support"]


def test_large_request_needs_a_second_senior_approval(requests, roles):
    rid = requests["pi_20"]  # 60.00 > 50.00
    ana = RefundReview(user="ana").select([rid])
    ana.approve()
    assert refunds.get(rid)["status"] == "PENDING"
    assert "first approval by ana" in ana.feedback
    carla = RefundReview(user="carla").select([rid])
    carla.approve()
    assert refunds.get(rid)["status"] == "APPROVED"
    assert "second approval" in carla.feedback


def test_nothing_selected_is_a_message_not_an_error(requests):
    app = RefundReview()
    assert app.approve() == []
    assert "tick one or more requests" in app.feedback


def test_process_asks_for_confirmation_first(requests, roles):
    carla = RefundReview(user="carla")
    carla.select([requests["pi_1"]]).approve()
    assert not carla.w_process.disabled
    carla.w_process.click()
    assert carla.w_confirm.layout.display == "flex"
    assert "Send 1 approved refund(s) to Stripe?" in carla.w_confirm_text.value
    assert "$22.00" in carla.w_confirm_text.value
    assert refunds.get(requests["pi_1"])["status"] == "APPROVED"  # nothing sent yet
    carla.w_confirm_no.click()
    assert carla.w_confirm.layout.display == "none"
    assert refunds.get(requests["pi_1"])["status"] == "APPROVED"


def test_process_through_the_app_sends_to_stripe(requests, roles, monkeypatch):
    from fake_stripe import FakeStripe

    carla = RefundReview(user="carla")
    carla.select([requests["pi_1"]]).approve()
    with FakeStripe() as fake:
        for o in _objects(1):
            if o["object"] in ("charge", "payment_intent", "customer"):
                fake.add(o)
        monkeypatch.setenv("STRIPE_API_KEY", fake.api_key)
        monkeypatch.setenv("STRIPE_API_BASE", fake.url)
        carla.w_process.click()
        carla.w_confirm_yes.click()
    row = refunds.get(requests["pi_1"])
    assert row["status"] == "PROCESSED", carla.feedback
    assert row["stripe_refund_id"].startswith("re_")
    assert carla.w_confirm.layout.display == "none"
    assert f"#{requests['pi_1']} PROCESSED" in carla.feedback


def test_detail_pane_shows_breakdown_verdict_history_and_links(requests):
    app = RefundReview()
    rid = requests["pi_9"]
    app.select([rid])
    html = app.w_detail.value
    assert f"Request #{rid}" in html
    assert "$38.00" in html  # amount 38.00 -> 15% platform fee 5.70, Stripe fee 1.09
    assert "$5.70" in html and "$1.09" in html
    assert f"${(3800 - 109 - 570) / 100:.2f}" in html  # net
    assert "✅ eligible" in html
    assert "https://dashboard.stripe.com/test/payments/pi_9" in html
    assert "https://dashboard.stripe.com/test/customers/cus_9" in html
    assert "refund_request.create" in html and "support" in html
    assert "session" in html


def test_the_app_holds_no_database_connection(requests, db_path):
    app = RefundReview()
    app.select([requests["pi_0"]])
    # Another process can open (and write) the file while the app is alive.
    code = ("import duckdb, sys; con = duckdb.connect(sys.argv[1]);"
            " con.execute('CREATE TABLE probe AS SELECT 1 AS x');"
            " print(con.execute('SELECT x FROM probe').fetchone()[0])")
    out = subprocess.run([sys.executable, "-c", code, str(db_path)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "1"
    assert app.total == N


def test_text_repr_is_short_and_stable(requests):
    app = RefundReview(user="ana")
    bundle = app._repr_mimebundle_()
    assert bundle["text/plain"] == "RefundReview(user='ana')"
    assert "application/vnd.jupyter.widget-view+json" in bundle


def test_an_empty_database_shows_an_empty_queue(db_path):
    app = RefundReview()
    assert app.total == 0 and app.ids == [] and app.pages == 1
    assert "No refund requests match" in app.w_empty.value
    assert all(line.layout.display == "none" for line in app._row_lines)
    assert app.w_prev.disabled and app.w_next.disabled


# --------------------------------------------------------------------- library reads the app uses
def test_queue_sorts_by_age_amount_and_priority(requests):
    base = datetime.now(UTC)
    by_age = refunds.queue(sort="age", limit=None, now=base)
    assert list(by_age["id"]) == sorted(requests.values())  # made one after the other
    by_amount = refunds.queue(sort="amount", limit=None, now=base)
    # Amounts compare within a currency only: EUR first (alphabetical), each largest first.
    pairs = list(zip(by_amount["currency"], by_amount["amount"], strict=True))
    assert pairs == sorted(pairs, key=lambda p: (p[0], -p[1]))
    assert pairs[0] == ("eur", _amount(18))
    by_priority = refunds.queue(limit=None, now=base)
    assert list(by_priority["id"]) == list(refunds.queue(sort="priority", limit=None, now=base)["id"])
    with pytest.raises(PayopsError, match="unknown sort"):
        refunds.queue(sort="id; DROP TABLE refund_requests")


def test_waiting_for_lists_large_requests_a_senior_may_second(requests, roles):
    large = [requests[f"pi_{i}"] for i in (16, 20, 23)]  # 52.00, 60.00, 66.00
    refunds.approve(large[:2], user="ana")  # first approvals
    assert refunds.queue_count(waiting_for="carla") == 2
    assert set(refunds.queue(waiting_for="carla")["id"]) == set(large[:2])
    assert refunds.queue_count(waiting_for="ana") == 0  # ana gave the first approvals
    refunds.approve(large[0], user="carla")  # second approval: no longer waiting
    assert list(refunds.queue(waiting_for="carla")["id"]) == [large[1]]


def test_customer_history_lists_other_requests_and_disputes(requests, db_path):
    ts = int(time.time()) - 7200
    extra = [
        F.payment_intent("pi_h1", customer="cus_3", latest_charge="ch_h1", amount=1000,
                         amount_received=1000, created=ts),
        F.charge("ch_h1", customer="cus_3", payment_intent="pi_h1", amount=1000, amount_captured=1000,
                 balance_transaction=None, created=ts),
        F.payment_intent("pi_h2", customer="cus_3", latest_charge="ch_h2", amount=1500,
                         amount_received=1500, created=ts),
        F.charge("ch_h2", customer="cus_3", payment_intent="pi_h2", amount=1500, amount_captured=1500,
                 balance_transaction=None, disputed=True, created=ts),
        F.dispute("dp_h2", charge="ch_h2", payment_intent="pi_h2", amount=1500, created=ts),
    ]
    ingest_objects(extra, db=db_path)
    earlier = refunds.request("pi_h1", reason="duplicate", requested_by="support")
    refunds.reject(earlier["id"], note="duplicate of another", user="tester")
    hist = refunds.customer_history("cus_3", exclude=requests["pi_3"])
    assert list(hist["requests"]["id"]) == [earlier["id"]]
    assert hist["requests"].iloc[0]["status"] == "REJECTED"
    assert list(hist["disputes"]["id"]) == ["dp_h2"]
    both = refunds.customer_history("cus_3")
    assert set(both["requests"]["id"]) == {earlier["id"], requests["pi_3"]}
    assert refunds.customer_history("cus_none")["requests"].empty
    assert refunds.queue_count(customer="cus_3", status=None) == 2

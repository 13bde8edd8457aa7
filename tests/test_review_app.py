"""The refund review app (payops.ui.review), driven in Python like a person would click it.

Every behaviour is exercised through the widgets (``Button.click()``, setting a checkbox's or a
field's value), the way a reviewer's browser changes them.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import factories as F
import pandas as pd
import pytest

from payops import payments, refunds
from payops.audit import list_rows
from payops.db import connect
from payops.errors import NotFound, PayopsError
from payops.ingest import ingest_objects
from payops.service import LocalActions
from payops.ui import review_html as H
from payops.ui.review import RefundReview

# 24 payments: cus_0..cus_23; every 6th in EUR; amounts 20.00 .. 66.00 (LARGE above 50.00).
N = 24


def _amount(i: int) -> int:
    return 2000 + 200 * i


def _id(req) -> int:
    return int(req["id"] if isinstance(req, dict) else req.id)


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
        out[f"pi_{i}"] = _id(req)
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


def _app(user: str | None = None, **kw) -> RefundReview:
    """The app as ``user``, deciding through the library: what ``payops serve`` does for the hub's user."""
    return RefundReview(user=user, actions=LocalActions(user), **kw)


def _audit(request_id: int):
    return list_rows(entity="refund_request", entity_id=str(request_id), limit=None)


# Emoji and pictographs (and the emoji variation selector): drawn as empty boxes without an emoji font.
_EMOJI = re.compile("[\U0001F000-\U0001FAFF\u2600-\u27BF\u2B00-\u2BFF\uFE0F]")


def _all_html(app: RefundReview) -> str:
    parts = [app.header.value, app.w_selection.value, app.w_feedback.value, app.w_confirm_text.value,
             app.pane.title.value, app.pane.state.value, app.pane.detail.value]
    parts += [c.value for c in app.queue.cells]
    labels = [w.description for w in (app.w_approve, app.w_reject, app.w_process, app.w_refresh,
                                      app.pane.approve, app.pane.reject, app.w_prev, app.w_next)]
    labels += [label for w in (app.w_status, app.w_priority, app.w_sort) for label, _ in w.options]
    return "\n".join(parts + labels)


def _tick(app: RefundReview, rid: int, value: bool = True) -> None:
    """Tick a row's box as a person does (the checkbox's value changes)."""
    app.queue.boxes[app.ids.index(rid)].value = value


# --------------------------------------------------------------------- the queue
def test_first_page_is_the_queue_in_priority_order_with_text_badges(requests):
    app = RefundReview(page_size=10)
    assert app.total == N and app.pages == 3
    assert len(app.ids) == 10
    # Fresh requests are neither URGENT nor HIGH: LARGE ones (> 50.00) come first.
    large = sum(1 for i in range(N) if _amount(i) > 5000)
    assert all(int(a) > 5000 for a in app.rows["amount"][:large])
    first = app.queue.cells[0].value
    assert 'payops-b-large">LARGE</span>' in first and 'payops-b-pending">PENDING</span>' in first
    assert all(line.layout.display == "flex" for line in app.queue.lines[:10])
    assert app.queue.buttons[0].description == f"#{app.ids[0]}"
    # Badges are words with a colour: nothing depends on an emoji font.
    assert not _EMOJI.search(_all_html(app))


def test_the_detail_pane_is_beside_the_queue_and_the_first_request_is_open(requests):
    app = RefundReview()
    split = app.widget.children[-1]
    assert split.children == (app.queue.widget, app.pane.widget)
    assert split.layout.flex_flow == "row wrap"  # beside it; below it only on a narrow screen
    assert app.opened == app.ids[0]
    assert f"Request #{app.ids[0]}" in app.pane.title.value
    assert "payops-row-open" in app.queue.lines[0]._dom_classes


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
    assert "Page 3 of 3" in app.queue.page.value
    assert [line.layout.display for line in app.queue.lines[N - 20:]] == ["none"] * (10 - (N - 20))
    app.w_prev.click()
    assert app.page == 1


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
    assert app.ids == [] and "No refund requests match" in app.queue.empty.value
    assert app.opened is None and "Open a request" in app.pane.title.value
    with pytest.raises(TypeError):
        app.set_filter(colour="red")


def test_sort_by_age_amount_and_priority_through_the_dropdown(requests):
    app = RefundReview(page_size=50)
    priority_order = list(app.ids)
    app.w_sort.value = "age"
    assert app.ids == sorted(requests.values())  # oldest first
    app.w_sort.value = "amount"
    eur = [requests[f"pi_{i}"] for i in (18, 12, 6, 0)]
    assert app.ids[:4] == eur  # largest first within each currency
    usd = [int(a) for a, c in zip(app.rows["amount"], app.rows["currency"], strict=True) if c == "usd"]
    assert usd == sorted(usd, reverse=True)
    app.w_sort.value = "priority"
    assert app.ids == priority_order
    assert [label for label, _ in app.w_sort.options] == ["Priority", "Oldest first", "Largest amount (per currency)"]


def test_priorities_follow_age(requests):
    later = datetime.now(UTC) + timedelta(days=4)
    app = RefundReview(page_size=50, now=later)
    assert all("URGENT</span>" in c.value for c in app.queue.cells[:N])
    app.set_filter(priority="HIGH")
    assert app.total == 0
    assert 'payops-b-urgent">URGENT</span> <b>24</b>' in app.header.value


# --------------------------------------------------------------------- safety: only what is on screen
def test_a_tick_hidden_by_a_search_is_never_approved(requests, roles):
    """The defect of issue 13: tick #66, type a search that hides it, press Approve."""
    app = _app("ana", page_size=50)
    hidden, visible = requests["pi_5"], requests["pi_7"]
    _tick(app, hidden)
    assert app.selected == {hidden} and "1 selected" in app.w_selection.value
    app.w_search.value = "student7@"  # hides it
    assert app.ids == [visible]
    assert app.selected == set() and app.ticked == []
    assert f"Unticked 1 request no longer on screen: #{hidden}" in app.w_selection.value
    assert app.w_approve.disabled  # nothing ticked on screen
    app.w_approve.click()
    app.approve()  # scripted, past the disabled button: still nothing
    assert refunds.get(hidden)["status"] == "PENDING"
    assert "tick one or more requests first" in app.feedback
    _tick(app, visible)
    app.w_approve.click()  # one request: no confirmation needed
    assert refunds.get(visible)["status"] == "APPROVED"
    assert refunds.get(hidden)["status"] == "PENDING"
    app.set_filter(search=None)
    assert hidden in app.ids and app.selected == set()  # it does not come back ticked


def test_ticks_do_not_survive_a_page_change_or_a_filter(requests, roles):
    app = _app("ana", page_size=10)
    app.w_select_all.value = True
    assert app.selected == set(app.ids) and len(app.ids) == 10
    app.w_next.click()
    assert app.selected == set() and "Unticked 10 requests" in app.w_selection.value
    assert app.approve() == []
    assert refunds.queue_count(status="APPROVED") == 0


def test_select_refuses_requests_that_are_not_on_screen(requests):
    app = RefundReview(page_size=5)
    off = next(i for i in requests.values() if i not in app.ids)
    app.select([app.ids[0], off])
    assert app.selected == {app.ids[0]}
    assert f"Not ticked (not on screen): #{off}" in app.w_selection.value
    app.open(off)
    assert app.opened != off and "is not on screen" in app.feedback


def test_the_selection_line_shows_the_count_and_totals_per_currency(requests):
    app = RefundReview(page_size=50)
    for i in (0, 6, 1):  # 20.00 EUR, 32.00 EUR, 22.00 USD
        _tick(app, requests[f"pi_{i}"])
    assert "3 selected</b>: €52.00 and $22.00" in app.w_selection.value
    assert app.w_approve.description == "Approve 3 selected"
    _tick(app, requests["pi_1"], False)
    assert "2 selected</b>: €52.00" in app.w_selection.value and "$" not in app.w_selection.value
    app.w_select_all.value = True
    assert f"{N} selected" in app.w_selection.value
    app.w_select_all.value = False
    assert "Nothing selected" in app.w_selection.value and app.w_approve.disabled


def test_bulk_approve_asks_for_a_confirmation_naming_count_and_totals(requests, roles):
    app = _app("ana", page_size=50)
    ids = [requests[f"pi_{i}"] for i in (0, 1, 2)]  # €20.00, $22.00, $24.00
    for rid in ids:
        _tick(app, rid)
    app.w_approve.click()
    assert app.w_confirm.layout.display == "flex"
    assert "Approve 3 requests, total €20.00 and $46.00?" in app.w_confirm_text.value
    assert app.w_confirm_yes.description == "Yes, approve 3 requests"
    assert all(refunds.get(i)["status"] == "PENDING" for i in ids)  # nothing yet
    app.w_confirm_no.click()
    assert app.w_confirm.layout.display == "none" and app.pending is None
    assert all(refunds.get(i)["status"] == "PENDING" for i in ids)
    app.w_approve.click()
    app.w_confirm_yes.click()
    assert all(refunds.get(i)["status"] == "APPROVED" for i in ids)
    assert app.feedback.startswith("Done: 3 requests approved.")
    assert app.selected == set()


def test_a_confirmation_is_cancelled_when_the_ticks_change(requests, roles):
    app = _app("ana", page_size=50)
    a, b, c = (requests[f"pi_{i}"] for i in (1, 2, 3))
    _tick(app, a)
    _tick(app, b)
    app.w_approve.click()
    assert app.pending is not None and app.pending.ids == [i for i in app.ids if i in (a, b)]
    _tick(app, c)  # the question no longer matches what is ticked
    assert app.pending is None and app.w_confirm.layout.display == "none"
    assert "confirmation was cancelled" in app.feedback
    assert app.confirm() == [] and "Nothing to confirm" in app.feedback
    app.w_approve.click()
    assert "Approve 3 requests" in app.w_confirm_text.value
    app.w_search.value = "student1@"  # a filter hides two of them
    assert app.pending is None
    assert all(refunds.get(i)["status"] == "PENDING" for i in (a, b, c))


def test_bulk_reject_needs_a_note_and_names_it_in_the_confirmation(requests, roles):
    app = _app("ana", page_size=50)
    a, b = requests["pi_1"], requests["pi_2"]
    _tick(app, a)
    _tick(app, b)
    app.w_note.value = ""
    app.w_reject.click()
    assert app.pending is None and "a rejection needs a note" in app.feedback
    app.w_note.value = "Sessions were held"
    app.w_reject.click()
    assert "Reject 2 requests, total $46.00?" in app.w_confirm_text.value
    assert "Note: Sessions were held" in app.w_confirm_text.value
    app.w_confirm_yes.click()
    assert [refunds.get(i)["status"] for i in (a, b)] == ["REJECTED", "REJECTED"]
    assert _audit(a).iloc[0]["note"] == "Sessions were held"
    assert app.w_note.value == ""  # the note went with the decision


# --------------------------------------------------------------------- the morning: one request after another
def test_after_a_decision_the_next_request_opens(requests, roles):
    app = _app("ana", page_size=50)
    order = app.ids
    small = [i for i in order if refunds.get(i)["amount"] <= 5000]
    app.open(small[0])
    nxt = order[order.index(small[0]) + 1]
    app.w_note.value = "Tutor confirmed"
    assert app.w_approve_one.description == f"Approve #{small[0]}"
    app.w_approve_one.click()
    assert refunds.get(small[0])["status"] == "APPROVED"
    assert _audit(small[0]).iloc[0]["note"] == "Tutor confirmed"
    assert small[0] not in app.ids  # it left the pending queue
    assert app.opened == nxt and f"Request #{nxt}" in app.pane.title.value
    assert app.feedback.startswith("Done: 1 request approved.")
    assert f"Request #{small[0]} approved by ana" in app.feedback
    # Reject the one now open: a note is needed, and then the next one opens.
    app.w_reject_one.click()
    assert refunds.get(nxt)["status"] == "PENDING" and app.opened == nxt
    assert "a rejection needs a note" in app.feedback
    app.w_note.value = "Session was held"
    app.w_reject_one.click()
    assert refunds.get(nxt)["status"] == "REJECTED" and app.opened != nxt and app.opened in app.ids


def test_the_second_click_of_a_double_click_never_decides_the_next_request(requests, roles):
    app = _app("ana", page_size=50)
    small = [i for i in app.ids if refunds.get(i)["amount"] <= 5000]
    app.open(small[0])
    button = app.w_approve_one  # the button the reviewer's browser shows for this request
    button.click()
    nxt = app.opened
    assert refunds.get(small[0])["status"] == "APPROVED" and nxt != small[0]
    button.click()  # the late second click reaches the old request's button
    assert refunds.get(nxt)["status"] == "PENDING"
    assert f"request #{small[0]} is no longer open (#{nxt} is)" in app.feedback
    assert app.w_approve_one is not button and app.w_approve_one.description == f"Approve #{nxt}"


def test_a_refused_decision_keeps_the_request_open_and_says_why(requests, roles):
    app = _app("vic")  # a viewer
    rid = app.opened
    app.w_approve_one.click()
    assert refunds.get(rid)["status"] == "PENDING" and app.opened == rid
    assert app.feedback.startswith("Nothing changed: 1 request could not be approved.")
    assert "vic lacks the reviewer or senior role" in app.feedback
    assert 'payops-b-bad">NOT DONE</span>' in app.w_feedback.value
    assert app.w_process.disabled  # not a processor
    app.w_process.click()  # disabled in a browser; scripted, it still refuses
    assert app.w_confirm.layout.display == "none" and "processor role" in app.feedback


def test_two_reviewers_deciding_the_same_request(requests, roles):
    ana, ben = _app("ana"), _app("ben")
    rid = requests["pi_2"]
    ana.open(rid)
    ben.open(rid)
    ana.w_approve_one.click()
    ben.w_note.value = "duplicate request"
    ben.w_reject_one.click()
    row = refunds.get(rid)
    assert row["status"] == "APPROVED" and row["decided_by"] == "ana"
    assert "Nothing changed" in ben.feedback and "already approved by ana" in ben.feedback
    assert [a for a in _audit(rid)["actor"]] == ["ana", "support"]


# --------------------------------------------------------------------- four-eyes
def test_a_large_request_shows_where_it_stands_in_its_two_approvals(requests, roles):
    rid = requests["pi_20"]  # 60.00 > 50.00: LARGE
    ana = _app("ana", page_size=50)
    ana.open(rid)
    i = ana.ids.index(rid)
    assert "0 of 2 approvals" in ana.queue.cells[i].value
    assert "0 of 2 approvals" in ana.pane.state.value
    assert ana.w_approve_one.description == f"Approve #{rid} (first of 2)"
    assert ana.w_waiting.layout.display == "none"  # not a senior
    ana.w_approve_one.click()
    assert refunds.get(rid)["status"] == "PENDING"
    assert "first approval recorded for 1 request (now waiting for a senior)" in ana.feedback
    ana.open(rid)
    assert "1 of 2: waiting for a senior" in ana.queue.cells[ana.ids.index(rid)].value
    assert "You gave the first approval." in ana.pane.state.value

    carla = _app("carla", page_size=50)
    assert carla.w_waiting.layout.display != "none"
    assert "waiting for your second approval: <b>1</b>" in carla.header.value
    carla.w_waiting.value = True  # "waiting for me"
    assert carla.ids == [rid] and carla.opened == rid
    assert "1 of 2: waiting for a senior. First approval by ana" in carla.pane.state.value
    assert "You can give the second approval." in carla.pane.state.value
    assert carla.w_approve_one.description == f"Approve #{rid} (second of 2)"
    carla.w_approve_one.click()
    row = refunds.get(rid)
    assert row["status"] == "APPROVED" and row["second_approver"] == "carla"
    assert "second approval; first by ana" in carla.feedback
    assert carla.ids == [] and "waiting for your second approval: <b>0</b>" in carla.header.value
    carla.w_waiting.value = False
    carla.set_filter(status="APPROVED")
    assert "2 of 2 approvals" in carla.queue.cells[carla.ids.index(rid)].value


# --------------------------------------------------------------------- the detail pane
def test_detail_pane_shows_ids_links_breakdown_verdict_and_history(requests):
    app = RefundReview(page_size=50)
    rid = requests["pi_9"]
    opened = app.opened
    _tick(app, rid)  # ticking does not open it (ticking many rows stays instant) ...
    assert app.opened == opened != rid
    app.queue.buttons[app.ids.index(rid)].click()  # ... its number does
    assert app.opened == rid and "payops-row-open" in app.queue.lines[app.ids.index(rid)]._dom_classes
    html = app.pane.detail.value
    assert "$38.00" in html  # amount 38.00 -> 15% platform fee 5.70, Stripe fee 1.09
    assert "$5.70" in html and "$1.09" in html
    assert 'payops-b-ok">Eligible: $38.00 still refundable</span>' in html  # worded as `payops refunds check`
    # Full ids, one click selects them for copying, each with its dashboard link.
    for oid in ("pi_9", "ch_9", "cus_9"):
        assert f'<code class="payops-id">{oid}</code>' in html
    assert 'href="https://dashboard.stripe.com/test/payments/pi_9"' in html
    assert 'href="https://dashboard.stripe.com/test/customers/cus_9"' in html
    assert "Student 9" in html and "student9@example.com" in html
    assert "<b>support</b> create" in html  # the audit history
    assert "Other open requests: <b>0</b>" in html and "Disputes: <b>0</b>" in html


def test_detail_pane_shows_the_customers_history(requests, db_path):
    ts = int(time.time()) - 7200
    ingest_objects([
        F.payment_intent("pi_h1", customer="cus_3", latest_charge="ch_h1", amount=1000, amount_received=1000,
                         created=ts),
        F.charge("ch_h1", customer="cus_3", payment_intent="pi_h1", amount=1000, amount_captured=1000,
                 balance_transaction=None, created=ts),
        F.payment_intent("pi_h2", customer="cus_3", latest_charge="ch_h2", amount=1500, amount_received=1500,
                         created=ts),
        F.charge("ch_h2", customer="cus_3", payment_intent="pi_h2", amount=1500, amount_captured=1500,
                 balance_transaction=None, created=ts),
        F.payment_intent("pi_h3", customer="cus_3", latest_charge="ch_h3", amount=900, amount_received=900,
                         created=ts),
        F.charge("ch_h3", customer="cus_3", payment_intent="pi_h3", amount=900, amount_captured=900,
                 balance_transaction=None, disputed=True, created=ts),
        F.dispute("dp_h3", charge="ch_h3", payment_intent="pi_h3", amount=900, created=ts),
    ], db=db_path)
    earlier = _id(refunds.request("pi_h1", reason="duplicate", requested_by="support"))
    refunds.reject(earlier, note="duplicate of another", user="tester")
    other = _id(refunds.request("pi_h2", reason="requested_by_customer", requested_by="support"))
    app = RefundReview(page_size=50)
    app.open(requests["pi_3"])
    html = app.pane.detail.value
    assert "Other open requests: <b>1</b>" in html and f"#{other} " in html
    assert "Earlier refund requests: <b>1</b>" in html and f"#{earlier} " in html
    assert 'payops-b-rejected">REJECTED</span>' in html
    assert "Disputes: <b>1</b>" in html and 'href="https://dashboard.stripe.com/test/disputes/dp_h3"' in html


def test_everything_from_stripe_or_users_is_escaped(requests, db_path):
    ts = int(time.time()) - 7200
    evil = "<img src=x onerror=alert(1)>"
    ingest_objects([
        F.customer("cus_evil", email='"><script>alert(2)</script>@x.com', name=evil, created=ts),
        F.payment_intent("pi_evil", customer="cus_evil", latest_charge="ch_evil", amount=1000,
                         amount_received=1000, created=ts),
        F.charge("ch_evil", customer="cus_evil", payment_intent="pi_evil", amount=1000, amount_captured=1000,
                 balance_transaction=None, created=ts),
    ], db=db_path)
    rid = _id(refunds.request("pi_evil", reason="duplicate", requested_by="<b>x</b>", note="</table><script>"))
    app = RefundReview(page_size=50)
    app.w_search.value = "cus_evil"
    assert app.ids == [rid] and app.opened == rid
    shown = _all_html(app)
    assert "<img" not in shown and "<script" not in shown and "</table><script>" not in shown
    assert "&lt;img src=x onerror=alert(1)&gt;" in shown
    # Only ids of a known shape become links; anything else is shown as escaped text.
    detail = H.detail_html(H.Detail(request={"id": 1, "amount": 100, "currency": "usd",
                                             "payment_intent": 'pi_1"><script>alert(3)</script>',
                                             "customer": "cus_ok1"}))
    assert "<script" not in detail and 'href="https://dashboard.stripe.com/test/payments/pi_1"' not in detail
    assert 'href="https://dashboard.stripe.com/test/customers/cus_ok1"' in detail


# --------------------------------------------------------------------- feedback, processing, team mode
def test_feedback_is_plain_words(requests, roles):
    app = _app("ana", page_size=50)
    app.approve()
    assert app.feedback == "Nothing to approve: tick one or more requests first."
    ids = [requests["pi_1"], requests["pi_20"]]  # one small, one LARGE
    for rid in ids:
        _tick(app, rid)
    app.approve(confirmed=True)
    lines = app.feedback.splitlines()
    assert lines[0] == "Done: 1 request approved; first approval recorded for 1 request (now waiting for a senior)."
    assert any(line.startswith(f"Request #{requests['pi_1']} approved by ana: $22.00") for line in lines)
    assert any(line.startswith(f"Request #{requests['pi_20']}: first approval by ana recorded") for line in lines)
    assert not re.search(r"\b(nan|None|unchanged \()", app.feedback)


def test_process_asks_for_confirmation_first(requests, roles):
    carla = _app("carla", page_size=50)
    carla.open(requests["pi_1"])
    carla.w_approve_one.click()
    assert not carla.w_process.disabled
    carla.w_process.click()
    assert carla.w_confirm.layout.display == "flex"
    assert "Send 1 approved refund to Stripe, total $22.00?" in carla.w_confirm_text.value
    assert refunds.get(requests["pi_1"])["status"] == "APPROVED"  # nothing sent yet
    carla.w_confirm_no.click()
    assert carla.w_confirm.layout.display == "none"
    assert refunds.get(requests["pi_1"])["status"] == "APPROVED"


def test_process_through_the_app_sends_to_stripe(requests, roles, monkeypatch):
    from fake_stripe import FakeStripe

    carla = _app("carla", page_size=50)
    carla.open(requests["pi_1"])
    carla.w_approve_one.click()
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
    assert carla.feedback.startswith("Done: 1 request sent to Stripe.")


class _Recorder(LocalActions):
    """Team mode stands in here: decisions go through the actions object and nowhere else."""

    def __init__(self, user: str):
        super().__init__(user)
        self.calls: list[tuple] = []

    def approve(self, ids, *, note=None):
        self.calls.append(("approve", list(ids), note))
        return super().approve(ids, note=note)

    def reject(self, ids, *, note):
        self.calls.append(("reject", list(ids), note))
        return super().reject(ids, note=note)

    def process(self, *, limit=None, dry_run=False, ids=None):
        self.calls.append(("process", list(ids or [])))
        return super().process(limit=limit, dry_run=dry_run, ids=ids)


def test_decisions_go_through_the_actions_object(requests, roles):
    rec = _Recorder("ana")
    app = RefundReview(user="ana", page_size=50, actions=rec)
    rid = requests["pi_4"]
    app.open(rid)
    app.w_note.value = "ok"
    app.w_approve_one.click()
    a, b = requests["pi_5"], requests["pi_7"]
    _tick(app, a)
    _tick(app, b)
    app.w_note.value = "held"
    app.w_reject.click()
    app.w_confirm_yes.click()
    assert rec.calls == [("approve", [rid], "ok"), ("reject", [i for i in app_order(requests, a, b)], "held")]
    assert refunds.get(rid)["status"] == "APPROVED"


def app_order(requests, *ids):
    """Ids in queue order (the app sends a selection in the order it shows it)."""
    order = list(refunds.queue(limit=None)["id"]) + sorted(ids)
    return sorted(ids, key=order.index)


def test_team_mode_without_the_service_opens_read_only_and_says_why(requests, roles, monkeypatch):
    # [roles] present: decisions go through payops serve, and there is none (no URL, no hub token).
    monkeypatch.delenv("PAYOPS_AUDIT_KEY")  # a reviewer's kernel, not the writer
    app = RefundReview(page_size=50)
    assert app.actions is None and app.roles == ()
    assert "read only" in app.header.value
    rid = app.opened
    app.w_approve_one.click()
    assert refunds.get(rid)["status"] == "PENDING"
    assert app.feedback.startswith("Nothing changed: ") and app.read_only in app.feedback


# --------------------------------------------------------------------- housekeeping
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


def _opens(monkeypatch) -> list[int]:
    """A counter of the DuckDB connections opened from now on (each still a real connection)."""
    real, opened = duckdb.connect, [0]

    def counting(*args, **kwargs):
        opened[0] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(duckdb, "connect", counting)
    return opened


def test_each_step_opens_the_database_once_per_read(requests, roles, monkeypatch):
    opened = _opens(monkeypatch)
    app = _app("ana", page_size=10)
    assert opened[0] == 2  # the queue's page with its counts and currencies; the open request
    assert [v for _, v in app.w_currency.options] == ["all", "eur", "usd"]
    opened[0] = 0
    app.open(app.ids[3])
    assert opened[0] == 1
    opened[0] = 0
    app.w_next.click()  # another page: its first request opens
    assert opened[0] == 2 and app.page == 1
    opened[0] = 0
    app.w_note.value = "session was held"
    app.w_reject_one.click()  # the decision; the queue; the next request
    assert opened[0] == 3 and app.results[0].ok


def test_text_repr_is_short_and_stable(requests):
    app = _app("ana")
    bundle = app._repr_mimebundle_()
    assert bundle["text/plain"] == "RefundReview(user='ana')"
    assert "application/vnd.jupyter.widget-view+json" in bundle


def test_an_empty_database_shows_an_empty_queue(empty_db):
    app = RefundReview()
    assert app.total == 0 and app.ids == [] and app.pages == 1
    assert "No refund requests match" in app.queue.empty.value
    assert all(line.layout.display == "none" for line in app.queue.lines)
    assert app.w_prev.disabled and app.w_next.disabled
    assert app.opened is None and app.pane.note.layout.display == "none"


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
    assert refunds.queue_page(count_waiting_for="carla").waiting == 2
    assert refunds.queue_page().waiting is None
    refunds.approve(large[0], user="carla")  # second approval: no longer waiting
    assert list(refunds.queue(waiting_for="carla")["id"]) == [large[1]]
    assert refunds.queue_page(count_waiting_for="carla").waiting == 1


def test_request_detail_is_the_panes_reads_on_one_connection(requests, db_path, monkeypatch):
    rid = requests["pi_3"]
    opened = _opens(monkeypatch)
    d = refunds.request_detail(rid)
    assert opened[0] == 1
    assert d.request == refunds.get(rid)
    assert d.verdict == refunds.check("pi_3", _amount(3), exclude=rid)  # its own amount is not "another"
    assert d.verdict is not None and d.verdict.eligible
    assert d.breakdown == payments.breakdown("pi_3")
    assert d.booking == {"booking_id": "bk_3", "booking_status": None, "session_start": None, "tutor_id": None}
    pd.testing.assert_frame_equal(d.history, refunds.history(rid))
    assert d.stripe_refunds is not None and d.stripe_refunds.empty
    assert d.customer is not None and d.customer["requests"].empty and d.customer["disputes"].empty
    assert d.live is False
    refunds.reject(rid, note="session was held", user="tester")
    after = refunds.request_detail(rid)
    assert after.request.status == "REJECTED" and after.verdict == refunds.check("pi_3")
    assert list(after.history["action"])[-1] == "refund_request.reject"
    with connect(db_path) as con:
        opened[0] = 0
        again = refunds.request_detail(rid, con=con)  # the caller's connection, left open
        assert opened[0] == 0 and con.execute("SELECT 1").fetchone() == (1,)
    assert again.request == after.request
    with pytest.raises(NotFound):
        refunds.request_detail(987654)


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
    earlier = _id(refunds.request("pi_h1", reason="duplicate", requested_by="support"))
    refunds.reject(earlier, note="duplicate of another", user="tester")
    hist = refunds.customer_history("cus_3", exclude=requests["pi_3"])
    assert list(hist["requests"]["id"]) == [earlier]
    assert hist["requests"].iloc[0]["status"] == "REJECTED"
    assert list(hist["disputes"]["id"]) == ["dp_h2"]
    both = refunds.customer_history("cus_3")
    assert set(both["requests"]["id"]) == {earlier, requests["pi_3"]}
    assert refunds.customer_history("cus_none")["requests"].empty
    assert refunds.queue_count(customer="cus_3", status=None) == 2

"""The review app's HTML: badges, queue rows, the detail pane and feedback lines.

Pure functions of the data :mod:`payops.ui.review` reads through the library; nothing here
reads the database or decides anything. Everything that came from Stripe or a person (names,
emails, notes, ids, messages) is escaped; only ids of a known shape become dashboard links.

Badges are words with a CSS colour, never emoji: a machine without an emoji font draws emoji
as empty boxes, and a colour alone says nothing to a colour-blind reviewer.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from payops.payments import BREAKDOWN_FIGURES
from payops.refunds import OPEN_STATUSES, eligibility_wording
from payops.ui import display as D

__all__ = ["CSS", "COLS", "ROW_WIDTH", "plain", "badge", "priority_badges", "status_badge", "approval_state",
           "money_totals", "row_cells", "Detail", "detail_html", "feedback", "when"]

# Queue columns after the tick box and the request button (px); the header and rows share them.
COLS = (("Priority", 150), ("Status", 100), ("Age", 62), ("Amount", 92), ("Customer", 160),
        ("Approvals", 198))
ROW_WIDTH = sum(width for _, width in COLS) + 8  # px: the cells never wrap under each other

_TONES = {
    "URGENT": "urgent", "HIGH": "high", "LARGE": "large",
    "PENDING": "pending", "APPROVED": "approved", "REJECTED": "rejected", "PROCESSING": "processing",
    "PROCESSED": "processed", "FAILED": "failed",
}

CSS = """
<style>
.payops-review {font-size:13px}
.payops-review .payops-cell {display:inline-block; box-sizing:border-box; overflow:hidden;
  text-overflow:ellipsis; white-space:nowrap; vertical-align:middle; padding-right:8px}
.payops-review .payops-detail a {color:#1a56db; text-decoration:underline}
.payops-review .payops-head .payops-cell {font-weight:600}
.payops-review .payops-money {text-align:right}
.payops-review .payops-muted {color:#5f6368}
.payops-review .payops-badge {display:inline-block; padding:0 6px; margin-right:3px; border-radius:9px;
  border:1px solid; font-size:11px; font-weight:600; line-height:17px; letter-spacing:.02em}
.payops-review .payops-b-urgent {color:#8a1c13; background:#fde7e4; border-color:#eea59b}
.payops-review .payops-b-high {color:#7a4a00; background:#fff1d6; border-color:#efc46d}
.payops-review .payops-b-large {color:#3d2a8c; background:#ece8ff; border-color:#b9abf2}
.payops-review .payops-b-pending {color:#394457; background:#eef1f6; border-color:#b8c1cf}
.payops-review .payops-b-approved, .payops-review .payops-b-ok {color:#0d5c2b; background:#e3f4e8; border-color:#93cfa7}
.payops-review .payops-b-processed {color:#0b4f5c; background:#e0f3f6; border-color:#8cc8d2}
.payops-review .payops-b-processing {color:#123f8c; background:#e4edfd; border-color:#9bb8ee}
.payops-review .payops-b-rejected, .payops-review .payops-b-failed,
.payops-review .payops-b-bad {color:#8a1c13; background:#fde7e4; border-color:#eea59b}
.payops-review .payops-b-wait {color:#7a4a00; background:#fff1d6; border-color:#efc46d}
.payops-review .payops-b-info {color:#394457; background:#eef1f6; border-color:#b8c1cf}
.payops-review .payops-row-open {background:#eef3ff; border-radius:4px}
.payops-review button.payops-open {background:none; border:none; box-shadow:none; color:#1a56db;
  text-decoration:underline; padding:0 4px; font-size:13px}
.payops-review .payops-feedback div {margin:1px 0}
.payops-review .payops-feedback .bad {color:#8a1c13}
.payops-review .payops-feedback .ok {color:#0d5c2b}
.payops-review .payops-pane {border-left:3px solid #d7deea; padding-left:12px}
.payops-review .payops-detail h4 {margin:10px 0 2px 0; font-size:13px}
.payops-review .payops-detail table {border-collapse:collapse}
.payops-review .payops-detail td, .payops-review .payops-detail th {padding:1px 10px 1px 0; text-align:left;
  vertical-align:top}
.payops-review .payops-detail th {font-weight:600; color:#394457}
.payops-review .payops-detail .num {text-align:right}
.payops-review .payops-detail ul {margin:0; padding-left:18px}
.payops-review code.payops-id {user-select:all; background:#f3f4f6; padding:0 3px; border-radius:3px;
  font-size:12px; word-break:break-all}
.payops-review .payops-state {margin:4px 0}
.payops-review .payops-confirm {background:#fff8e6}
</style>
"""

# Stripe object ids: a short lowercase prefix and letters/digits. Only these become URLs.
# (display.link gets the same guard in issue 13; this keeps the app safe on its own.)
_STRIPE_ID = re.compile(r"[a-z]{2,6}_[A-Za-z0-9]{1,250}")


def _na(value: Any) -> bool:
    try:
        return value is None or bool(pd.isna(value))
    except (TypeError, ValueError):  # a list or an array is a value, not "missing"
        return False


def plain(row: Mapping[str, Any]) -> dict:
    """A row (e.g. a DataFrame row as a dict) with pandas' missing values (NaN, NaT, NA) as None."""
    return {k: None if _na(v) else v for k, v in row.items()}


def _e(value: Any) -> str:
    return html.escape("" if _na(value) else str(value))


def when(value: Any) -> str:
    """A timestamp as ``2026-11-20 09:15 UTC`` ("" for none)."""
    if _na(value):
        return ""
    try:
        ts = pd.Timestamp(value)
        ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
        return ts.strftime("%Y-%m-%d %H:%M UTC")
    except (TypeError, ValueError):
        return str(value)


def badge(text: str, tone: str) -> str:
    """A coloured badge that is readable without its colour: ``<span ...>URGENT</span>``."""
    return f'<span class="payops-badge payops-b-{html.escape(tone)}">{html.escape(text)}</span>'


def priority_badges(priorities: Iterable[str] | None) -> str:
    """URGENT / HIGH / LARGE badges, most urgent first ("" for a normal request)."""
    if priorities is None or isinstance(priorities, float):
        return ""
    names = {str(p).upper() for p in priorities}
    return "".join(badge(p, _TONES[p]) for p in ("URGENT", "HIGH", "LARGE") if p in names)


def status_badge(status: str | None) -> str:
    """The badge of a refund-request status."""
    if _na(status) or not status:
        return ""
    s = str(status).upper()
    return badge(s, _TONES.get(s, "info"))


def _is_large(row: Mapping[str, Any]) -> bool:
    prios = row.get("priorities")
    return prios is not None and not isinstance(prios, float) and "LARGE" in list(prios)


def _text(value: Any) -> str:
    return "" if _na(value) else str(value)


def approval_state(row: Mapping[str, Any], user: str, senior: bool) -> tuple[str, str] | None:
    """Where a LARGE request stands in its two approvals (four-eyes), or None for one approval.

    Returns:
        ``(marker, sentence)``: a short marker for the queue (``"1 of 2: waiting for a senior"``)
        and a sentence for the detail pane that names who approved and who may approve next.
    """
    if not _is_large(row):
        return None
    status = _text(row.get("status")).upper()
    first, second = _text(row.get("first_approver")), _text(row.get("second_approver"))
    requester = _text(row.get("requested_by"))
    if status == "PENDING" and not first:
        return ("0 of 2 approvals",
                "0 of 2 approvals: a LARGE request needs a reviewer's approval, then a senior's (four-eyes).")
    if status == "PENDING":
        others = " and ".join(sorted({first, requester} - {""}))
        sentence = (f"1 of 2: waiting for a senior. First approval by {first}; the second must come from a "
                    f"senior other than {others}.")
        if user == first:
            sentence += " You gave the first approval."
        elif senior and user != requester:
            sentence += " You can give the second approval."
        return "1 of 2: waiting for a senior", sentence
    if second:
        return "2 of 2 approvals", f"2 of 2 approvals: {first}, then {second}."
    return None


def money_totals(pairs: Iterable[tuple[Any, Any]]) -> str:
    """Sums per currency, never across: ``"$120.00 and €40.00"`` ("" for nothing)."""
    sums: dict[str, int] = {}
    for amount, currency in pairs:
        sums[str(currency)] = sums.get(str(currency), 0) + int(amount)
    parts = [D.money(v, c) for c, v in sorted(sums.items())]
    return " and ".join(parts) if len(parts) < 3 else ", ".join(parts[:-1]) + " and " + parts[-1]


def _cell(text: str, width: int, cls: str = "", title: str = "") -> str:
    t = f' title="{html.escape(title)}"' if title else ""
    return f'<span class="payops-cell {cls}" style="width:{width}px"{t}>{text}</span>'


def head_cells() -> str:
    """The queue's header cells."""
    return "".join(_cell(name, width, "payops-money" if name == "Amount" else "") for name, width in COLS)


def row_cells(row: Mapping[str, Any], user: str, senior: bool) -> str:
    """One queue row's cells (after its tick box and request button) as HTML."""
    amount = D.money(row.get("amount"), row.get("currency"))
    who = _text(row.get("customer_name")) or _text(row.get("customer"))
    email = _text(row.get("customer_email"))
    state = approval_state(row, user, senior)
    marker = ""
    if state:
        tone = "wait" if state[0].startswith("1 of 2") else "info" if state[0].startswith("0") else "ok"
        marker = badge(state[0], tone)
    cells = [
        (priority_badges(row.get("priorities")), ""),
        (status_badge(row.get("status")), ""),
        (_e(D.age(row.get("age_hours"))), ""),
        (_e(amount), "payops-money"),
        (f"{_e(who)} <span class='payops-muted'>{_e(email)}</span>", ""),
        (marker, "payops-approvals"),
    ]
    titles = ["", "", "", "", f"{who} {email}".strip(), state[1] if state else ""]
    return "".join(_cell(text, width, cls, title)
                   for (text, cls), (_, width), title in zip(cells, COLS, titles, strict=True))


def _link(object_id: Any, live: bool, text: str | None = None) -> str:
    oid = _text(object_id)
    if not _STRIPE_ID.fullmatch(oid):
        return _e(text if text is not None else oid)
    return D.link(oid, live, text)


def _id_with_link(object_id: Any, live: bool) -> str:
    """A full id one click selects (to copy), and its Stripe dashboard page."""
    oid = _text(object_id)
    if not oid:
        return "–"
    return f'<code class="payops-id">{_e(oid)}</code> {_link(oid, live, "open in Stripe")}'


@dataclass
class Detail:
    """What the detail pane shows about one request, as the library returned it."""

    request: dict
    row: dict = field(default_factory=dict)
    breakdown: dict | None = None
    verdict: Any = None
    stripe_refunds: pd.DataFrame | None = None
    history: pd.DataFrame | None = None
    customer: dict | None = None
    live: bool = False


def _facts(d: Detail) -> str:
    req, live = d.request, d.live
    name, email = _text(d.row.get("customer_name")), _text(d.row.get("customer_email"))
    who = f"{_e(name)} <span class='payops-muted'>{_e(email)}</span><br>" if name or email else ""
    rows = [
        ("Amount", f"<b>{_e(D.money(req.get('amount'), req.get('currency')))}</b>"),
        ("Reason", _e(req.get("reason"))),
        ("Requested", f"by {_e(req.get('requested_by'))}, {_e(when(req.get('requested_at')))}"
                      + (f" ({_e(D.age(d.row.get('age_hours')))} ago)" if d.row.get("age_hours") is not None else "")),
        ("Note", _e(req.get("note"))),
        ("Customer", who + _id_with_link(req.get("customer"), live)),
        ("Payment", _id_with_link(req.get("payment_intent"), live)),
        ("Charge", _id_with_link(req.get("charge"), live)),
    ]
    if req.get("stripe_refund_id"):
        rows.append(("Stripe refund", _id_with_link(req.get("stripe_refund_id"), live)))
    if req.get("decided_by"):
        rows.append(("Decided", f"by {_e(req.get('decided_by'))}, {_e(when(req.get('decided_at')))}"
                                + (f": {_e(req.get('decision_note'))}" if req.get("decision_note") else "")))
    if req.get("failure_message"):
        rows.append(("Failure", _e(req.get("failure_message"))))
    return "<table>" + "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows) + "</table>"


def _eligibility(d: Detail) -> str:
    v = d.verdict
    if v is None:
        return ""
    # worded by the library, the same as `payops refunds check`
    headline, reasons = eligibility_wording(v)
    mark = badge(headline, "ok" if v.eligible else "bad")
    items = "".join(f"<li>{_e(r)}</li>" for r in reasons)
    return f"<h4>Eligibility</h4>{mark}" + (f"<ul>{items}</ul>" if items else "")


def _short_request(r: Any) -> str:
    return (f"#{int(r.id)} {status_badge(r.status)} {_e(D.money(r.amount, r.currency))}, "
            f"{_e(r.reason)}, {_e(when(r.requested_at))}"
            + (f", decided by {_e(r.decided_by)}" if _text(r.decided_by) else ""))


def _listing(items: list[str], more: int) -> str:
    tail = f"<li class='payops-muted'>and {more} more</li>" if more > 0 else ""
    return "<ul>" + "".join(f"<li>{i}</li>" for i in items) + tail + "</ul>"


def _customer_history(d: Detail, show: int = 5) -> str:
    if d.customer is None:
        return ""
    reqs: pd.DataFrame = d.customer["requests"]
    disputes: pd.DataFrame = d.customer["disputes"]
    is_open = reqs["status"].isin(OPEN_STATUSES) if len(reqs) else pd.Series(dtype=bool)
    open_rows = list(reqs[is_open].itertuples(index=False)) if len(reqs) else []
    earlier = list(reqs[~is_open].itertuples(index=False)) if len(reqs) else []
    parts = ["<h4>This customer</h4>"]
    parts.append(f"<div>Other open requests: <b>{len(open_rows)}</b></div>")
    if open_rows:
        parts.append(_listing([_short_request(r) for r in open_rows[:show]], len(open_rows) - show))
    parts.append(f"<div>Earlier refund requests: <b>{len(earlier)}</b></div>")
    if earlier:
        parts.append(_listing([_short_request(r) for r in earlier[:show]], len(earlier) - show))
    parts.append(f"<div>Disputes: <b>{len(disputes)}</b></div>")
    if len(disputes):
        items = [f"{_link(x.id, d.live)} {_e(D.money(x.amount, x.currency))} {_e(x.status)}, {_e(x.reason)}, "
                 f"{_e(when(x.created))}" for x in disputes.head(show).itertuples(index=False)]
        parts.append(_listing(items, len(disputes) - show))
    return "".join(parts)


def _payment(d: Detail) -> str:
    bd = d.breakdown
    if not bd:
        return ""
    cur = bd.get("currency")
    rows = "".join(f"<tr><td>{label}</td><td class='num'>{_e(D.money(bd[key], cur)) if bd[key] is not None else '–'}"
                   f"</td></tr>" for label, key in BREAKDOWN_FIGURES if key in bd)
    booking = (f"<div>Booking {_e(bd.get('booking_id') or '–')}: session "
               f"<b>{_e(bd.get('booking_status') or 'unknown')}</b>"
               + (f", starts {_e(when(bd.get('session_start')))}" if bd.get("session_start") is not None else "")
               + (f", tutor {_e(bd.get('tutor_id'))}" if bd.get("tutor_id") else "") + "</div>")
    out = f"<h4>Payment</h4><table>{rows}</table>{booking}"
    sr = d.stripe_refunds
    if sr is not None and len(sr):
        items = [f"{_e(when(r.created))}: {_link(r.id, d.live)} {_e(D.money(r.amount, r.currency))} {_e(r.status)}"
                 for r in sr.itertuples(index=False)]
        out += "<div>Stripe refunds of this payment:</div>" + _listing(items, 0)
    return out


def _history(d: Detail) -> str:
    h = d.history
    if h is None or not len(h):
        return ""
    items = [f"{_e(when(getattr(x, 'at', None)))} <b>{_e(getattr(x, 'actor', ''))}</b> "
             f"{_e(str(getattr(x, 'action', '')).replace('refund_request.', ''))}"
             + (f": {_e(x.note)}" if _text(getattr(x, "note", None)) else "")
             for x in h.itertuples(index=False)]
    return "<h4>History of this request</h4>" + _listing(items, 0)


def detail_html(d: Detail) -> str:
    """The body of the detail pane: facts, eligibility, the customer, the payment, the history."""
    return "".join((_facts(d), _eligibility(d), _customer_history(d), _payment(d), _history(d)))


_PAST = {"Approve": "approved", "Reject": "rejected", "Process": "sent to Stripe"}


def _sentence(message: str, request_id: int) -> str:
    text = message.strip() or f"request {request_id}"
    text = re.sub(r"^request (\d+)", r"Request #\1", text)
    text = text[0].upper() + text[1:]
    return text if text.endswith(".") else text + "."


def _plural(n: int, word: str = "request") -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def feedback(verb: str, results: Sequence[Any]) -> tuple[str, str]:
    """Plain-words feedback of one action: ``(text, html)``; a headline, then one line per request."""
    past = _PAST.get(verb, verb.lower() + "d")
    ok = [r for r in results if r.ok]
    bad = [r for r in results if not r.ok]
    if not results:
        head = f"Nothing to {verb.lower()}."
    elif not bad:
        head = f"Done: {_plural(len(ok))} {past}." if verb != "Approve" else _approve_head(ok)
    elif not ok:
        head = f"Nothing changed: {_plural(len(bad))} could not be {past}."
    else:
        head = f"{len(ok)} of {_plural(len(results))} {past}; {len(bad)} could not be (see below)."
    head_mark = ("DONE", "ok") if ok and not bad else ("PARTLY DONE", "wait") if ok else ("NOT DONE", "bad")
    body = [(_sentence(r.message, r.request_id), bool(r.ok)) for r in results]
    text = "\n".join([head] + [t for t, _ in body])
    html_lines = f'<div class="{"ok" if not bad else "bad"}">{badge(*head_mark)}<b>{html.escape(head)}</b></div>'
    for t, good in body:
        mark = badge("done", "ok") if good else badge("not done", "bad")
        html_lines += f'<div class="{"ok" if good else "bad"}">{mark}{html.escape(t)}</div>'
    return text, html_lines


def _approve_head(ok: Sequence[Any]) -> str:
    first = [r for r in ok if r.status == "PENDING"]  # a LARGE request's first approval
    done = len(ok) - len(first)
    parts = []
    if done:
        parts.append(f"{_plural(done)} approved")
    if first:
        parts.append(f"first approval recorded for {_plural(len(first))} (now waiting for a senior)")
    return "Done: " + "; ".join(parts) + "."

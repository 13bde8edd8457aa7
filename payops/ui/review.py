"""The refund review app: an ipywidgets front end over :mod:`payops.refunds`.

Reviewers see the queue most urgent first, filter and page it, tick requests and approve or
reject them; a processor sends approved refunds to Stripe after a confirmation. Every rule,
role and audit row comes from :mod:`payops.refunds` (the same code the command line uses);
this module only shows what those functions return. The app holds no database connection
between actions: each ``payops`` call opens and closes its own.

Widgets carry stable CSS classes (``payops-review``, ``payops-row-select``,
``payops-select-<id>``, ``payops-approve`` ...) so a browser test can find them.

Example (in JupyterLab or Voila)::

    from payops.ui import RefundReview
    RefundReview().show()
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any

import ipywidgets as W
import pandas as pd
from IPython.display import display

from payops import refunds
from payops.config import get_settings
from payops.errors import PayopsError
from payops.money import exponent, from_decimal
from payops.ui import display as D

__all__ = ["RefundReview", "PAGE_SIZE"]

PAGE_SIZE = 25
_ALL = "all"
_STATUS_OPTIONS = [("Pending", "PENDING"), ("Approved", "APPROVED"), ("Rejected", "REJECTED"),
                   ("Processing", "PROCESSING"), ("Processed", "PROCESSED"), ("Failed", "FAILED"),
                   ("All statuses", _ALL)]
_PRIORITY_OPTIONS = [("Any priority", _ALL), ("🔥 URGENT", "URGENT"), ("⚠️ HIGH", "HIGH"),
                     ("💰 LARGE", "LARGE")]

# Column widths of the queue (px); the header and every row share them.
_COLS = (("Request", 70), ("Priority", 150), ("Status", 120), ("Age", 70), ("Amount", 100),
         ("Customer", 220), ("Payment", 130), ("Reason", 170))

_CSS = """
<style>
.payops-review .payops-cell {display:inline-block; overflow:hidden; text-overflow:ellipsis;
  white-space:nowrap; vertical-align:middle; padding-right:8px; font-size:13px}
.payops-review .payops-head .payops-cell {font-weight:600}
.payops-review .payops-money {text-align:right}
.payops-review .payops-feedback {font-size:13px}
.payops-review .payops-feedback .ok {color:#137333}
.payops-review .payops-feedback .bad {color:#b3261e}
.payops-review .payops-detail table {border-collapse:collapse; font-size:13px}
.payops-review .payops-detail td, .payops-review .payops-detail th {padding:2px 10px 2px 0; text-align:left}
.payops-review .payops-detail .num {text-align:right}
</style>
"""


def _cell(text: str, width: int, cls: str = "") -> str:
    return f'<span class="payops-cell {cls}" style="width:{width}px">{text}</span>'


def _as_tuple(value: Any) -> tuple[str, ...] | None:
    if value is None or value == _ALL:
        return None
    if isinstance(value, str):
        return (value.upper(),)
    return tuple(str(v).upper() for v in value)


class RefundReview:
    """The refund review app for one user.

    Args:
        user: who is reviewing (default ``PAYOPS_USER`` / the OS user); their roles come
            from ``payops.toml``.
        page_size: rows per page.
        db: the database file (default the ``PAYOPS_DB`` setting).
        now: the moment ages and priorities are computed against (default: now); for tests.

    Attributes:
        rows: the current page as :func:`payops.refunds.queue` returned it.
        total: how many requests match the filters.
        selected: the ids ticked (on any page).
        feedback: the plain-text feedback line of the last action.
        results: the :class:`payops.refunds.ActionResult` list of the last action.
    """

    def __init__(self, user: str | None = None, *, page_size: int = PAGE_SIZE, db=None, now=None):
        settings = get_settings()
        self.user = user or settings.user
        self.roles = settings.roles_of(self.user)
        self.single_user = settings.single_user
        self.db = db
        self.now = now
        self.page_size = int(page_size)
        self.page = 0
        self.filters: dict[str, Any] = {"status": ("PENDING",), "priority": None, "currency": None,
                                        "min_amount": None, "search": None}
        self.rows = pd.DataFrame()
        self.total = 0
        self.selected: set[int] = set()
        self.focused: int | None = None
        self.feedback = ""
        self.results: list[Any] = []
        self._quiet = False  # True while the code (not a person) sets widget values
        self._build()
        self.refresh()

    # ------------------------------------------------------------------ widgets
    def _build(self) -> None:
        self.header = W.HTML().add_class("payops-header")

        self.w_status = W.Dropdown(options=_STATUS_OPTIONS, value="PENDING", description="Status",
                                   layout=W.Layout(width="200px")).add_class("payops-filter-status")
        self.w_priority = W.Dropdown(options=_PRIORITY_OPTIONS, value=_ALL, description="Priority",
                                     layout=W.Layout(width="210px")).add_class("payops-filter-priority")
        try:
            currencies = D.request_currencies(db=self.db)
        except PayopsError:
            currencies = []
        self.w_currency = W.Dropdown(options=[("Any currency", _ALL)] + [(c.upper(), c) for c in currencies],
                                     value=_ALL, description="Currency",
                                     layout=W.Layout(width="200px")).add_class("payops-filter-currency")
        self.w_min = W.Text(value="", placeholder="e.g. 50.00", description="Min amount", continuous_update=False,
                            layout=W.Layout(width="190px")).add_class("payops-filter-min")
        self.w_search = W.Text(value="", placeholder="customer, email, pi_ / ch_ id", description="Search",
                               continuous_update=False, layout=W.Layout(width="330px")).add_class("payops-filter-search")
        for w in (self.w_status, self.w_priority, self.w_currency, self.w_min, self.w_search):
            w.observe(self._on_filter_widget, names="value")

        self.w_select_all = W.Checkbox(value=False, indent=False, layout=W.Layout(width="28px"),
                                       description="").add_class("payops-select-all")
        self.w_select_all.observe(self._on_select_all, names="value")
        head = "".join(_cell(name, width) for name, width in _COLS)
        self.w_head = W.HBox([self.w_select_all, W.HTML(head)]).add_class("payops-head")

        self._row_boxes: list[W.Checkbox] = []
        self._row_html: list[W.HTML] = []
        self._row_lines: list[W.HBox] = []
        for i in range(self.page_size):
            box = W.Checkbox(value=False, indent=False, description="", layout=W.Layout(width="28px"))
            box.add_class("payops-row-select")
            box.observe(lambda change, i=i: self._on_row_tick(i, change), names="value")
            text = W.HTML()
            line = W.HBox([box, text], layout=W.Layout(display="none")).add_class("payops-row")
            self._row_boxes.append(box)
            self._row_html.append(text)
            self._row_lines.append(line)
        self.w_empty = W.HTML("").add_class("payops-empty")
        self.w_rows = W.VBox([self.w_head, *self._row_lines, self.w_empty]).add_class("payops-queue")

        self.w_prev = W.Button(description="◀ Previous", layout=W.Layout(width="110px")).add_class("payops-prev")
        self.w_next = W.Button(description="Next ▶", layout=W.Layout(width="110px")).add_class("payops-next")
        self.w_page = W.HTML().add_class("payops-page")
        self.w_prev.on_click(lambda _: self.go_to(self.page - 1))
        self.w_next.on_click(lambda _: self.go_to(self.page + 1))

        self.w_note = W.Textarea(value="", placeholder="Note (a rejection needs one)", description="Note",
                                 layout=W.Layout(width="520px", height="54px")).add_class("payops-note")
        self.w_approve = W.Button(description="Approve selected", button_style="success",
                                  icon="check").add_class("payops-approve")
        self.w_reject = W.Button(description="Reject selected", button_style="danger",
                                 icon="times").add_class("payops-reject")
        self.w_process = W.Button(description="Process approved", button_style="warning",
                                  icon="paper-plane").add_class("payops-process")
        self.w_refresh = W.Button(description="Refresh", icon="refresh").add_class("payops-refresh")
        self.w_approve.on_click(lambda _: self.approve(self.w_note.value or None))
        self.w_reject.on_click(lambda _: self.reject(self.w_note.value))
        self.w_process.on_click(lambda _: self._ask_process())
        self.w_refresh.on_click(lambda _: self.refresh())
        if "processor" not in self.roles:
            self.w_process.disabled = True
            self.w_process.tooltip = "Needs the processor role"

        self.w_confirm_text = W.HTML().add_class("payops-confirm-text")
        self.w_confirm_yes = W.Button(description="Yes, send to Stripe", button_style="danger").add_class("payops-confirm-yes")
        self.w_confirm_no = W.Button(description="Cancel").add_class("payops-confirm-no")
        self.w_confirm_yes.on_click(lambda _: self._confirmed_process())
        self.w_confirm_no.on_click(lambda _: self._hide_confirm())
        self.w_confirm = W.VBox([self.w_confirm_text, W.HBox([self.w_confirm_yes, self.w_confirm_no])],
                                layout=W.Layout(display="none", border="1px solid #f0ad4e", padding="6px")
                                ).add_class("payops-confirm")

        self.w_feedback = W.HTML("").add_class("payops-feedback")
        self.w_detail = W.HTML("<i>Tick a request to see its details.</i>").add_class("payops-detail")

        self.widget = W.VBox([
            W.HTML(_CSS),
            self.header,
            W.HBox([self.w_status, self.w_priority, self.w_currency]),
            W.HBox([self.w_min, self.w_search]),
            self.w_rows,
            W.HBox([self.w_prev, self.w_page, self.w_next]),
            self.w_note,
            W.HBox([self.w_approve, self.w_reject, self.w_process, self.w_refresh]),
            self.w_confirm,
            self.w_feedback,
            W.HTML("<h4>Details</h4>"),
            self.w_detail,
        ]).add_class("payops-review")

    # ------------------------------------------------------------------ public API
    def show(self) -> None:
        """Display the app in the notebook (or Voila page)."""
        display(self)

    def _repr_mimebundle_(self, **kwargs: Any) -> dict:
        bundle = self.widget._repr_mimebundle_(**kwargs)
        # The widget's own text repr is long and changes with every run; this one does not.
        bundle["text/plain"] = f"RefundReview(user={self.user!r})"
        return bundle

    def __repr__(self) -> str:
        return f"RefundReview(user={self.user!r}, total={self.total}, page={self.page + 1})"

    @property
    def ids(self) -> list[int]:
        """The request ids on the current page, in queue order."""
        return [int(i) for i in self.rows["id"]] if len(self.rows) else []

    @property
    def pages(self) -> int:
        """How many pages the filtered queue has (at least 1)."""
        return max(1, -(-self.total // self.page_size))

    def set_filter(self, **kw: Any) -> RefundReview:
        """Change filters and go back to page 1.

        Args (all optional; None or "all" clears one):
            status: a status or a list of statuses (default pending only).
            priority: ``URGENT``, ``HIGH`` or ``LARGE``.
            currency: a currency code like ``usd``.
            min_amount: an int in minor units, or a string in major units (``"50.00"``).
            search: text found in the customer id, email, name, or the payment id.
        """
        unknown = set(kw) - set(self.filters)
        if unknown:
            raise TypeError(f"unknown filter(s): {', '.join(sorted(unknown))} (known: {', '.join(self.filters)})")
        if "status" in kw:
            self.filters["status"] = _as_tuple(kw["status"])
        if "priority" in kw:
            p = kw["priority"]
            self.filters["priority"] = None if p in (None, _ALL) else str(p).upper()
        if "currency" in kw:
            c = kw["currency"]
            self.filters["currency"] = None if c in (None, _ALL, "") else str(c).lower()
        if "min_amount" in kw:
            self.filters["min_amount"] = self._min_amount(kw["min_amount"])
        if "search" in kw:
            s = kw["search"]
            self.filters["search"] = s.strip() if isinstance(s, str) and s.strip() else None
        self._sync_filter_widgets()
        self.page = 0
        return self.refresh()

    def refresh(self) -> RefundReview:
        """Read the current page again from the database and redraw."""
        f = self._query_filters()
        try:
            self.total = int(refunds.queue_count(**f, db=self.db, now=self.now))
            if self.page >= self.pages:
                self.page = self.pages - 1
            self.rows = refunds.queue(**f, limit=self.page_size, offset=self.page * self.page_size,
                                      db=self.db, now=self.now)
            counts = refunds.pending_by_priority(db=self.db, now=self.now)
        except PayopsError as exc:
            self._say(f"Could not read the queue: {exc.message}", ok=False)
            return self
        self._render_header(counts)
        self._render_rows()
        return self

    def go_to(self, page: int) -> RefundReview:
        """Show page ``page`` (0-based; clamped to the pages there are)."""
        self.page = min(max(0, int(page)), self.pages - 1)
        return self.refresh()

    def next_page(self) -> RefundReview:
        """Show the next page."""
        return self.go_to(self.page + 1)

    def prev_page(self) -> RefundReview:
        """Show the previous page."""
        return self.go_to(self.page - 1)

    def select(self, ids: int | Iterable[int], *, only: bool = True) -> RefundReview:
        """Tick requests (by id); with ``only`` (default) untick everything else first."""
        ids = [ids] if isinstance(ids, int) else [int(i) for i in ids]
        if only:
            self.selected = set()
        self.selected.update(ids)
        if ids:
            self.focused = ids[-1]
        self._sync_ticks()
        self._render_detail()
        return self

    def select_page(self, value: bool = True) -> RefundReview:
        """Tick (or untick) every request on the current page."""
        if value:
            self.selected.update(self.ids)
        else:
            self.selected.difference_update(self.ids)
        self._sync_ticks()
        return self

    def approve(self, note: str | None = None) -> list:
        """Approve the ticked requests as this user (:func:`payops.refunds.approve`)."""
        ids = self._selection("approve")
        if ids is None:
            return []
        return self._act("Approve", lambda: refunds.approve(ids, user=self.user, note=note or None, db=self.db))

    def reject(self, note: str | None = None) -> list:
        """Reject the ticked requests with ``note`` (:func:`payops.refunds.reject`; a note is required there)."""
        ids = self._selection("reject")
        if ids is None:
            return []
        return self._act("Reject", lambda: refunds.reject(ids, note=note or "", user=self.user, db=self.db))

    def process(self) -> list:
        """Send every approved request to Stripe (:func:`payops.refunds.process`; processor role)."""
        self._hide_confirm()
        return self._act("Process", lambda: refunds.process(user=self.user, db=self.db), keep_selection=True)

    # ------------------------------------------------------------------ actions
    def _selection(self, verb: str) -> list[int] | None:
        if not self.selected:
            self._say(f"Nothing to {verb}: tick one or more requests first.", ok=False)
            return None
        return sorted(self.selected)

    def _act(self, verb: str, call, keep_selection: bool = False) -> list:
        try:
            results = list(call())
        except PayopsError as exc:
            self.results = []
            self.refresh()
            self._say(f"{verb}: nothing changed: {exc.message}", ok=False)
            return []
        self.results = results
        if not keep_selection:
            done = {r.request_id for r in results if r.ok}
            self.selected -= done
        self.refresh()
        self._sync_ticks()
        self._render_detail()
        if any(r.ok for r in results):
            self.w_note.value = ""  # the note went with the decision; don't reuse it by accident
        # Last, so a person (or a browser test) who sees the feedback sees the redrawn queue too.
        self._report(verb, results)
        return results

    def _report(self, verb: str, results: Sequence[Any]) -> None:
        if not results:
            self._say(f"{verb}: nothing to do.", ok=True)
            return
        ok = [r for r in results if r.ok]
        bad = [r for r in results if not r.ok]
        lines_text, lines_html = [], []
        if ok:
            head = f"{verb}: {len(ok)} changed"
            lines_text.append(head)
            lines_html.append(f'<div class="ok">✔ {html.escape(head)}</div>')
        for r in results:
            mark, cls = ("✔", "ok") if r.ok else ("✖", "bad")
            state = r.status if r.ok else f"unchanged ({r.status})"
            text = f"#{r.request_id} {state}: {r.message}" if r.message else f"#{r.request_id} {state}"
            lines_text.append(text)
            lines_html.append(f'<div class="{cls}">{mark} {html.escape(text)}</div>')
        if bad and not ok:
            lines_text.insert(0, f"{verb}: nothing changed")
            lines_html.insert(0, f'<div class="bad"><b>{html.escape(verb)}: nothing changed</b></div>')
        self.feedback = "\n".join(lines_text)
        self.w_feedback.value = "".join(lines_html)

    def _say(self, text: str, ok: bool) -> None:
        self.feedback = text
        cls = "ok" if ok else "bad"
        self.w_feedback.value = f'<div class="{cls}">{"✔" if ok else "✖"} {html.escape(text)}</div>'

    def _ask_process(self) -> None:
        if "processor" not in self.roles:
            # refunds.process would refuse too; saying it here saves a round trip.
            self._say(f"Process: nothing changed: {self.user} does not have the processor role.", ok=False)
            return
        try:
            approved = refunds.queue(status=("APPROVED",), limit=1000, db=self.db, now=self.now)
            count = refunds.queue_count(status=("APPROVED",), db=self.db, now=self.now)
        except PayopsError as exc:
            self._say(f"Process: {exc.message}", ok=False)
            return
        totals = approved.groupby("currency")["amount"].sum() if len(approved) else {}
        money = ", ".join(D.money(int(v), str(c)) for c, v in dict(totals).items()) or "nothing"
        self.w_confirm_text.value = (
            f"<b>Send {count} approved refund(s) to Stripe?</b> Total {html.escape(money)}. "
            "This moves money and cannot be undone."
        )
        self.w_confirm.layout.display = "flex"

    def _confirmed_process(self) -> None:
        self.process()

    def _hide_confirm(self) -> None:
        self.w_confirm.layout.display = "none"

    # ------------------------------------------------------------------ widget events
    def _on_filter_widget(self, change: dict) -> None:
        if self._quiet:
            return
        owner = change["owner"]
        if owner is self.w_status:
            self.set_filter(status=change["new"])
        elif owner is self.w_priority:
            self.set_filter(priority=change["new"])
        elif owner is self.w_currency:
            self.set_filter(currency=change["new"])
        elif owner is self.w_min:
            try:
                self.set_filter(min_amount=change["new"] or None)
            except PayopsError as exc:
                self._say(f"Minimum amount: {exc.message}", ok=False)
        elif owner is self.w_search:
            self.set_filter(search=change["new"])

    def _on_row_tick(self, i: int, change: dict) -> None:
        if self._quiet or i >= len(self.rows):
            return
        rid = int(self.rows["id"].iloc[i])
        if change["new"]:
            self.selected.add(rid)
            self.focused = rid
        else:
            self.selected.discard(rid)
            if self.focused == rid:
                self.focused = max(self.selected) if self.selected else None
        self._sync_select_all()
        self._render_detail()

    def _on_select_all(self, change: dict) -> None:
        if self._quiet:
            return
        self.select_page(bool(change["new"]))

    # ------------------------------------------------------------------ rendering
    def _query_filters(self) -> dict[str, Any]:
        return dict(self.filters)

    def _min_amount(self, value: Any) -> int | None:
        if value is None or value == "":
            return None
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        # Typed in major units: the currency filter's exponent, else two decimals.
        currency = self.filters.get("currency") or "usd"
        return from_decimal(str(value), currency)

    def _sync_filter_widgets(self) -> None:
        f = self.filters
        self._quiet = True
        try:
            status = f["status"]
            self.w_status.value = status[0] if status and len(status) == 1 and status[0] in dict(
                (v, k) for k, v in _STATUS_OPTIONS) else _ALL
            self.w_priority.value = f["priority"] or _ALL
            currencies = [v for _, v in self.w_currency.options]
            if f["currency"] and f["currency"] not in currencies:
                self.w_currency.options = list(self.w_currency.options) + [(f["currency"].upper(), f["currency"])]
            self.w_currency.value = f["currency"] or _ALL
            m = f["min_amount"]
            self.w_min.value = "" if m is None else str(Decimal(m).scaleb(-exponent(f["currency"] or "usd")))
            self.w_search.value = f["search"] or ""
        finally:
            self._quiet = False

    def _render_header(self, counts: dict[str, int]) -> None:
        roles = ", ".join(self.roles) or "no role"
        mode = " (single-user mode: every role)" if self.single_user else ""
        chips = " &nbsp; ".join(
            f"{D.PRIORITY_BADGES.get(k, k)} <b>{int(v)}</b>" for k, v in counts.items() if k != "NORMAL"
        )
        normal = counts.get("NORMAL", 0)
        self.header.value = (
            f"<div>Reviewing as <b class='payops-user'>{html.escape(self.user)}</b> ({html.escape(roles)}{mode})</div>"
            f"<div>Pending: {chips} &nbsp; other <b>{int(normal)}</b></div>"
        )

    def _row_html_of(self, row: Any) -> str:
        rid = int(row.id)
        amount = row.amount_display if isinstance(getattr(row, "amount_display", None), str) else D.money(row.amount, row.currency)
        who = row.customer_name if isinstance(row.customer_name, str) and row.customer_name else row.customer
        email = row.customer_email if isinstance(row.customer_email, str) else ""
        live = bool(row.livemode) if not D._isna(row.livemode) else False
        pay = row.payment_intent if isinstance(row.payment_intent, str) and row.payment_intent else row.charge
        cells = [
            f"#{rid}",
            html.escape(D.priority_badges(row.priorities)),
            html.escape(D.status_badge(row.status)),
            html.escape(D.age(row.age_hours)),
            html.escape(amount),
            f"{html.escape(str(who or ''))} <span style='color:#666'>{html.escape(email)}</span>",
            D.link(pay, live, text=(str(pay)[:14] + "…") if pay and len(str(pay)) > 15 else pay),
            html.escape(str(row.reason or "")),
        ]
        return "".join(_cell(text, width, "payops-money" if name == "Amount" else "")
                       for text, (name, width) in zip(cells, _COLS, strict=False))

    def _render_rows(self) -> None:
        rows = list(self.rows.itertuples(index=False)) if len(self.rows) else []
        self._quiet = True
        try:
            for i, line in enumerate(self._row_lines):
                box = self._row_boxes[i]
                if i < len(rows):
                    row = rows[i]
                    rid = int(row.id)
                    self._row_html[i].value = self._row_html_of(row)
                    box._dom_classes = ("payops-row-select", f"payops-select-{rid}")
                    box.value = rid in self.selected
                    line.layout.display = "flex"
                else:
                    line.layout.display = "none"
                    box.value = False
                    box._dom_classes = ("payops-row-select",)
        finally:
            self._quiet = False
        self.w_empty.value = "" if rows else "<i>No refund requests match these filters.</i>"
        first = self.page * self.page_size + 1 if rows else 0
        last = self.page * self.page_size + len(rows)
        self.w_page.value = (f"&nbsp; Page {self.page + 1} of {self.pages} &nbsp;·&nbsp; "
                             f"{first}–{last} of {self.total:,} &nbsp;")
        self.w_prev.disabled = self.page == 0
        self.w_next.disabled = self.page >= self.pages - 1
        self._sync_select_all()

    def _sync_ticks(self) -> None:
        self._quiet = True
        try:
            for i, rid in enumerate(self.ids):
                self._row_boxes[i].value = rid in self.selected
        finally:
            self._quiet = False
        self._sync_select_all()

    def _sync_select_all(self) -> None:
        self._quiet = True
        try:
            ids = self.ids
            self.w_select_all.value = bool(ids) and all(i in self.selected for i in ids)
        finally:
            self._quiet = False

    def _render_detail(self) -> None:
        rid = self.focused if self.focused in self.selected else None
        if rid is None:
            self.w_detail.value = "<i>Tick a request to see its details.</i>"
            return
        try:
            self.w_detail.value = self.detail_html(rid)
        except PayopsError as exc:
            self.w_detail.value = f"<i>Could not load request #{rid}: {html.escape(exc.message)}</i>"

    def _verdict(self, req: dict, pay_id: str):
        """The eligibility verdict of this request (its own amount not counted as another open request)."""
        rid, status = int(req["id"]), req.get("status")
        if status not in ("PENDING", "APPROVED", "FAILED"):
            return refunds.check(pay_id, db=self.db)  # decided or done: the payment's state now
        return refunds.check(pay_id, int(req["amount"]), exclude=rid, db=self.db)

    def detail_html(self, request_id: int) -> str:
        """The detail pane of one request as HTML: payment breakdown, history, booking, verdict, links."""
        req = refunds.get(int(request_id), db=self.db)
        pay_id = req.get("payment_intent") or req.get("charge")
        bd = D.payment_breakdown(pay_id, db=self.db) if pay_id else None
        verdict = self._verdict(req, pay_id) if pay_id else None
        live = bool((verdict.payment or {}).get("livemode")) if verdict else bool(bd and bd.get("livemode"))
        cur = req.get("currency")
        e = html.escape
        parts = [f"<h4 style='margin:2px 0'>Request #{int(req['id'])} &nbsp; {e(D.status_badge(req.get('status')))}</h4>"]
        parts.append(
            "<table>"
            f"<tr><th>Amount</th><td>{e(D.money(req.get('amount'), cur))}</td>"
            f"<th>Reason</th><td>{e(str(req.get('reason') or ''))}</td></tr>"
            f"<tr><th>Requested by</th><td>{e(str(req.get('requested_by') or ''))}</td>"
            f"<th>at</th><td>{e(_when(req.get('requested_at')))}</td></tr>"
            f"<tr><th>Note</th><td colspan=3>{e(str(req.get('note') or ''))}</td></tr>"
            "</table>"
        )
        if bd:
            c = bd["currency"]
            parts.append(
                "<b>Payment</b><table>"
                + "".join(
                    f"<tr><td>{label}</td><td class='num'>{e(D.money(bd[key], c)) if bd[key] is not None else '–'}</td></tr>"
                    for label, key in D.BREAKDOWN_FIGURES
                )
                + "</table>"
            )
            parts.append(
                f"<b>Booking</b> {e(str(bd.get('booking_id') or '–'))}: session "
                f"<b>{e(str(bd.get('booking_status') or 'unknown'))}</b>"
                f"{', starts ' + e(_when(bd.get('session_start'))) if bd.get('session_start') is not None else ''}"
                f"{', tutor ' + e(str(bd.get('tutor_id'))) if bd.get('tutor_id') else ''}<br>"
            )
        if verdict is not None:
            mark = "✅ eligible" if verdict.eligible else "⛔ not eligible"
            reasons = "".join(f"<li>{e(str(r))}</li>" for r in verdict.reasons)
            refundable = (verdict.payment or {}).get("refundable")
            extra = f" (still refundable: {e(D.money(refundable, cur))})" if refundable is not None else ""
            parts.append(f"<b>Eligibility</b>: {mark}{extra}<ul style='margin:0'>{reasons}</ul>")
        pi = req.get("payment_intent")
        if pi:
            stripe_refunds = D.payment_refunds(pi, db=self.db)
            if len(stripe_refunds):
                items = "".join(
                    f"<li>{e(_when(r.created))}: {D.link(r.id, live)} {e(D.money(r.amount, r.currency))} "
                    f"{e(str(r.status))}</li>" for r in stripe_refunds.itertuples(index=False))
                parts.append(f"<b>Refunds of this payment</b><ul style='margin:0'>{items}</ul>")
        hist = refunds.history(int(request_id), db=self.db)
        if len(hist):
            items = "".join(
                f"<li>{e(_when(getattr(h, 'at', None)))} <b>{e(str(getattr(h, 'actor', '')))}</b> "
                f"{e(str(getattr(h, 'action', '')))}"
                f"{': ' + e(str(h.note)) if isinstance(getattr(h, 'note', None), str) and h.note else ''}</li>"
                for h in hist.itertuples(index=False))
            parts.append(f"<b>History</b><ul style='margin:0'>{items}</ul>")
        links = [D.link(pi, live, "payment") if pi else (D.link(req.get("charge"), live, "payment") if req.get("charge") else "")]
        if req.get("customer"):
            links.append(D.link(req["customer"], live, "customer"))
        if req.get("stripe_refund_id"):
            links.append(D.link(req["stripe_refund_id"], live, "refund"))
        parts.append("<b>Stripe dashboard</b>: " + " · ".join(x for x in links if x))
        return "".join(parts)


def _when(value: Any) -> str:
    if value is None or D._isna(value):
        return ""
    try:
        return pd.Timestamp(value).tz_convert("UTC").strftime("%Y-%m-%d %H:%M UTC")
    except (TypeError, ValueError):
        try:
            return pd.Timestamp(value).strftime("%Y-%m-%d %H:%M")
        except (TypeError, ValueError):
            return str(value)

"""The refund review app: an ipywidgets front end over :mod:`payops.refunds`.

A reviewer's morning: the queue on the left (most urgent first, or oldest, or largest), the
request being read on the right with everything needed to decide it (amount, eligibility,
where a LARGE request stands in its two approvals, the customer's other requests and
disputes, the payment's breakdown, its history, full Stripe ids with dashboard links), and
Approve / Reject buttons there; after a decision the next request opens.

Safety rules the app keeps:

- A decision acts only on requests the reviewer can see: ticks are dropped from requests a
  filter, a page change or another reviewer's decision has hidden, and the bulk buttons act
  on the ticked rows of the page on screen, never on anything else.
- The app always shows how many requests are ticked and their total per currency; a bulk
  Approve or Reject of more than one request asks for a confirmation naming the count and
  the totals, and what was confirmed is exactly what is sent (any change cancels it).

Decisions go through one small object, :class:`payops.service.RefundActions` (the library
as this user in single-user mode, ``payops serve`` with the user's hub token in team mode,
where the hub, not this process, says who the user is); the queue and the detail come from
two library reads, :func:`payops.refunds.queue_page` (the page, its counts, the currencies)
and :func:`payops.refunds.request_detail` (the detail pane), each on one short connection:
opening the database costs more than the queries, so a screen opens it at most twice. The
app holds no database connection between actions.

Keyboard: ipywidgets has no clean way to bind keys (it needs an extra front-end extension
such as ipyevents, which Voila would also have to serve), so there are no shortcuts; every
control is a real button, checkbox or field, so Tab / Space / Enter work as in any page.

Widgets carry stable CSS classes (``payops-review``, ``payops-select-<id>``,
``payops-open-<id>``, ``payops-approve`` ...) so a browser test can find them.

Example (in JupyterLab or Voila)::

    from payops.ui import RefundReview
    RefundReview().show()
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import ipywidgets as W
import pandas as pd
from IPython.display import display

from payops import refunds
from payops.config import get_settings
from payops.errors import PayopsError
from payops.money import exponent, from_decimal
from payops.service import RefundActions, refund_actions
from payops.ui import review_html as H
from payops.ui.review_parts import DetailPane, QueueRows

__all__ = ["RefundReview", "PAGE_SIZE"]

PAGE_SIZE = 25
_ALL = "all"
_STATUS_OPTIONS = [("Pending", "PENDING"), ("Approved", "APPROVED"), ("Rejected", "REJECTED"),
                   ("Processing", "PROCESSING"), ("Processed", "PROCESSED"), ("Failed", "FAILED"),
                   ("All statuses", _ALL)]
_PRIORITY_OPTIONS = [("Any priority", _ALL)] + [(p, p) for p in refunds.PRIORITIES] + [("Normal", "NORMAL")]
_SORT_LABELS = {"priority": "Priority", "age": "Oldest first", "amount": "Largest amount (per currency)"}
_SORT_OPTIONS = [(_SORT_LABELS.get(s, s), s) for s in refunds.SORTS]


@dataclass
class Pending:
    """A decision waiting for the reviewer's confirmation: exactly these requests."""

    verb: str  # "Approve", "Reject" or "Process"
    ids: list[int]
    note: str | None


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
        actions: who carries out decisions (default :func:`payops.service.refund_actions`); its
            ``user`` and ``roles`` are the app's. In team mode without a service or a hub token
            the app opens read-only and says why.

    Attributes:
        rows: the current page as :func:`payops.refunds.queue` returned it.
        total: how many requests match the filters.
        selected: the ids ticked (always rows of the page on screen).
        opened: the id of the request in the detail pane (a row on screen), or None.
        pending: the decision waiting for a confirmation, or None.
        feedback: the plain-text feedback of the last action.
        results: the result list of the last action.
    """

    def __init__(self, user: str | None = None, *, page_size: int = PAGE_SIZE, db=None, now=None,
                 actions: RefundActions | None = None):
        settings = get_settings()
        self.single_user = settings.single_user
        self.read_only = ""  # why decisions are impossible, if they are
        if actions is None:
            try:
                actions = refund_actions(user, db=db, what="a review decision")
            except PayopsError as exc:
                self.read_only = exc.message
        self.actions: RefundActions | None = actions
        self.user = actions.user if actions is not None else (user or settings.user)
        self.roles: tuple[str, ...] = tuple(actions.roles) if actions is not None else ()
        self.senior = "senior" in self.roles
        # "Waiting for me" needs someone else's first approval: with one user (every role) there is none.
        self.waiting_filter = self.senior and not self.single_user
        self.db = db
        self.now = now
        self.page_size = int(page_size)
        self.page = 0
        self.sort = "priority"
        self.filters: dict[str, Any] = {"status": ("PENDING",), "priority": None, "currency": None,
                                        "min_amount": None, "search": None, "waiting_for_me": False}
        self.rows = pd.DataFrame()
        self.total = 0
        self.selected: set[int] = set()
        self.opened: int | None = None
        self.pending: Pending | None = None
        self.notice = ""
        self.feedback = ""
        self.results: list[Any] = []
        self._hold_pane = False  # True while a decision redraws the queue: the pane is drawn once, after
        self._quiet = False  # True while the code (not a person) sets widget values
        self._build()
        self.refresh()

    # ------------------------------------------------------------------ widgets
    def _build(self) -> None:
        wide = {"description_width": "initial"}
        self.queue = QueueRows(self.page_size, on_tick=self._on_row_tick, on_open=self._on_open,
                               on_select_all=self.select_page, on_page=lambda step: self.go_to(self.page + step))
        self.pane = DetailPane(on_approve=lambda rid, note: self._decide_open("Approve", note, rid),
                               on_reject=lambda rid, note: self.reject_open(note, request_id=rid), db=self.db,
                               now=self.now)
        # Short names for the widgets people (and tests) use most.
        self.w_note, self.w_detail = self.pane.note, self.pane.detail
        self.w_select_all, self.w_prev, self.w_next = self.queue.select_all, self.queue.prev, self.queue.next
        self.header = W.HTML().add_class("payops-header")
        self.w_status = W.Dropdown(options=_STATUS_OPTIONS, value="PENDING", description="Status", style=wide,
                                   layout=W.Layout(width="170px")).add_class("payops-filter-status")
        self.w_priority = W.Dropdown(options=_PRIORITY_OPTIONS, value=_ALL, description="Priority", style=wide,
                                     layout=W.Layout(width="180px")).add_class("payops-filter-priority")
        # Its currencies come with each page of the queue (see _set_currencies).
        self.w_currency = W.Dropdown(options=[("Any currency", _ALL)], value=_ALL, description="Currency", style=wide,
                                     layout=W.Layout(width="190px")).add_class("payops-filter-currency")
        self.w_sort = W.Dropdown(options=_SORT_OPTIONS, value="priority", description="Sort", style=wide,
                                 layout=W.Layout(width="270px")).add_class("payops-sort")
        self.w_min = W.Text(value="", placeholder="e.g. 50.00", description="Min amount", continuous_update=False,
                            style=wide, layout=W.Layout(width="190px")).add_class("payops-filter-min")
        self.w_search = W.Text(value="", placeholder="customer, email, pi_ / ch_ id", description="Search",
                               continuous_update=False, style=wide,
                               layout=W.Layout(width="330px")).add_class("payops-filter-search")
        self.w_waiting = W.ToggleButton(value=False, description="Waiting for me", icon="user-check",
                                        tooltip="LARGE requests with a first approval that you, a senior, may second",
                                        layout=W.Layout(display="inline-flex" if self.waiting_filter else "none")
                                        ).add_class("payops-waiting")
        for w in (self.w_status, self.w_priority, self.w_currency, self.w_sort, self.w_min, self.w_search,
                  self.w_waiting):
            w.observe(self._on_filter_widget, names="value")

        self.w_selection = W.HTML().add_class("payops-selection")
        self.w_approve = W.Button(description="Approve selected", button_style="success", icon="check",
                                  layout=W.Layout(width="auto")).add_class("payops-approve")
        self.w_reject = W.Button(description="Reject selected", button_style="danger", icon="times",
                                 layout=W.Layout(width="auto")).add_class("payops-reject")
        self.w_process = W.Button(description="Process approved", button_style="warning", icon="paper-plane",
                                  layout=W.Layout(width="auto")).add_class("payops-process")
        self.w_refresh = W.Button(description="Refresh", icon="refresh", layout=W.Layout(width="auto")
                                  ).add_class("payops-refresh")
        self.w_approve.on_click(lambda _: self.approve(self.pane.note.value or None))
        self.w_reject.on_click(lambda _: self.reject(self.pane.note.value))
        self.w_process.on_click(lambda _: self.process())
        self.w_refresh.on_click(lambda _: self._refresh_all())
        if "processor" not in self.roles:
            self.w_process.disabled = True
            self.w_process.tooltip = "Needs the processor role"

        self.w_confirm_text = W.HTML().add_class("payops-confirm-text")
        self.w_confirm_yes = W.Button(description="Yes", button_style="danger",
                                      layout=W.Layout(width="auto")).add_class("payops-confirm-yes")
        self.w_confirm_no = W.Button(description="Cancel", layout=W.Layout(width="auto")).add_class("payops-confirm-no")
        self.w_confirm_yes.on_click(lambda _: self.confirm())
        self.w_confirm_no.on_click(lambda _: self.cancel())
        self.w_confirm = W.VBox([self.w_confirm_text, W.HBox([self.w_confirm_yes, self.w_confirm_no])],
                                layout=W.Layout(display="none", border="1px solid #efc46d", padding="6px",
                                                margin="4px 0")).add_class("payops-confirm")
        self.w_feedback = W.HTML("").add_class("payops-feedback")

        self.widget = W.VBox([
            W.HTML(H.CSS),
            self.header,
            W.HBox([self.w_status, self.w_priority, self.w_currency, self.w_sort]),
            W.HBox([self.w_min, self.w_search, self.w_waiting]),
            W.HBox([self.w_selection, self.w_approve, self.w_reject, self.w_process, self.w_refresh],
                   layout=W.Layout(align_items="center")),
            self.w_confirm,
            self.w_feedback,
            W.HBox([self.queue.widget, self.pane.widget],
                   layout=W.Layout(flex_flow="row wrap", align_items="flex-start")),
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
    def w_approve_one(self) -> W.Button:
        """The detail pane's "Approve #N" button (a new one for each request opened)."""
        return self.pane.approve

    @property
    def w_reject_one(self) -> W.Button:
        """The detail pane's "Reject #N" button."""
        return self.pane.reject

    @property
    def ids(self) -> list[int]:
        """The request ids on the current page, in queue order."""
        return [int(i) for i in self.rows["id"]] if len(self.rows) else []

    @property
    def pages(self) -> int:
        """How many pages the filtered queue has (at least 1)."""
        return max(1, -(-self.total // self.page_size))

    @property
    def ticked(self) -> list[int]:
        """The requests a bulk decision would act on: ticked rows of the page on screen, in queue order."""
        return [i for i in self.ids if i in self.selected]

    def set_filter(self, **kw: Any) -> RefundReview:
        """Change filters (or the order) and go back to page 1.

        Args (all optional; None or "all" clears one):
            status: a status or a list of statuses (default pending only).
            priority: ``URGENT``, ``HIGH``, ``LARGE`` or ``NORMAL``.
            currency: a currency code like ``usd``.
            min_amount: an int in minor units, or a string in major units (``"50.00"``).
            search: text found in the customer id, email, name, or the payment id.
            waiting_for_me: only LARGE requests waiting for this user's second approval (seniors).
            sort: ``priority`` (default), ``age`` (oldest first) or ``amount`` (largest first per currency).
        """
        unknown = set(kw) - set(self.filters) - {"sort"}
        if unknown:
            raise TypeError(f"unknown filter(s): {', '.join(sorted(unknown))} "
                            f"(known: {', '.join([*self.filters, 'sort'])})")
        f = self.filters
        if "sort" in kw:
            sort = kw["sort"] or "priority"
            if sort not in refunds.SORTS:
                raise TypeError(f"unknown sort {sort!r} (known: {', '.join(refunds.SORTS)})")
            self.sort = sort
        if "status" in kw:
            f["status"] = _as_tuple(kw["status"])
        if "priority" in kw:
            f["priority"] = None if kw["priority"] in (None, _ALL) else str(kw["priority"]).upper()
        if "currency" in kw:
            f["currency"] = None if kw["currency"] in (None, _ALL, "") else str(kw["currency"]).lower()
        if "min_amount" in kw:
            f["min_amount"] = self._min_amount(kw["min_amount"])
        if "search" in kw:
            s = kw["search"]
            f["search"] = s.strip() if isinstance(s, str) and s.strip() else None
        if "waiting_for_me" in kw:
            f["waiting_for_me"] = bool(kw["waiting_for_me"])
        self._sync_filter_widgets()
        self.page = 0
        return self.refresh()

    def refresh(self) -> RefundReview:
        """Read the current page again from the database and redraw (ticks of hidden rows are dropped)."""
        try:
            # One connection for the page, its counts and the currencies.
            shown = refunds.queue_page(**self._query_filters(), sort=self.sort, page=self.page,
                                       page_size=self.page_size,
                                       count_waiting_for=self.user if self.waiting_filter else None,
                                       db=self.db, now=self.now)
        except PayopsError as exc:
            self._say(f"Could not read the queue: {exc.message}", ok=False)
            return self
        self.total, self.page, self.rows = shown.total, shown.page, shown.rows
        self._set_currencies(shown.currencies)
        self._render_header(shown.by_priority, shown.waiting)
        self._render_rows()
        return self

    def _refresh_all(self) -> None:
        self.refresh()
        self.pane.show(self.opened, self._open_row(), user=self.user, senior=self.senior, force=True)

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
        """Tick requests on the page on screen (by id); with ``only`` (default) untick the others.

        Ids not on screen are not ticked (a decision never acts on what the reviewer cannot
        see); the notice line names them.
        """
        wanted = [ids] if isinstance(ids, int) else [int(i) for i in ids]
        shown = set(self.ids)
        if only:
            self.selected = set()
        self.selected.update(i for i in wanted if i in shown)
        hidden = [i for i in wanted if i not in shown]
        self.notice = (f"Not ticked (not on screen): {', '.join(f'#{i}' for i in hidden)}" if hidden else "")
        self._after_selection_change()
        return self

    def select_page(self, value: bool = True) -> RefundReview:
        """Tick (or untick) every request on the current page."""
        if value:
            self.selected.update(self.ids)
        else:
            self.selected.difference_update(self.ids)
        self._after_selection_change()
        return self

    def open(self, request_id: int | None) -> RefundReview:
        """Show a request of the page on screen in the detail pane (None: show none)."""
        if request_id is not None and int(request_id) not in self.ids:
            self._say(f"Request #{int(request_id)} is not on screen: change the filters or the page to see it.",
                      ok=False)
            return self
        self.opened = None if request_id is None else int(request_id)
        self.queue.mark(self.ids, selected=self.selected, opened=self.opened)
        self.pane.show(self.opened, self._open_row(), user=self.user, senior=self.senior)
        return self

    def approve(self, note: str | None = None, *, confirmed: bool = False) -> list:
        """Approve the ticked requests on screen as this user.

        More than one asks for a confirmation first (shown in the app; returns ``[]``):
        :meth:`confirm` carries it out, :meth:`cancel` drops it. ``confirmed=True`` skips it.
        """
        return self._bulk("Approve", note or None, confirmed)

    def reject(self, note: str | None = None, *, confirmed: bool = False) -> list:
        """Reject the ticked requests on screen with ``note`` (required); confirmation as :meth:`approve`."""
        if not (note or "").strip():
            self._say("Nothing changed: a rejection needs a note. Write why in the Note box, then press Reject.",
                      ok=False)
            return []
        return self._bulk("Reject", note, confirmed)

    def approve_open(self, note: str | None = None) -> list:
        """Approve the request in the detail pane; the next one opens."""
        return self._decide_open("Approve", note or None)

    def reject_open(self, note: str | None = None, *, request_id: int | None = None) -> list:
        """Reject the request in the detail pane with ``note`` (required); the next one opens."""
        if not (note or "").strip():
            self._say("Nothing changed: a rejection needs a note. Write why in the Note box, then press Reject.",
                      ok=False)
            return []
        return self._decide_open("Reject", note, request_id)

    def process(self, *, confirmed: bool = False) -> list:
        """Send every APPROVED request to Stripe (processor role), after a confirmation naming them."""
        if "processor" not in self.roles:
            # The library would refuse too; saying it here saves a round trip.
            self._say(f"Nothing was sent: {self.user} does not have the processor role.", ok=False)
            return []
        try:
            approved = refunds.queue(status=("APPROVED",), limit=None, db=self.db, now=self.now)
        except PayopsError as exc:
            self._say(f"Nothing was sent: {exc.message}", ok=False)
            return []
        ids = [int(i) for i in approved["id"]]
        if not ids:
            self._say("Nothing to send: no request is approved.", ok=True)
            return []
        if not confirmed:
            totals = H.money_totals(zip(approved["amount"], approved["currency"], strict=True))
            self._ask(Pending("Process", ids, None),
                      f"<b>Send {_count(len(ids), 'approved refund')} to Stripe, total {html.escape(totals)}?</b> "
                      "This moves money and cannot be undone.", f"Yes, send {len(ids)} to Stripe")
            return []
        return self._run(Pending("Process", ids, None))

    def confirm(self) -> list:
        """Carry out the decision waiting for a confirmation (what the Yes button does)."""
        pending = self.pending
        self._hide_confirm()
        if pending is None:
            self._say("Nothing to confirm.", ok=False)
            return []
        if pending.verb != "Process" and pending.ids != self.ticked:
            # Defensive: every change of the ticks cancels a confirmation, so this should not happen.
            self._say("Nothing changed: the ticked requests changed after the question; ask again.", ok=False)
            return []
        return self._run(pending)

    def cancel(self) -> RefundReview:
        """Drop the decision waiting for a confirmation."""
        if self.pending is not None:
            self._hide_confirm()
            self._say("Cancelled: nothing changed.", ok=True)
        return self

    # ------------------------------------------------------------------ decisions
    def _bulk(self, verb: str, note: str | None, confirmed: bool) -> list:
        ids = self.ticked
        if not ids:
            self._say(f"Nothing to {verb.lower()}: tick one or more requests first.", ok=False)
            return []
        if len(ids) > 1 and not confirmed:
            totals = H.money_totals(self._amounts(ids))
            shown = ", ".join(f"#{i}" for i in ids[:12]) + (" ..." if len(ids) > 12 else "")
            text = (f"<b>{verb} {len(ids)} requests, total {html.escape(totals)}?</b> "
                    f"<span class='payops-muted'>({html.escape(shown)})</span>")
            if note:
                text += f"<br>Note: {html.escape(note)}"
            self._ask(Pending(verb, ids, note), text, f"Yes, {verb.lower()} {len(ids)} requests")
            return []
        return self._run(Pending(verb, ids, note))

    def _decide_open(self, verb: str, note: str | None, request_id: int | None = None) -> list:
        """Decide the open request; ``request_id``: the one a pane button was drawn for."""
        if self.opened is None or self.opened not in self.ids:
            self._say(f"Nothing to {verb.lower()}: open a request first.", ok=False)
            return []
        if request_id is not None and request_id != self.opened:
            # A late click (the second of a double click) on a request that is no longer open.
            self._say(f"Nothing changed: request #{request_id} is no longer open (#{self.opened} is); "
                      f"press {verb} again to decide #{self.opened}.", ok=False)
            return []
        return self._run(Pending(verb, [self.opened], note))

    def _run(self, p: Pending) -> list:
        self._hide_confirm()
        before = self.ids
        opened = self.opened
        acts = self.actions
        if acts is None:
            self._say(f"Nothing changed: {self.read_only}", ok=False)
            return []
        call = {"Approve": lambda: acts.approve(p.ids, note=p.note),
                "Reject": lambda: acts.reject(p.ids, note=p.note or ""),
                "Process": lambda: acts.process(ids=p.ids)}[p.verb]
        try:
            results = list(call())
        except PayopsError as exc:
            self.results = []
            self.refresh()
            self._say(f"Nothing changed: {exc.message}", ok=False)
            return []
        self.results = results
        done = {r.request_id for r in results if r.ok}
        self.selected -= done  # a decided request is done with, even a LARGE one after its first approval
        self.notice = ""
        self._hold_pane = True
        try:
            self.refresh()
        finally:
            self._hold_pane = False
        if opened is not None and opened in done:
            self._open_next(opened, before)
        self.pane.show(self.opened, self._open_row(), user=self.user, senior=self.senior, force=True)
        if done:
            self.w_note.value = ""  # the note went with the decision; don't reuse it by accident
        # Last, so a person (or a browser test) who sees the feedback sees the redrawn queue too.
        self.feedback, self.w_feedback.value = H.feedback(p.verb, results)
        return results

    def _open_next(self, decided: int, before: list[int]) -> None:
        """After a decision on the open request: the one after it in the queue as it was, if still shown."""
        now_shown = self.ids
        after = before[before.index(decided) + 1:] if decided in before else []
        candidates = [i for i in after if i in now_shown] + [i for i in now_shown if i != decided]
        self.opened = candidates[0] if candidates else None
        self.queue.mark(self.ids, selected=self.selected, opened=self.opened)

    def _amounts(self, ids: list[int]) -> list[tuple[int, str]]:
        if not len(self.rows):
            return []
        rows = self.rows[self.rows["id"].astype(int).isin(ids)]
        return [(int(a), str(c)) for a, c in zip(rows["amount"], rows["currency"], strict=True)]

    def _ask(self, pending: Pending, text: str, yes: str) -> None:
        self.pending = pending
        self.w_confirm_text.value = text
        self.w_confirm_yes.description = yes
        self.w_confirm.layout.display = "flex"

    def _hide_confirm(self) -> None:
        self.pending = None
        self.w_confirm.layout.display = "none"

    def _say(self, text: str, ok: bool) -> None:
        self.feedback = text
        mark = H.badge("OK", "ok") if ok else H.badge("NOT DONE", "bad")
        self.w_feedback.value = f'<div class="{"ok" if ok else "bad"}">{mark}{html.escape(text)}</div>'

    # ------------------------------------------------------------------ widget events
    def _on_filter_widget(self, change: dict) -> None:
        if self._quiet:
            return
        owner, new = change["owner"], change["new"]
        names = {id(self.w_status): "status", id(self.w_priority): "priority", id(self.w_currency): "currency",
                 id(self.w_sort): "sort", id(self.w_search): "search", id(self.w_waiting): "waiting_for_me"}
        if owner is self.w_min:
            try:
                self.set_filter(min_amount=new or None)
            except PayopsError as exc:
                self._say(f"Minimum amount: {exc.message}", ok=False)
            return
        self.set_filter(**{names[id(owner)]: new})

    def _on_row_tick(self, i: int, ticked: bool) -> None:
        if i >= len(self.rows):
            return
        # Ticking does not open the request: ticking ten rows stays instant (opening reads its details).
        rid = int(self.rows["id"].iloc[i])
        if ticked:
            self.selected.add(rid)
        else:
            self.selected.discard(rid)
        self.notice = ""
        self._after_selection_change()

    def _on_open(self, i: int) -> None:
        if i < len(self.rows):
            self.open(int(self.rows["id"].iloc[i]))

    # ------------------------------------------------------------------ rendering
    def _query_filters(self) -> dict[str, Any]:
        f = {k: v for k, v in self.filters.items() if k != "waiting_for_me"}
        if self.filters["waiting_for_me"]:
            f["waiting_for"] = self.user
        return f

    def _min_amount(self, value: Any) -> int | None:
        if value is None or value == "":
            return None
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        # Typed in major units: the currency filter's exponent, else two decimals.
        return from_decimal(str(value), self.filters.get("currency") or "usd")

    def _sync_filter_widgets(self) -> None:
        f = self.filters
        self._quiet = True
        try:
            status = f["status"]
            known = {v for _, v in _STATUS_OPTIONS}
            self.w_status.value = status[0] if status and len(status) == 1 and status[0] in known else _ALL
            self.w_priority.value = f["priority"] or _ALL
            currencies = [v for _, v in self.w_currency.options]
            if f["currency"] and f["currency"] not in currencies:
                self.w_currency.options = list(self.w_currency.options) + [(f["currency"].upper(), f["currency"])]
            self.w_currency.value = f["currency"] or _ALL
            m = f["min_amount"]
            self.w_min.value = "" if m is None else str(Decimal(m).scaleb(-exponent(f["currency"] or "usd")))
            self.w_search.value = f["search"] or ""
            self.w_sort.value = self.sort
            self.w_waiting.value = bool(f["waiting_for_me"])
        finally:
            self._quiet = False

    def _set_currencies(self, currencies: list[str]) -> None:
        """The currency filter's choices: those requests exist in, and the one chosen (kept)."""
        chosen = self.filters["currency"]
        values = list(currencies) + ([chosen] if chosen and chosen not in currencies else [])
        options = [("Any currency", _ALL)] + [(c.upper(), c) for c in values]
        if [tuple(o) for o in self.w_currency.options] == options:
            return
        self._quiet = True
        try:
            self.w_currency.options = options
            self.w_currency.value = chosen or _ALL
        finally:
            self._quiet = False

    def _render_header(self, counts: dict[str, int], waiting: int | None) -> None:
        who = "single-user mode: every role" if self.single_user else (", ".join(self.roles) or "no role")
        if self.read_only:
            who += f"; read only: {self.read_only}"
        by_age, by_amount = refunds.pending_parts(counts)

        def chip(k: str, n: int) -> str:
            label = H.badge(k, k.lower()) if k in refunds.PRIORITIES else html.escape(k)
            return f"{label} <b>{int(n)}</b> &nbsp;"

        mine = f" &nbsp;|&nbsp; waiting for your second approval: <b>{int(waiting)}</b>" if waiting is not None else ""
        self.header.value = (
            f"<div>Reviewing as <b class='payops-user'>{html.escape(self.user)}</b> ({html.escape(who)})</div>"
            f"<div>Pending <b>{int(counts['ALL'])}</b> by age: {''.join(chip(k, n) for k, n in by_age)}"
            f"&middot; &nbsp;by amount: {''.join(chip(k, n) for k, n in by_amount)}{mine}</div>"
        )

    def _render_rows(self) -> None:
        rows = [r._asdict() for r in self.rows.itertuples(index=False)] if len(self.rows) else []
        shown = {int(r["id"]) for r in rows}
        hidden = sorted(self.selected - shown)
        # The heart of the safety rule: nothing hidden stays ticked.
        self.selected -= set(hidden)
        self.notice = ""
        if hidden:
            self.notice = (f"Unticked {_count(len(hidden), 'request')} no longer on screen: "
                           + ", ".join(f"#{i}" for i in hidden[:10]) + (" ..." if len(hidden) > 10 else ""))
        if self.opened not in shown:
            self.opened = int(rows[0]["id"]) if rows else None
        self.queue.draw(rows, user=self.user, senior=self.senior)
        first = self.page * self.page_size + 1 if rows else 0
        self.queue.paging(self.page, self.pages, first, self.page * self.page_size + len(rows), self.total)
        self._after_selection_change()
        if not self._hold_pane:
            self.pane.show(self.opened, self._open_row(), user=self.user, senior=self.senior)

    def _after_selection_change(self) -> None:
        """Redraw the ticks, the open row, the "N selected" line and the bulk buttons; cancel a stale question."""
        ticked = self.ticked
        if self.pending is not None and self.pending.verb != "Process" and self.pending.ids != ticked:
            self._hide_confirm()
            self._say("The confirmation was cancelled because the ticked requests changed; nothing changed.",
                      ok=False)
        self.queue.mark(self.ids, selected=self.selected, opened=self.opened)
        n = len(ticked)
        text = (f"<b>{n} selected</b>: {html.escape(H.money_totals(self._amounts(ticked)))}" if n
                else "<span class='payops-muted'>Nothing selected</span>")
        if self.notice:
            text += f"<br><span class='payops-muted payops-notice'>{html.escape(self.notice)}</span>"
        self.w_selection.value = f"<div style='min-width:260px; margin-right:8px'>{text}</div>"
        self.w_approve.disabled = self.w_reject.disabled = not n
        self.w_approve.description = f"Approve {n} selected" if n else "Approve selected"
        self.w_reject.description = f"Reject {n} selected" if n else "Reject selected"

    def _open_row(self) -> dict:
        if self.opened is None or not len(self.rows):
            return {}
        rows = self.rows[self.rows["id"].astype(int) == self.opened]
        return rows.iloc[0].to_dict() if len(rows) else {}

    def detail_html(self, request_id: int) -> str:
        """The detail pane's body for one request (see :meth:`DetailPane.detail_html`)."""
        return self.pane.detail_html(request_id, self._open_row() if request_id == self.opened else None)


def _count(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")

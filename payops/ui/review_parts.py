"""The two halves of the review app's screen: the queue's rows and the detail pane.

:class:`QueueRows` draws one page of the queue (a tick box, a request button and the row's
cells per row) and reports ticks and clicks to callbacks; :class:`DetailPane` shows one
request with its decision buttons. Neither decides anything nor keeps state beyond what is on
screen: :class:`payops.ui.review.RefundReview` owns the selection, the open request and the
decisions. The pane's data comes from one library read, :func:`payops.refunds.request_detail`
(one database connection per request shown).
"""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from typing import Any

import ipywidgets as W

from payops import refunds
from payops.errors import PayopsError
from payops.ui import review_html as H

__all__ = ["QueueRows", "DetailPane", "NO_REQUEST"]

_STATE_KEYS = ("status", "first_approver", "second_approver", "decided_by")
NO_REQUEST = "<i class='payops-muted'>Open a request (its number in the queue) to see it here.</i>"


class QueueRows:
    """The queue's page: a header with a select-all box, ``size`` row slots, paging buttons.

    Args:
        size: row slots (the page size).
        on_tick: called with (slot, ticked) when a person ticks or unticks a row.
        on_open: called with the slot whose request button was pressed.
        on_select_all: called with True / False when the header box changes.
        on_page: called with +1 / -1 for Next / Previous.
    """

    def __init__(self, size: int, *, on_tick: Callable[[int, bool], Any], on_open: Callable[[int], Any],
                 on_select_all: Callable[[bool], Any], on_page: Callable[[int], Any]):
        self._quiet = False  # True while the code (not a person) sets tick values
        self.select_all = W.Checkbox(value=False, indent=False, description="", layout=W.Layout(width="28px"))
        self.select_all.add_class("payops-select-all")
        self.select_all.observe(lambda c: None if self._quiet else on_select_all(bool(c["new"])), names="value")
        fixed = {"width": f"{H.ROW_WIDTH}px", "flex": "0 0 auto"}
        head = W.HBox([self.select_all, W.HTML("<b>Request</b>", layout=W.Layout(width="64px", flex="0 0 auto")),
                       W.HTML(H.head_cells(), layout=W.Layout(**fixed))]).add_class("payops-head")
        self.boxes: list[W.Checkbox] = []
        self.buttons: list[W.Button] = []
        self.cells: list[W.HTML] = []
        self.lines: list[W.HBox] = []
        # One Layout per kind of cell, shared by the rows: each Layout is a widget model of its own.
        box_layout = W.Layout(width="28px")
        button_layout = W.Layout(width="64px", height="26px", flex="0 0 auto")
        cells_layout = W.Layout(**fixed)
        for i in range(size):
            box = W.Checkbox(value=False, indent=False, description="", layout=box_layout)
            box.add_class("payops-row-select")
            box.observe(lambda c, i=i: None if self._quiet else on_tick(i, bool(c["new"])), names="value")
            button = W.Button(description="", layout=button_layout).add_class("payops-open")
            button.on_click(lambda _, i=i: on_open(i))
            cells = W.HTML(layout=cells_layout)
            self.boxes.append(box)
            self.buttons.append(button)
            self.cells.append(cells)
            self.lines.append(W.HBox([box, button, cells], layout=W.Layout(display="none", align_items="center")
                                     ).add_class("payops-row"))
        self.empty = W.HTML("").add_class("payops-empty")
        self.prev = W.Button(description="Previous", icon="chevron-left", layout=W.Layout(width="110px"))
        self.next = W.Button(description="Next", icon="chevron-right", layout=W.Layout(width="110px"))
        self.prev.add_class("payops-prev")
        self.next.add_class("payops-next")
        self.prev.on_click(lambda _: on_page(-1))
        self.next.on_click(lambda _: on_page(+1))
        self.page = W.HTML().add_class("payops-page")
        self.widget = W.VBox([head, *self.lines, self.empty, W.HBox([self.prev, self.page, self.next])],
                             layout=W.Layout(width=f"{H.ROW_WIDTH + 110}px", margin="0 16px 0 0")
                             ).add_class("payops-queue")

    def draw(self, rows: Sequence[dict], *, user: str, senior: bool) -> None:
        """Fill the slots with ``rows`` (dicts of :func:`payops.refunds.queue` columns); hide the rest."""
        for i, line in enumerate(self.lines):
            box, button = self.boxes[i], self.buttons[i]
            if i < len(rows):
                rid = int(rows[i]["id"])
                self.cells[i].value = H.row_cells(rows[i], user, senior)
                box._dom_classes = ("payops-row-select", f"payops-select-{rid}")
                button.description = f"#{rid}"
                button.tooltip = f"Open request #{rid}"
                button._dom_classes = ("payops-open", f"payops-open-{rid}")
                line.layout.display = "flex"
            else:
                line.layout.display = "none"
                box._dom_classes = ("payops-row-select",)
                button._dom_classes = ("payops-open",)
        self.empty.value = "" if rows else "<i>No refund requests match these filters.</i>"

    def mark(self, ids: Sequence[int], *, selected: set[int], opened: int | None) -> None:
        """Show which rows are ticked and which one is open (without calling back)."""
        self._quiet = True
        try:
            for i, box in enumerate(self.boxes):
                box.value = i < len(ids) and ids[i] in selected
            self.select_all.value = bool(ids) and all(i in selected for i in ids)
        finally:
            self._quiet = False
        for i, line in enumerate(self.lines):
            rid = ids[i] if i < len(ids) else None
            line._dom_classes = ("payops-row",) if rid is None else ("payops-row", f"payops-row-{rid}") + (
                ("payops-row-open",) if rid == opened else ())

    def paging(self, page: int, pages: int, first: int, last: int, total: int) -> None:
        """The "Page 2 of 5 | 26-50 of 110" line and the Previous / Next buttons."""
        self.page.value = f"&nbsp; Page {page + 1} of {pages} &nbsp;|&nbsp; {first}-{last} of {total:,} &nbsp;"
        self.prev.disabled = page == 0
        self.next.disabled = page >= pages - 1


class DetailPane:
    """One request beside the queue: title, approval state, note, Approve / Reject, details.

    Each request opened gets its own Approve / Reject buttons, bound to its id: a second click
    of a double click, which the kernel handles after the next request has opened, reaches the
    old (decided) request's button, never the new one's.

    Args:
        on_approve: called with (request id, note) when "Approve #N" is pressed.
        on_reject: called with (request id, note) when "Reject #N" is pressed.
        db: the database file the details are read from.
        now: the moment the refund window is measured against (default: now); for tests.
    """

    def __init__(self, *, on_approve: Callable[[int, str | None], Any], on_reject: Callable[[int, str], Any],
                 db=None, now=None):
        self.db = db
        self.now = now
        self._on_approve, self._on_reject = on_approve, on_reject
        self.shown: tuple | None | bool = False  # nothing drawn yet (None means "drawn empty")
        self.title = W.HTML(NO_REQUEST).add_class("payops-pane-title")
        self.state = W.HTML("").add_class("payops-state")
        self.note = W.Textarea(value="", placeholder="Note for the decision (a rejection needs one)",
                               layout=W.Layout(width="98%", height="54px")).add_class("payops-note")
        self.approve, self.reject = self._buttons(None)
        self.buttons = W.HBox([self.approve, self.reject])
        self.detail = W.HTML("").add_class("payops-detail")
        self.widget = W.VBox([self.title, self.state, self.note, self.buttons, self.detail],
                             layout=W.Layout(width="520px")).add_class("payops-pane")

    def _buttons(self, rid: int | None) -> tuple[W.Button, W.Button]:
        approve = W.Button(description=f"Approve #{rid}", button_style="success", icon="check",
                           layout=W.Layout(width="auto")).add_class("payops-approve-one")
        reject = W.Button(description=f"Reject #{rid}", button_style="danger", icon="times",
                          layout=W.Layout(width="auto")).add_class("payops-reject-one")
        if rid is not None:
            approve.on_click(lambda _: self._on_approve(rid, self.note.value or None))
            reject.on_click(lambda _: self._on_reject(rid, self.note.value))
        return approve, reject

    def show(self, request_id: int | None, row: dict, *, user: str, senior: bool, force: bool = False) -> None:
        """Show a request (``row``: its queue row), or nothing for None; unchanged ones are not re-read.

        Everything is read before any widget changes, so the pane never shows one request's
        title over another's details.
        """
        # Re-read only when another request opens or this one moved on (a decision, someone else's).
        key = None if request_id is None else (int(request_id), *(str(row.get(k)) for k in _STATE_KEYS))
        if key == self.shown and not force:
            return
        self.shown = key
        if request_id is None:
            self.title.value, self.state.value, self.detail.value = NO_REQUEST, "", ""
            self.note.layout.display = self.buttons.layout.display = "none"
            return
        rid, status = int(request_id), row.get("status")
        try:
            detail = self.detail_html(rid, row)
        except PayopsError as exc:
            detail = f"<i>Could not load request #{rid}: {html.escape(exc.message)}</i>"
        state = H.approval_state(row, user, senior)
        sentence = state[1] if state else ("Needs one approval, by a reviewer or a senior." if status == "PENDING"
                                           else "")
        step = ""
        if state and status == "PENDING":
            step = " (second of 2)" if state[0].startswith("1 of 2") else " (first of 2)"
        approve, reject = self._buttons(rid)
        approve.description = f"Approve #{rid}{step}"
        approve.disabled = status not in ("PENDING", "FAILED")  # FAILED: approve again for a retry
        reject.disabled = status != "PENDING"
        old = (self.approve, self.reject)
        self.approve, self.reject = approve, reject
        self.title.value = (f"<h3 style='margin:0'>Request #{rid} {H.status_badge(status)}"
                            f"{H.priority_badges(row.get('priorities'))}</h3>")
        self.state.value = f"<div>{html.escape(sentence)}</div>" if sentence else ""
        self.buttons.children = (approve, reject)
        self.detail.value = detail
        self.note.layout.display = self.buttons.layout.display = "flex"
        for w in old:
            w.close()

    def detail_html(self, request_id: int, row: dict | None = None) -> str:
        """The pane's body for one request: facts, eligibility, the customer, the payment, history.

        ``row``: the request's queue row (its customer's name and email, its age), if on screen.
        """
        d = refunds.request_detail(int(request_id), db=self.db, now=self.now)
        return H.detail_html(H.Detail(
            request=d.request.as_dict(), row=row if row and int(row.get("id", -1)) == int(request_id) else {},
            breakdown=d.breakdown, verdict=d.verdict, stripe_refunds=d.stripe_refunds, history=d.history,
            customer=d.customer, live=d.live,
        ))

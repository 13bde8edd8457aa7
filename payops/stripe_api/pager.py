"""The one paging loop of payops: ``starting_after`` cursors, guarded against repeated pages.

Every list payops reads pages through :class:`Pager`: backfill windows (a page at a time,
their cursor checkpointed), the events pass, and lookups such as a charge's refunds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["Pager", "window_params", "PAGE_LIMIT"]

PAGE_LIMIT = 100  # Stripe's largest page


def window_params(start: int | None, end: int | None) -> dict[str, Any]:
    """``{"created": {"gte": start, "lt": end}}`` for the bounds given (none: ``{}``)."""
    created: dict[str, int] = {}
    if start is not None:
        created["gte"] = int(start)
    if end is not None:
        created["lt"] = int(end)
    return {"created": created} if created else {}


class Pager:
    """Pages one list with ``starting_after``; no order assumed.

    The guard: some servers answer an unknown ``starting_after`` with the first page again,
    which would page forever. A page that ends on an object some earlier page ended on (or
    on the starting cursor) would send a cursor already sent: it is a repeat, paging stops
    and the page is not returned. Every other page moves the cursor to an id never used
    before, so a finite list always ends. It remembers one id a page, not every id, so a
    window of millions of objects stays small (an object a broken server sends twice is
    harmless: upserts are idempotent).

    ``fetch(params) -> {"data": [...], "has_more": bool}`` does the request; a caller that
    fetched a page itself (e.g. a probe) hands it to :meth:`take`.

    Example::

        pager = Pager(lambda p: api.list_page("refund", p), {"charge": "ch_1"})
        refunds = list(pager)
    """

    def __init__(self, fetch: Callable[[dict[str, Any]], dict[str, Any]] | None,
                 params: dict[str, Any] | None = None, *, cursor: str | None = None,
                 limit: int = PAGE_LIMIT):
        self.fetch = fetch
        self.params: dict[str, Any] = {"limit": limit, **(params or {})}
        self.cursor = cursor
        self.done = False
        self.repeated = False  # True when the guard stopped the paging
        self.pages = 0
        self._ends: set[str] = {cursor} if cursor else set()

    def request(self) -> dict[str, Any]:
        """The parameters of the next page's request."""
        if self.cursor:
            return {**self.params, "starting_after": self.cursor}
        return dict(self.params)

    def take(self, page: dict[str, Any]) -> list[dict]:
        """Account for a fetched page; returns its objects, or ``[]`` for a repeat or the end.

        Sets :attr:`done` when the list is exhausted (``has_more`` false, an empty page, or
        a repeated page) and moves :attr:`cursor` to the page's last object.
        """
        data: list[dict] = page.get("data") or []
        if not data:
            self.done = True
            return []
        last = data[-1].get("id")
        if not isinstance(last, str) or last in self._ends:
            self.done = self.repeated = True
            return []
        self._ends.add(last)
        self.cursor = last
        self.pages += 1
        self.done = not page.get("has_more")
        return data

    def next_page(self) -> list[dict]:
        """Fetch and :meth:`take` the next page (``[]`` once :attr:`done`)."""
        if self.done:
            return []
        if self.fetch is None:
            raise TypeError("this Pager has no fetch function; hand pages to take()")
        return self.take(self.fetch(self.request()))

    def __iter__(self) -> Iterator[dict]:
        while not self.done:
            yield from self.next_page()

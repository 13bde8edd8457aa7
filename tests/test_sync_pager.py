"""The one pager (payops.stripe_api.Pager): cursors, the end, and the repeated-page guard.

The list is served by a handler this test owns (Stripe's paging rules over a list of ids),
and by misbehaving variants of it, the way localstripe misbehaves.
"""

from __future__ import annotations

from typing import Any

import pytest

from payops.stripe_api import Pager


def server(ids: list[str], *, ignore_unknown_cursor: bool = False, ignore_every_cursor: bool = False,
           calls: list[dict] | None = None):
    """``fetch(params)`` over ``ids`` in list order, honouring ``limit`` and ``starting_after``."""
    def fetch(params: dict[str, Any]) -> dict:
        if calls is not None:
            calls.append(dict(params))
        limit = params.get("limit", 10)
        after = params.get("starting_after")
        i = 0
        if after is not None and not ignore_every_cursor:
            if after in ids:
                i = ids.index(after) + 1
            elif not ignore_unknown_cursor:
                raise AssertionError(f"unknown cursor {after}")
        data = [{"id": x} for x in ids[i:i + limit]]
        return {"data": data, "has_more": i + limit < len(ids)}
    return fetch


IDS = [f"o{i:03d}" for i in range(250)]


def test_pages_every_object_once_with_cursors():
    calls: list[dict] = []
    pager = Pager(server(IDS, calls=calls), {"limit": 100, "customer": "cus_1"})
    assert [o["id"] for o in pager] == IDS
    assert [c.get("starting_after") for c in calls] == [None, "o099", "o199"]
    assert all(c["customer"] == "cus_1" and c["limit"] == 100 for c in calls)
    assert pager.done and not pager.repeated and pager.pages == 3


def test_an_exact_multiple_ends_on_has_more_and_an_empty_list_on_the_first_page():
    assert len(list(Pager(server(IDS[:200]), limit=100))) == 200
    calls: list[dict] = []
    assert list(Pager(server([], calls=calls))) == [] and len(calls) == 1


def test_a_server_that_ignores_the_cursor_is_stopped_and_nothing_is_returned_twice():
    # answers every starting_after with the first page again: a naive pager never ends
    calls: list[dict] = []
    pager = Pager(server(IDS, ignore_every_cursor=True, calls=calls), limit=100)
    got = [o["id"] for o in pager]
    assert got == IDS[:100] and pager.repeated and len(calls) == 2


def test_a_resumed_cursor_the_server_does_not_know_costs_one_extra_page_at_most():
    # localstripe: an unknown starting_after is silently ignored (first page again)
    calls: list[dict] = []
    pager = Pager(server(IDS, ignore_unknown_cursor=True, calls=calls), limit=100, cursor="gone")
    got = [o["id"] for o in pager]
    assert got == IDS  # the first page came back for the unknown cursor, then normal paging
    assert len(calls) == 3 and not pager.repeated


def test_a_page_repeating_the_previous_one_ends_the_list():
    pages = iter([
        {"data": [{"id": "a"}, {"id": "b"}], "has_more": True},
        {"data": [{"id": "c"}, {"id": "d"}], "has_more": True},
        {"data": [{"id": "c"}, {"id": "d"}], "has_more": True},  # the same page again
        {"data": [{"id": "e"}], "has_more": False},
    ])
    pager = Pager(lambda p: next(pages), limit=2)
    assert [o["id"] for o in pager] == ["a", "b", "c", "d"] and pager.repeated


def test_overlapping_pages_always_end():
    # every page shifts by one and overlaps the previous: the cursor never repeats, the
    # list is finite, so paging ends (objects seen twice are harmless: upserts are idempotent)
    ids = [f"x{i}" for i in range(30)]

    def fetch(params):
        after = params.get("starting_after")
        i = ids.index(after) if after else 0  # off by one: repeats the cursor object
        return {"data": [{"id": x} for x in ids[i:i + 5]], "has_more": i + 5 < len(ids)}

    pager = Pager(fetch, limit=5)
    got = list(pager)
    assert {o["id"] for o in got} == set(ids) and pager.done


def test_take_accepts_a_page_fetched_elsewhere():
    pager = Pager(server(IDS), limit=100)
    first = server(IDS)({"limit": 100})  # e.g. a probe's page
    assert [o["id"] for o in pager.take(first)] == IDS[:100]
    assert pager.request() == {"limit": 100, "starting_after": "o099"}
    assert [o["id"] for o in pager] == IDS[100:]


def test_no_fetch_function_only_takes():
    pager = Pager(None)
    with pytest.raises(TypeError):
        pager.next_page()

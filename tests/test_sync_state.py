"""payops.sync.state: the checkpoints in sync_state (a real DuckDB file)."""

from __future__ import annotations

from payops.db import connect, transaction
from payops.sync import state
from payops.sync.plan import OVERLAP, StreamPlan

NOW = 1_780_000_000


def plan(stream: str = "charges", kind: str = "backfill") -> StreamPlan:
    return StreamPlan(stream, kind, 1_000, NOW + 1, NOW)


def rows(stream: str) -> dict:
    return {k: (c.start, c.end, c.cursor, c.done, c.objects, c.extra)
            for k, c in state.load(None).get(stream, {}).items()}


def test_a_new_plan_is_one_window_to_probe_and_replaces_the_old_one():
    p = plan()
    with connect() as con, transaction(con):
        state.begin_plan(con, p, "w-old")
    with connect() as con, transaction(con):
        state.begin_plan(con, p, "w-1")
    got = rows("charges")
    assert set(got) == {"plan", "w-1"}
    assert got["plan"][:4] == (1_000, NOW + 1, None, False)
    assert got["plan"][5] == {"started": NOW, "kind": "backfill", "mode": "windowed"}
    assert got["w-1"] == (1_000, NOW + 1, None, False, 0, {"probe": True})


def test_pages_checkpoint_their_window_and_children_in_one_batch():
    p = plan()
    with connect() as con, transaction(con):
        state.begin_plan(con, p, "w-1")
        state.probed(con, p, "w-1", "ok", "")
        # two pages of w-1 (the second split off w-2), then w-2's own first page
        state.save_windows(con, [("charges", "w-1", "ch_a", 500_000, NOW + 1, False, 100),
                                 ("charges", "w-1", "ch_b", 600_000, NOW + 1, False, 100),
                                 ("charges", "w-2", "ch_c", 1_000, 600_000, False, 40)],
                           [("charges", "w-2", 1_000, 600_000)])
        assert state.finish_done_plans(con, [p]) == []
    got = rows("charges")
    assert got["w-1"] == (600_000, NOW + 1, "ch_b", False, 200, {})
    assert got["w-2"] == (1_000, 600_000, "ch_c", False, 40, {})
    assert "events" not in got

    with connect() as con, transaction(con):
        state.save_windows(con, [("charges", "w-1", "ch_d", 600_000, NOW + 1, True, 7),
                                 ("charges", "w-2", "ch_e", 1_000, 600_000, True, 3)], [])
        assert state.finish_done_plans(con, [p]) == ["charges"]
    got = rows("charges")
    assert got["plan"][3] is True
    assert got["events"][2] == str(NOW - OVERLAP) and got["events"][5] == {"set_by": "backfill"}
    with connect() as con:
        progress = state.progress(con)
    assert [(r["stream"], r["windows"], r["done"], r["objects"]) for r in progress] == [("charges", 2, 2, 250)]


def test_a_refused_filter_makes_the_window_the_whole_list():
    p = plan("customers")
    with connect() as con, transaction(con):
        state.begin_plan(con, p, "w-1")
        state.probed(con, p, "w-1", "refused", "HTTP 400: Unexpected created")
    got = rows("customers")
    assert got["w-1"] == (None, None, None, False, 0, {"plain": True})
    assert got["plan"][5]["mode"] == "plain" and got["plan"][5]["note"] == "HTTP 400: Unexpected created"
    assert got["plan"][3] is False


def test_a_missing_list_ends_the_plan_without_an_event_cursor():
    p = plan("disputes")
    with connect() as con, transaction(con):
        state.begin_plan(con, p, "w-1")
        state.probed(con, p, "w-1", "missing", "HTTP 404, even without filters")
        assert state.finish_done_plans(con, [p]) == []
    got = rows("disputes")
    assert set(got) == {"plan"} and got["plan"][3] is True and got["plan"][5]["mode"] == "missing"
    assert state.open_windows(state.load(None)["disputes"]) == []


def test_event_cursors_never_move_back():
    with connect() as con, transaction(con):
        state.move_event_cursors(con, {"charges": NOW - 100, "refunds": NOW - 100}, NOW - 50,
                                 {"charges": 3})
    with connect() as con, transaction(con):
        state.move_event_cursors(con, {"charges": NOW - 100}, NOW - 80, {"charges": 2})
    assert rows("charges")["events"][2:5] == (str(NOW - 50), True, 5)
    assert rows("refunds")["events"][2:5] == (str(NOW - 50), True, 0)

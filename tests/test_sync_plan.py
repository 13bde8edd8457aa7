"""The pure parts of the sync: the per-stream plan, the window split, the stream list."""

from __future__ import annotations

import pytest

from payops.errors import InvalidInput
from payops.ingest import OBJECT_TABLES
from payops.streams import EVENT_TYPES, MAX_TYPES, STREAM_OBJECTS, STREAMS, select_streams
from payops.stripe_api import RESOURCES
from payops.sync.plan import (
    BT_LOOKBACK,
    EPOCH0,
    MAX_PIECES,
    MIN_SPAN,
    RETENTION,
    Checkpoint,
    default_workers,
    page_order,
    parse_since,
    pieces,
    plan_streams,
    split_window,
    type_chunks,
)

NOW = 1_780_000_000
DAY = 86400


def synced(cursor: int, **rows: Checkpoint) -> dict[str, Checkpoint]:
    """A stream's checkpoints after a finished backfill whose event cursor is ``cursor``."""
    return {"plan": Checkpoint(EPOCH0, cursor, done=True), "events": Checkpoint(cursor=str(cursor), done=True),
            **rows}


# --------------------------------------------------------------------------- streams


def test_one_stream_list_everywhere():
    assert STREAMS == ("customers", "payment_intents", "charges", "transfers", "application_fees", "refunds",
                       "balance_transactions", "disputes", "payouts")  # parents before children
    assert {otype: table for otype, (table, _, _) in OBJECT_TABLES.items()} == {
        o: s for s, o in STREAM_OBJECTS.items()}
    assert {RESOURCES[o] for o in STREAM_OBJECTS.values()} == set(STREAMS)
    assert set(EVENT_TYPES) == set(STREAMS)


def test_select_streams_checks_names():
    assert select_streams(None) == list(STREAMS)
    assert select_streams(" charges,refunds,charges ") == ["charges", "refunds"]
    with pytest.raises(InvalidInput, match="unknown stream 'nope'"):
        select_streams(["charges", "nope"])
    with pytest.raises(InvalidInput, match="no stream given"):
        select_streams(",")


def test_type_chunks_respect_stripes_limit():
    chunks = type_chunks(list(STREAMS))
    flat = [t for c in chunks for t in c]
    assert all(len(c) <= MAX_TYPES for c in chunks) and len(chunks) == 2
    assert flat == sorted({t for ts in EVENT_TYPES.values() for t in ts})
    assert type_chunks(["balance_transactions"]) == []


def test_parse_since():
    assert parse_since(None) is None and parse_since("") is None
    assert parse_since("2026-01-31") == 1_769_817_600
    assert parse_since(1_769_817_600) == 1_769_817_600
    with pytest.raises(InvalidInput, match="like 2026-01-31"):
        parse_since("last tuesday")


# --------------------------------------------------------------------------- plan


def test_never_synced_streams_are_backfilled_from_2010():
    plan = plan_streams(["charges", "refunds"], {}, full=False, since=None, now=NOW)
    assert plan.mode == "backfill" and not plan.incremental
    assert {s: (p.kind, p.start, p.end, p.started, p.resume) for s, p in plan.backfills.items()} == {
        "charges": ("backfill", EPOCH0, NOW + 1, NOW, False),
        "refunds": ("backfill", EPOCH0, NOW + 1, NOW, False)}


def test_synced_streams_read_events_since_their_cursor_or_since():
    state = {"charges": synced(NOW - DAY), "refunds": synced(NOW - 2 * DAY)}
    plan = plan_streams(["charges", "refunds"], state, full=False, since=None, now=NOW)
    assert plan.mode == "incremental" and not plan.backfills
    assert plan.incremental == {"charges": NOW - DAY, "refunds": NOW - 2 * DAY}
    plan = plan_streams(["charges"], state, full=False, since=NOW - 5 * DAY, now=NOW)
    assert plan.incremental == {"charges": NOW - 5 * DAY}


def test_full_relists_and_since_bounds_it():
    state = {"charges": synced(NOW - DAY)}
    plan = plan_streams(["charges"], state, full=True, since=NOW - 9 * DAY, now=NOW)
    p = plan.backfills["charges"]
    assert (p.kind, p.start, p.end) == ("backfill", NOW - 9 * DAY, NOW + 1) and plan.mode == "backfill"


def test_balance_transactions_have_no_events_and_are_relisted_a_week_back():
    plan = plan_streams(["balance_transactions", "charges"],
                        {"balance_transactions": synced(NOW - DAY), "charges": synced(NOW - DAY)},
                        full=False, since=None, now=NOW)
    p = plan.backfills["balance_transactions"]
    assert (p.kind, p.start, p.end) == ("relist", NOW - DAY - BT_LOOKBACK, NOW + 1)
    assert plan.how["balance_transactions"] == "relist (no events)"
    assert plan.incremental == {"charges": NOW - DAY} and plan.mode == "incremental"


def test_cursor_past_event_retention_relists_in_full_and_says_so():
    old = NOW - RETENTION - DAY
    plan = plan_streams(["charges"], {"charges": synced(old)}, full=False, since=None, now=NOW)
    p = plan.backfills["charges"]
    assert (p.kind, p.start) == ("relist", EPOCH0) and not plan.incremental
    assert plan.how["charges"] == "relist (cursor too old)"
    assert any("31 days old" in n and "retention" in n and "in full" in n for n in plan.notes)
    # just inside retention (and its margin): still events
    fresh = NOW - RETENTION + 2 * 3600
    assert plan_streams(["charges"], {"charges": synced(fresh)}, full=False, since=None,
                        now=NOW).incremental == {"charges": fresh}
    # --since older than retention: re-listed since then
    plan = plan_streams(["charges"], {"charges": synced(NOW - DAY)}, full=False, since=old, now=NOW)
    assert plan.backfills["charges"].start == old and "since --since" in plan.notes[0]


def test_unfinished_plan_is_resumed_whatever_was_asked():
    state = {"charges": {"plan": Checkpoint(EPOCH0, NOW - 50, extra={"started": NOW - 100, "kind": "relist"}),
                         "w-1": Checkpoint(EPOCH0, NOW - 50, cursor="ch_9")}}
    for full in (False, True):
        plan = plan_streams(["charges"], state, full=full, since=None, now=NOW)
        p = plan.backfills["charges"]
        assert (p.resume, p.kind, p.start, p.end, p.started) == (True, "relist", EPOCH0, NOW - 50, NOW - 100)
        assert plan.how["charges"] == "relist (resumed)" and "resumed" in plan.notes[0]


def test_a_resumed_full_run_does_not_list_again_what_it_already_finished():
    run_began = NOW - 100
    state = {
        # killed run: charges unfinished, refunds finished by it, customers by an older run
        "charges": {"plan": Checkpoint(EPOCH0, NOW - 50, extra={"started": run_began, "kind": "backfill"}),
                    "w-1": Checkpoint(EPOCH0, NOW - 50, cursor="ch_9")},
        "refunds": {"plan": Checkpoint(EPOCH0, NOW - 50, done=True,
                                       extra={"started": run_began, "kind": "backfill"}),
                    "events": Checkpoint(cursor=str(run_began - 300), done=True)},
        "customers": {"plan": Checkpoint(EPOCH0, NOW - DAY, done=True,
                                         extra={"started": NOW - 2 * DAY, "kind": "backfill"}),
                      "events": Checkpoint(cursor=str(NOW - 2 * DAY), done=True)},
    }
    plan = plan_streams(["charges", "refunds", "customers"], state, full=True, since=None, now=NOW)
    assert plan.backfills["charges"].resume
    assert "refunds" not in plan.backfills and "refunds" not in plan.incremental
    assert plan.how["refunds"] == "backfill (done before the interruption)"
    assert not plan.backfills["customers"].resume  # --full re-lists what an earlier run finished
    # without the unfinished one selected, nothing is being resumed: --full re-lists refunds
    alone = plan_streams(["refunds"], state, full=True, since=None, now=NOW)
    assert alone.backfills["refunds"].kind == "backfill" and not alone.backfills["refunds"].resume
    # and an incremental run reads refunds' events as usual
    assert "refunds" in plan_streams(["charges", "refunds"], state, full=False, since=None,
                                     now=NOW).incremental


def test_mixed_mode():
    plan = plan_streams(["charges", "refunds"], {"charges": synced(NOW - DAY)}, full=False, since=None, now=NOW)
    assert plan.mode == "mixed" and set(plan.backfills) == {"refunds"} and set(plan.incremental) == {"charges"}


# --------------------------------------------------------------------------- window split


def objs(*created: int) -> list[dict]:
    return [{"id": f"o{i}", "created": c} for i, c in enumerate(created)]


def test_page_order_is_read_never_assumed():
    assert page_order(objs(9, 7, 7, 3)) == "desc"
    assert page_order(objs(3, 7, 7, 9)) == "asc"
    assert page_order(objs(5, 5)) is None          # ties only: nothing shown
    assert page_order(objs(3, 9, 1)) is None       # no order
    assert page_order(objs(5)) is None
    assert page_order([{"id": "a", "created": 5}, {"id": "b"}]) is None


@pytest.mark.parametrize("edge", ["high", "low"])
@pytest.mark.parametrize(("a", "b", "span", "most"), [
    (0, 10_000, 100, MAX_PIECES), (0, 10**9, 100, MAX_PIECES), (0, 10**9, 100, 3), (0, 150, 100, 8),
    (5, 6, 100, 8), (0, 10**9, 1, 2)])
def test_pieces_cover_the_range_exactly_from_the_edge(edge, a, b, span, most):
    out = pieces(a, b, edge, span, most)
    assert 1 <= len(out) <= most
    ordered = sorted(out)
    assert ordered[0][0] == a and ordered[-1][1] == b
    assert all(lo < hi for lo, hi in out)
    assert all(x[1] == y[0] for x, y in zip(ordered, ordered[1:], strict=False))  # no gap, no overlap
    first = out[0]
    assert (first[1] == b) if edge == "high" else (first[0] == a)  # listed from the edge outwards
    if len(out) > 2:
        assert first[1] - first[0] == max(MIN_SPAN, span)


def test_split_newest_first_keeps_the_piece_next_to_the_cursor():
    # a desc page covering created 1000..991 in a window [0, 2000)
    page = objs(*range(1000, 990, -1))
    lo, hi, children = split_window(0, 2000, page, pages_per_piece=2, most=4)
    # the window keeps [lo, 991]: its cursor (the last object, created 991) is inside, so it
    # pages on with the same cursor; ties at 991 after the cursor are still in it
    assert hi == 991 + 1 and lo <= 991 - 1
    assert len(children) == 3
    covered = sorted([(lo, hi), *children])
    assert covered[0][0] == 0 and covered[-1][1] == 992
    assert all(x[1] == y[0] for x, y in zip(covered, covered[1:], strict=False))


def test_split_oldest_first_mirrors_it():
    page = objs(*range(100, 110))
    lo, hi, children = split_window(0, 5000, page, pages_per_piece=2, most=3)
    assert lo == 109 and hi > 110 and len(children) == 2
    covered = sorted([(lo, hi), *children])
    assert covered[0][0] == 109 and covered[-1][1] == 5000
    assert all(x[1] == y[0] for x, y in zip(covered, covered[1:], strict=False))


def test_no_split_when_the_page_cannot_tell_or_nothing_is_left():
    assert split_window(0, 2000, objs(5, 9, 1)) is None              # order unknown
    assert split_window(None, 2000, objs(1000, 990)) is None         # desc, no lower bound
    assert split_window(0, None, objs(10, 20)) is None               # asc, no upper bound
    assert split_window(990, 2000, objs(1000, 990)) is None          # desc, reached start
    assert split_window(0, 21, objs(10, 20)) is None                 # asc, reached end
    assert split_window(900, 2000, objs(1000, 990), pages_per_piece=8) is None  # one piece left
    assert split_window(0, 2000, objs(1000, 990), most=1) is None


def test_default_workers_keep_the_rate_limit_busy_at_half_a_second_a_request():
    assert default_workers(10) == 8 and default_workers(16) == 8
    assert default_workers(25) == 13 and default_workers(100) == 50 and default_workers(1000) == 64
    for rate in (10, 20, 25, 80):
        assert default_workers(rate) / 0.5 >= rate  # requests in flight / time each >= the limit

"""daily_metrics, periods, KPIs and alerts against an independent computation on a hand-built dataset."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from zoneinfo import ZoneInfo

import factories as f
import pytest
from click.testing import CliRunner

from payops import insights, metrics, payments
from payops.cli import cli
from payops.db import connect, query
from payops.ingest import ingest_objects

BPS = 1500


def ts(tz: str, y, mo, d, h, mi) -> int:
    """Epoch seconds of a local wall-clock time in ``tz``."""
    return int(datetime(y, mo, d, h, mi, tzinfo=ZoneInfo(tz)).timestamp())


def half_even_fee(amount: int) -> int:
    return int((Decimal(amount) * BPS / 10000).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def build(tz: str):
    """Stripe objects and refund requests whose local times are in ``tz``.

    Charges at 23:59 and 00:01 around midnight (and around a week and a month boundary),
    three currencies including zero-decimal JPY, failed and pending charges, refunds and
    disputes on later days than their charges, a balance transaction adjustment, and refund
    requests in several states.
    """
    T = lambda *a: ts(tz, *a)  # noqa: E731
    charges = [
        # id, currency, status, amount, local time, application fee (None: configured rate)
        ("ch_a", "usd", "succeeded", 4500, T(2026, 11, 15, 23, 59), 675),   # Sunday night, week 46
        ("ch_b", "usd", "succeeded", 3000, T(2026, 11, 16, 0, 1), 450),     # Monday morning, week 47
        ("ch_c", "usd", "failed", 2000, T(2026, 11, 15, 12, 0), None),
        ("ch_d", "usd", "pending", 1500, T(2026, 11, 15, 13, 0), None),
        ("ch_e", "jpy", "succeeded", 4990, T(2026, 11, 10, 10, 0), None),  # fee 748.5 -> 748
        ("ch_f", "jpy", "succeeded", 4970, T(2026, 11, 10, 23, 59), None), # fee 745.5 -> 746
        ("ch_g", "jpy", "failed", 3000, T(2026, 11, 11, 0, 1), None),
        ("ch_h", "eur", "succeeded", 10000, T(2026, 10, 31, 23, 59), None), # last minute of October
        ("ch_i", "eur", "succeeded", 2500, T(2026, 11, 1, 0, 1), 375),      # first minute of November
        ("ch_j", "usd", "succeeded", 1999, T(2026, 11, 16, 9, 0), None),    # fee 299.85 -> 300
    ]
    objs = [f.customer("cus_1"), f.customer("cus_2")]
    rows = []
    for cid, cur, status, amount, created, app_fee in charges:
        ok = status == "succeeded"
        pi = "pi" + cid[2:]
        objs.append(f.payment_intent(pi, currency=cur, amount=amount, amount_received=amount if ok else 0,
                                     status={"succeeded": "succeeded", "failed": "requires_payment_method",
                                             "pending": "processing"}[status],
                                     created=created, latest_charge=cid, application_fee_amount=app_fee,
                                     customer="cus_2" if cur == "jpy" else "cus_1"))
        objs.append(f.charge(cid, currency=cur, status=status, amount=amount, amount_captured=amount if ok else 0,
                             paid=ok, captured=ok, created=created, payment_intent=pi,
                             application_fee_amount=app_fee, customer="cus_2" if cur == "jpy" else "cus_1",
                             failure_code="card_declined" if status == "failed" else None,
                             balance_transaction=("txn" + cid[2:]) if ok else None))
        if ok:
            fee = amount * 3 // 100 + (30 if cur != "jpy" else 0)
            objs.append(f.balance_transaction("txn" + cid[2:], source=cid, currency=cur, amount=amount, fee=fee,
                                              net=amount - fee, created=created))
        rows.append((cid, cur, status, amount, created, app_fee))
    # a payment intent that never got a charge
    objs.append(f.payment_intent("pi_z", currency="usd", status="canceled", latest_charge=None,
                                 created=T(2026, 11, 15, 23, 58)))
    refunds = [
        ("re_1", "ch_a", "usd", 1000, "succeeded", T(2026, 11, 17, 10, 0)),
        ("re_2", "ch_e", "jpy", 2000, "succeeded", T(2026, 11, 12, 0, 1)),
        ("re_3", "ch_b", "usd", 500, "pending", T(2026, 11, 17, 11, 0)),
        ("re_4", "ch_b", "usd", 700, "failed", T(2026, 11, 17, 12, 0)),
        ("re_5", "ch_h", "eur", 3000, "succeeded", T(2026, 11, 1, 0, 0)),
    ]
    for rid, ch, cur, amount, status, created in refunds:
        objs.append(f.refund(rid, charge=ch, payment_intent="pi" + ch[2:], currency=cur, amount=amount,
                             status=status, created=created, balance_transaction=None))
    disputes = [("dp_1", "ch_h", "eur", 10000, T(2026, 11, 3, 9, 0)),
                ("dp_2", "ch_b", "usd", 3000, T(2026, 11, 22, 23, 59))]
    for did, ch, cur, amount, created in disputes:
        objs.append(f.dispute(did, charge=ch, payment_intent="pi" + ch[2:], currency=cur, amount=amount,
                              created=created))
    # the dispute fee lands as an adjustment
    objs.append(f.balance_transaction("txn_adj", source="dp_1", type="adjustment", reporting_category="dispute",
                                      currency="eur", amount=-11500, fee=1500, net=-13000,
                                      created=T(2026, 11, 3, 9, 0)))
    H = lambda *a: datetime.fromtimestamp(T(*a), UTC)  # noqa: E731
    requests = [
        # id, currency, amount, status, requested, decided, processed
        (1, "usd", 1000, "PROCESSED", H(2026, 11, 16, 10, 0), H(2026, 11, 16, 12, 0), H(2026, 11, 17, 10, 0)),
        (2, "usd", 800, "PENDING", H(2026, 11, 15, 20, 0), None, None),
        (3, "jpy", 2000, "REJECTED", H(2026, 11, 10, 23, 0), H(2026, 11, 11, 1, 0), None),
        (4, "jpy", 1000, "PROCESSED", H(2026, 11, 11, 8, 0), H(2026, 11, 11, 9, 0), H(2026, 11, 12, 20, 0)),
        (5, "eur", 3000, "PROCESSED", H(2026, 10, 31, 23, 0), H(2026, 10, 31, 23, 30), H(2026, 11, 1, 0, 30)),
    ]
    return objs, rows, refunds, disputes, requests


def load(db_path, tz):
    objs, rows, refunds, disputes, requests = build(tz)
    ingest_objects(objs, db=db_path)
    with connect(db_path) as con:
        for rid, cur, amount, status, req, dec, proc in requests:
            con.execute(
                "INSERT INTO refund_requests (id, payment_intent, charge, customer, amount, currency, reason, status, "
                "requested_by, requested_at, decided_by, decided_at, processed_at, updated_at) "
                "VALUES (?, NULL, NULL, 'cus_1', ?, ?, 'requested_by_customer', ?, 'ana', ?, ?, ?, ?, ?)",
                [rid, amount, cur, status, req, "ben" if dec else None, dec, proc, proc or dec or req],
            )
    return objs, rows, refunds, disputes, requests


def _count_charge(r: dict, o: dict) -> None:
    r["attempts"] += 1
    if o["status"] == "succeeded":
        r["succeeded"] += 1
        r["gross_volume"] += o["amount_captured"]
        fee = o["application_fee_amount"]
        r["platform_fees"] += fee if fee is not None else half_even_fee(o["amount_captured"])
    elif o["status"] == "failed":
        r["failed"] += 1


def expected(tz: str, objs, requests) -> dict:
    """The daily metrics computed independently, object by object, in plain Python."""
    zone = ZoneInfo(tz)
    day = lambda epoch: datetime.fromtimestamp(epoch, zone).date()  # noqa: E731
    out: dict = defaultdict(lambda: defaultdict(int))
    for o in objs:
        kind = o["object"]
        if kind == "charge":
            _count_charge(out[(day(o["created"]), o["currency"])], o)
        elif kind == "payment_intent":
            r = out[(day(o["created"]), o["currency"])]
            r["intents_created"] += 1
            r["intents_succeeded"] += o["status"] == "succeeded"
        elif kind == "refund" and o["status"] == "succeeded":
            out[(day(o["created"]), o["currency"])]["refunded_amount"] += o["amount"]
        elif kind == "dispute":
            out[(day(o["created"]), o["currency"])]["disputed_amount"] += o["amount"]
        elif kind == "balance_transaction" and o["fee"]:
            out[(day(o["created"]), o["currency"])]["stripe_fees"] += o["fee"]
    hours = defaultdict(list)
    for _rid, cur, _amount, _status, req, dec, proc in requests:
        out[(req.astimezone(zone).date(), cur)]["requests_opened"] += 1
        if dec:
            out[(dec.astimezone(zone).date(), cur)]["requests_decided"] += 1
        if proc:
            out[(proc.astimezone(zone).date(), cur)]["requests_processed"] += 1
            hours[(proc.astimezone(zone).date(), cur)].append((proc - req).total_seconds() / 3600)
    for (d, cur), r in out.items():
        r["net"] = r["gross_volume"] - r["refunded_amount"] - r["disputed_amount"] - r["stripe_fees"]
        r["net_after_platform_fee"] = r["net"] - r["platform_fees"]
        end = datetime.combine(d + timedelta(days=1), datetime.min.time(), tzinfo=zone)
        r["pending_requests"] = sum(
            1 for _, c, _, _, req, dec, _ in requests if c == cur and req <= end and (dec is None or dec > end))
        h = sorted(hours.get((d, cur), []))
        r["processing_hours_median"] = (h[(len(h) - 1) // 2] + h[len(h) // 2]) / 2 if h else None
    return {k: dict(v) for k, v in out.items()}


INT_COLUMNS = ("attempts", "succeeded", "failed", "gross_volume", "refunded_amount", "disputed_amount",
               "stripe_fees", "platform_fees", "net", "net_after_platform_fee", "intents_created", "intents_succeeded",
               "requests_opened", "requests_decided", "requests_processed", "pending_requests")


@pytest.fixture(params=["America/New_York", "Asia/Kathmandu", "UTC"])
def tz(request, monkeypatch):
    monkeypatch.setenv("PAYOPS_TIMEZONE", request.param)
    monkeypatch.setenv("PAYOPS_PLATFORM_FEE_BPS", str(BPS))
    return request.param


def test_daily_metrics_match_an_independent_computation(db_path, tz):
    objs, *_, requests = load(db_path, tz)
    want = expected(tz, objs, requests)
    written = metrics.compute_daily(db=db_path)
    got = metrics.daily(date(2026, 10, 1), date(2026, 11, 30), db=db_path)
    assert written == len(got) == len(want)
    assert set(zip(got["day"], got["currency"], strict=False)) == set(want)
    for row in got.to_dict(orient="records"):
        w = want[(row["day"], row["currency"])]
        for col in INT_COLUMNS:
            assert row[col] == w.get(col, 0), (row["day"], row["currency"], col)
        decided = w.get("succeeded", 0) + w.get("failed", 0)
        if decided:
            assert row["success_rate"] == pytest.approx(w.get("succeeded", 0) / decided)
        else:
            assert row["success_rate"] != row["success_rate"]  # NaN: no decided payment that day
        if w.get("processing_hours_median") is not None:
            assert row["processing_hours_median"] == pytest.approx(w["processing_hours_median"])
        assert row["timezone"] == tz
    assert got["platform_fees"].dtype.kind == "i"


def test_midnight_split_in_the_reporting_timezone(db_path, monkeypatch):
    monkeypatch.setenv("PAYOPS_TIMEZONE", "America/New_York")
    load(db_path, "America/New_York")
    metrics.compute_daily(db=db_path)
    df = metrics.daily(date(2026, 11, 15), date(2026, 11, 16), db=db_path).set_index(["day", "currency"])
    # ch_a at 23:59 Sunday, ch_b at 00:01 Monday (both on the same UTC day, 2026-11-16)
    assert df.loc[(date(2026, 11, 15), "usd"), "gross_volume"] == 4500
    assert df.loc[(date(2026, 11, 16), "usd"), "gross_volume"] == 3000 + 1999
    # JPY: zero-decimal, platform fee at 15% rounded half-even per charge: 748 + 746
    jpy = metrics.daily(date(2026, 11, 10), date(2026, 11, 10), db=db_path).iloc[0]
    assert (jpy["currency"], jpy["gross_volume"], jpy["platform_fees"]) == ("jpy", 4990 + 4970, 748 + 746)


def test_same_results_for_daily_weekly_and_monthly_periods(db_path, tz):
    objs, *_, requests = load(db_path, tz)
    want = expected(tz, objs, requests)
    checks = {
        "daily": (date(2026, 11, 15), date(2026, 11, 15), date(2026, 11, 15), "2026-11-15"),
        "weekly": (date(2026, 11, 15), date(2026, 11, 9), date(2026, 11, 15), "2026-W46"),
        "monthly": (date(2026, 11, 15), date(2026, 11, 1), date(2026, 11, 30), "2026-11"),
    }
    metrics.compute_daily(db=db_path)
    for kind, (inside, start, end, label) in checks.items():
        p = metrics.period(kind, inside)
        assert (p.start, p.end, p.label) == (start, end, label)
        s = metrics.summary(p.start, p.end, db=db_path).set_index("currency")
        stored = metrics.daily(p.start, p.end, db=db_path)
        for cur in ("usd", "eur", "jpy"):
            rows = [w for (d, c), w in want.items() if c == cur and start <= d <= end]
            for col in INT_COLUMNS[:-1]:
                total = sum(r.get(col, 0) for r in rows)
                got = int(s.loc[cur, col]) if cur in s.index else 0
                assert got == total, (kind, cur, col)
                assert int(stored.loc[stored["currency"] == cur, col].sum()) == total
            ok = sum(r.get("succeeded", 0) for r in rows)
            bad = sum(r.get("failed", 0) for r in rows)
            if ok + bad:
                assert s.loc[cur, "success_rate"] == pytest.approx(ok / (ok + bad))


def test_periods_and_their_defaults():
    today = date(2026, 11, 28)  # a Saturday
    d = metrics.period("daily", today=today)
    assert (d.start, d.end, d.previous_start, d.label) == (
        date(2026, 11, 27), date(2026, 11, 27), date(2026, 11, 26), "2026-11-27")
    w = metrics.period("weekly", today=today)  # last complete ISO week
    assert (w.start, w.end, w.previous_start, w.previous_end, w.label) == (
        date(2026, 11, 16), date(2026, 11, 22), date(2026, 11, 9), date(2026, 11, 15), "2026-W47")
    m = metrics.period("monthly", today=today)
    assert (m.start, m.end, m.previous_start, m.previous_end, m.label) == (
        date(2026, 10, 1), date(2026, 10, 31), date(2026, 9, 1), date(2026, 9, 30), "2026-10")
    assert metrics.period("weekly", "2027-01-01").label == "2026-W53"
    assert metrics.period("monthly", "2024-03-10").previous_end == date(2024, 2, 29)
    with pytest.raises(Exception, match="unknown period"):
        metrics.period("yearly")
    with pytest.raises(Exception, match="not a date"):
        metrics.period("daily", "2026-02-30")


def test_compute_daily_is_idempotent_and_only_touches_its_range(db_path, monkeypatch):
    monkeypatch.setenv("PAYOPS_TIMEZONE", "America/New_York")
    load(db_path, "America/New_York")
    metrics.compute_daily(db=db_path)
    first = query("SELECT * EXCLUDE (computed_at) FROM daily_metrics ORDER BY day, currency", db=db_path)
    assert metrics.compute_daily(date(2026, 11, 15), date(2026, 11, 16), db=db_path) == 2  # usd on both days
    again = query("SELECT * EXCLUDE (computed_at) FROM daily_metrics ORDER BY day, currency", db=db_path)
    assert first.equals(again)
    stamps = query("SELECT day, computed_at FROM daily_metrics ORDER BY computed_at", db=db_path)
    assert stamps["computed_at"].nunique() == 2  # untouched days keep their first computation


def test_kpis_thresholds_from_payops_toml(db_path, tmp_path, monkeypatch):
    monkeypatch.setenv("PAYOPS_TIMEZONE", "America/New_York")
    load(db_path, "America/New_York")
    ks = {(k["name"], k["currency"]): k for k in metrics.kpis(date(2026, 11, 15), date(2026, 11, 15), db=db_path)}
    usd = ks[("success_rate", "usd")]  # one succeeded, one failed (pending is undecided)
    assert usd["value"] == 0.5 and usd["threshold"] == 0.95 and not usd["ok"]
    assert "USD success rate 50.0% is below the 95.0% minimum" == usd["message"]
    assert ks[("failed_rate", "usd")]["value"] == pytest.approx(1 / 3)
    assert ks[("pending_requests", None)]["value"] == 1 and ks[("pending_requests", None)]["ok"]
    # processing: request 1 took 24 h, which is not under 24 h
    proc = {(k["name"], k["currency"]): k for k in metrics.kpis(date(2026, 11, 17), date(2026, 11, 17), db=db_path)}
    assert proc[("processing_hours_p90", "usd")]["value"] == pytest.approx(24.0)
    assert not proc[("processing_hours_p90", "usd")]["ok"]
    (tmp_path / "payops.toml").write_text("[kpis]\nmin_success_rate = 0.4\nmax_failed_rate = 0.5\n"
                                          "max_processing_hours = 25\nmax_pending_requests = 0\n")
    ks = {(k["name"], k["currency"]): k for k in metrics.kpis(date(2026, 11, 15), date(2026, 11, 15), db=db_path)}
    assert ks[("success_rate", "usd")]["ok"] and ks[("failed_rate", "usd")]["ok"]
    assert not ks[("pending_requests", None)]["ok"]
    proc = metrics.kpis(date(2026, 11, 17), date(2026, 11, 17), db=db_path)
    assert [k["ok"] for k in proc if k["name"] == "processing_hours_p90" and k["currency"] == "usd"] == [True]


DAY = "2026-11-18"  # status checks a given day: no test depends on the day it runs


def _failures_on(db_path, day: str, failed: int, succeeded: int):
    noon = int(datetime.fromisoformat(f"{day}T12:00:00+00:00").timestamp())
    objs = [f.charge(f"ch_ok{i}", created=noon + i) for i in range(succeeded)]
    objs += [f.charge(f"ch_bad{i}", status="failed", paid=False, amount_captured=0, created=noon + 100 + i,
                      failure_code="card_declined") for i in range(failed)]
    ingest_objects(objs, db=db_path)


def test_status_check_exit_codes(empty_db):
    db_path = empty_db
    runner = CliRunner()
    healthy = runner.invoke(cli, ["status", "--check", "--date", DAY], catch_exceptions=False)
    assert healthy.exit_code == 0, healthy.output
    assert "OK" in healthy.output
    _failures_on(db_path, DAY, failed=2, succeeded=8)
    breached = runner.invoke(cli, ["status", "--check", "--date", DAY], catch_exceptions=False)
    assert breached.exit_code == 1
    assert "KPI breached: USD success rate 80.0% is below the 95.0% minimum" in breached.output
    shown = runner.invoke(cli, ["status", "--date", DAY], catch_exceptions=False)
    assert shown.exit_code == 0 and "Alerts" in shown.output and "80.0%" in shown.output
    assert f"Payments on {DAY}" in shown.output
    # the day after is another day: its KPIs are fine
    assert runner.invoke(cli, ["status", "--check", "--date", "2026-11-19"]).exit_code == 0
    bad = runner.invoke(cli, ["status", "--date", "2026-13-01"])
    assert bad.exit_code == 2 and "not a date" in bad.output


def test_status_check_error_is_not_a_breach(monkeypatch):
    monkeypatch.setenv("PAYOPS_TIMEZONE", "Nowhere/Special")
    result = CliRunner().invoke(cli, ["status", "--check"], catch_exceptions=False)
    assert result.exit_code == 3 and "unknown timezone" in result.output


def test_analytics_command(db_path, monkeypatch):
    monkeypatch.setenv("PAYOPS_TIMEZONE", "America/New_York")
    load(db_path, "America/New_York")
    result = CliRunner().invoke(cli, ["analytics", "--from", "2026-11-15", "--to", "2026-11-16"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "daily_metrics: 2 rows" in result.output and "USD" in result.output
    assert query("SELECT count(*) AS n FROM daily_metrics", db=db_path)["n"][0] == 2
    bad = CliRunner().invoke(cli, ["analytics", "--from", "2026-11-16", "--to", "2026-11-15"])
    assert bad.exit_code != 0 and "before it starts" in bad.output


def test_customer_insights_and_payment_timeline(db_path, monkeypatch):
    monkeypatch.setenv("PAYOPS_TIMEZONE", "America/New_York")
    load(db_path, "America/New_York")
    ci = insights.customer_insights(db=db_path)
    usd = ci[(ci["customer"] == "cus_1") & (ci["currency"] == "usd")].iloc[0]
    got = (usd["payments"], usd["succeeded"], usd["spend"], usd["refunds"], usd["refunded_amount"])
    assert got == (5, 3, 9499, 1, 1000)
    assert usd["preferred_payment_method"] == "card (visa)"
    assert usd["dashboard_url"] == "https://dashboard.stripe.com/test/customers/cus_1"
    assert usd["first_activity"] < usd["last_activity"]
    assert len(insights.customer_insights("cus_2", db=db_path)) == 1
    with pytest.raises(Exception, match="no customer"):
        insights.customer_insights("cus_nope", db=db_path)
    tl = payments.timeline("pi_a", db=db_path)
    assert list(tl["event"]) == ["created", "charged", "fees", "refunded"]
    # the dispute's Stripe fee shows too: a payment's fees are its charge's, refunds' and disputes'
    assert list(payments.timeline("ch_h", db=db_path)["event"]) == [
        "created", "charged", "fees", "refunded", "fees", "disputed"]
    with pytest.raises(Exception, match="no payment"):
        payments.timeline("pi_missing", db=db_path)


def test_time_buckets_never_straddle_local_days():
    span = (date(2026, 1, 1), date(2026, 12, 31))
    assert metrics._bucket_seconds(*span, "UTC") == 86400
    assert metrics._bucket_seconds(*span, "Europe/Berlin") == 3600
    assert metrics._bucket_seconds(*span, "Asia/Kolkata") == 900
    assert metrics._bucket_seconds(*span, "Australia/Lord_Howe") == 900  # half-hour DST


def test_summaries_in_one_query_equal_separate_summaries(db_path, monkeypatch):
    monkeypatch.setenv("PAYOPS_TIMEZONE", "America/New_York")
    load(db_path, "America/New_York")
    periods = [(date(2026, 11, 9), date(2026, 11, 15)), (date(2026, 11, 16), date(2026, 11, 22)),
               (date(2026, 10, 1), date(2026, 10, 31))]
    together, days = metrics.summaries(periods, db=db_path, extra=(date(2026, 11, 1), date(2026, 11, 2)))
    for (start, end), got in zip(periods, together, strict=False):
        want = metrics.summary(start, end, db=db_path)
        assert got.equals(want), (start, end)
    assert days["day"].min() == date(2026, 10, 31) and days["day"].max() == date(2026, 11, 22)


def test_refund_requests_breakdown_uses_the_queues_priority_rule(db_path, monkeypatch):
    from payops.config import get_settings
    from payops.refunds import rules

    monkeypatch.setenv("PAYOPS_TIMEZONE", "UTC")
    now = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    # (id, currency, amount, status, requested hours before now): every priority, both currencies
    rows = [(1, "usd", 1000, "PENDING", 100), (2, "usd", 9000, "PENDING", 100), (3, "usd", 1000, "PENDING", 30),
            (4, "usd", 9000, "PENDING", 2), (5, "usd", 1000, "PENDING", 2), (6, "jpy", 9000, "PENDING", 2),
            (7, "usd", 9000, "APPROVED", 100), (8, "usd", 1000, "REJECTED", 100)]
    with connect(db_path) as con:
        for rid, cur, amount, status, hours in rows:
            at = now - timedelta(hours=hours)
            con.execute(
                "INSERT INTO refund_requests (id, customer, amount, currency, reason, status, requested_by, "
                "requested_at, updated_at) VALUES (?, 'cus_1', ?, ?, 'requested_by_customer', ?, 'ana', ?, ?)",
                [rid, amount, cur, status, at, at])
    got = insights.refund_requests_breakdown(date(2026, 11, 15), date(2026, 11, 20), db=db_path, now=now)
    policy = get_settings().refund_policy
    want: dict = defaultdict(lambda: [0, 0])
    for _, cur, amount, status, hours in rows:
        label = rules.priority(status, now - timedelta(hours=hours), amount, cur, policy, now)
        want[(cur, status, label)][0] += 1
        want[(cur, status, label)][1] += amount
    assert {(r.currency, r.status, r.priority): [r.requests, r.amount] for r in got.itertuples()} == dict(want)
    assert {"URGENT", "HIGH", "LARGE", "NORMAL"} <= set(got["priority"])


def test_a_kpi_message_never_shows_a_breach_as_equal_figures():
    # 379 of 399 succeeded: 94.99%, which one decimal would print as "95.0% is below the 95.0%"
    assert metrics._pcts(379 / 399, 0.95) == ("94.99%", "95.00%")
    assert metrics._pcts(0.5, 0.95) == ("50.0%", "95.0%")
    assert metrics._pcts(0.95, 0.95) == ("95.0%", "95.0%")  # equal is equal (and passes)
    assert metrics._pcts(0.0500001, 0.05) == ("5.0000%", "5.0000%")  # at most 4 decimals

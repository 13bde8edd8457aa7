from decimal import Decimal

import pytest

from payops.errors import MoneyError
from payops.money import exponent, fee, format_amount, from_decimal, sum_by_currency, to_decimal


@pytest.mark.parametrize(
    "amount, currency, expected",
    [
        (1312, "usd", Decimal("13.12")),
        (1000, "jpy", Decimal("1000")),
        (1234, "kwd", Decimal("1.234")),
        (1234, "KWD", Decimal("1.234")),
        (5, "eur", Decimal("0.05")),
        (-250, "gbp", Decimal("-2.50")),
        (0, "usd", Decimal("0.00")),
        (99, "bif", Decimal("99")),
        (7, "tnd", Decimal("0.007")),
    ],
)
def test_to_decimal(amount, currency, expected):
    assert to_decimal(amount, currency) == expected
    assert from_decimal(to_decimal(amount, currency), currency) == amount


def test_exponents_cover_stripe_lists():
    for cur in "bif clp djf gnf jpy kmf krw mga pyg rwf ugx vnd vuv xaf xof xpf".split():
        assert exponent(cur) == 0
    for cur in "bhd jod kwd omr tnd".split():
        assert exponent(cur) == 3
    assert exponent("usd") == exponent("eur") == 2


@pytest.mark.parametrize(
    "value, currency, expected",
    [("12.50", "usd", 1250), ("12.5", "usd", 1250), ("1,000", "jpy", 1000), (Decimal("1.234"), "kwd", 1234),
     (12, "usd", 1200), ("0.01", "usd", 1), (12.5, "usd", 1250)],
)
def test_from_decimal(value, currency, expected):
    assert from_decimal(value, currency) == expected


@pytest.mark.parametrize(
    "value, currency",
    [("13.125", "usd"), ("1.5", "jpy"), ("1.2345", "kwd"), ("abc", "usd"), ("NaN", "usd"), ("inf", "eur"),
     (True, "usd")],
)
def test_from_decimal_refuses_extra_precision_and_junk(value, currency):
    with pytest.raises(MoneyError):
        from_decimal(value, currency)


def test_bad_currency_code():
    with pytest.raises(MoneyError, match="currency"):
        to_decimal(100, "dollars")


def test_floats_are_never_amounts():
    with pytest.raises(MoneyError):
        to_decimal(13.12, "usd")
    with pytest.raises(MoneyError):
        fee(100.0, 290)


@pytest.mark.parametrize(
    "amount, bps, expected",
    [(125, 1000, 12), (135, 1000, 14), (1000, 290, 29), (1050, 290, 30), (0, 1500, 0), (4500, 1500, 675),
     (5, 1000, 0), (15, 1000, 2), (25, 1000, 2), (-125, 1000, -12)],
)
def test_fee_rounds_half_even(amount, bps, expected):
    assert fee(amount, bps) == expected
    assert isinstance(fee(amount, bps), int)


def test_fee_never_fractional():
    # every fee over a range is a whole number of minor units
    assert all(isinstance(fee(a, 290), int) for a in range(0, 5000, 7))


def test_format_amount():
    assert format_amount(1312, "usd") == "$13.12"
    assert format_amount(1000, "jpy") == "¥1,000"
    assert format_amount(1234, "kwd").endswith("1.234")
    assert format_amount(123456789, "eur") == "€1,234,567.89"
    assert format_amount(None, "usd") == ""
    assert "13.125" not in format_amount(13125, "usd")


def test_sum_by_currency_never_mixes():
    assert sum_by_currency([(100, "usd"), (200, "USD"), (300, "jpy")]) == {"usd": 300, "jpy": 300}


# --- the SQL forms of the money rules agree with the Python ones ----------------------
EDGE_AMOUNTS = [0, 1, 5, 15, 25, 125, 135, 4500, 6667, 9_999, 10_001, 33_333, 123_456_789, 9_007_199_254,
                -1, -5, -125, -135, -4500]
EDGE_BPS = [0, 1, 290, 1000, 1500, 3333, 5000, 9999, 10_000]


def _duckdb_values(expr: str, amounts: list[int]) -> list[int]:
    import duckdb

    con = duckdb.connect()
    rows = ", ".join(f"({i}, {a})" for i, a in enumerate(amounts))
    got = con.execute(f"SELECT {expr} FROM (VALUES {rows}) t(i, x) ORDER BY i").fetchall()
    con.close()
    return [r[0] for r in got]


@pytest.mark.parametrize("bps", EDGE_BPS)
def test_fee_sql_agrees_with_fee_on_edge_cases(bps):
    from payops.money import fee_sql

    # every half-way remainder (x.5 of a minor unit) for odd and even quotients, signs, big amounts
    step = max(bps, 1)
    amounts = EDGE_AMOUNTS + [k * 10_000 // step for k in range(1, 8)] + [k * 5_000 // step for k in range(1, 8)]
    assert _duckdb_values(fee_sql("x", bps), amounts) == [fee(a, bps) for a in amounts]


def test_fee_sql_on_an_engine_whose_division_truncates():
    # Spark and SQLite truncate integer division and remainders toward zero; the expression
    # must not depend on it. sqlglot writes the same text for SQLite, which runs it here.
    sqlglot = pytest.importorskip("sqlglot")
    import sqlite3

    from payops.money import fee_sql

    con = sqlite3.connect(":memory:")
    for bps in (290, 1500, 3333):
        sql = sqlglot.transpile(f"SELECT {fee_sql('x', bps)} FROM t", read="duckdb", write="sqlite")[0]
        con.execute("DROP TABLE IF EXISTS t")
        con.execute("CREATE TABLE t (i INTEGER, x INTEGER)")
        con.executemany("INSERT INTO t VALUES (?, ?)", list(enumerate(EDGE_AMOUNTS[:14] + EDGE_AMOUNTS[15:])))
        got = [r[0] for r in con.execute(sql.replace(" FROM t", ", i FROM t ORDER BY i"))]
        assert got == [fee(a, bps) for a in EDGE_AMOUNTS[:14] + EDGE_AMOUNTS[15:]], bps
        assert "DIV" in sqlglot.transpile(fee_sql("x", bps), read="duckdb", write="spark")[0]


def test_platform_fee_and_net_sql_agree_with_python():
    import duckdb

    from payops.money import (
        net,
        net_after_platform_fee,
        net_after_platform_fee_sql,
        net_sql,
        platform_fee,
        platform_fee_sql,
    )

    con = duckdb.connect()
    cases = [(4500, 675), (4500, None), (1312, None), (125, None), (0, None), (3000, 0)]
    for captured, app_fee in cases:
        got = con.execute(f"SELECT {platform_fee_sql('$c', '$a', 1500)}", {"c": captured, "a": app_fee}).fetchone()[0]
        assert got == platform_fee(captured, app_fee, 1500)
    assert platform_fee(1312, None, 1500) == 197 and platform_fee(4500, 675, 1000) == 675
    row = con.execute(f"SELECT {net_sql('10000', '1500', '500', '320')}, "
                      f"{net_after_platform_fee_sql(net_sql('10000', '1500', '500', '320'), '1500')}").fetchone()
    assert row == (net(10000, 1500, 500, 320), net_after_platform_fee(net(10000, 1500, 500, 320), 1500)) == (7680, 6180)
    with pytest.raises(MoneyError):
        net(100.0, 0, 0, 0)
    with pytest.raises(MoneyError):
        platform_fee_sql("x", "y", "1500")  # a rate is an integer, never text pasted into SQL


def test_figures_and_gross_parts():
    from payops.money import FIGURES, GROSS_PARTS, net, net_after_platform_fee

    assert set(GROSS_PARTS) < set(FIGURES) and "gross_volume" in FIGURES
    gross, refunded, disputed, stripe, platform = 10_000, 1_500, 500, 320, 1_500
    n = net(gross, refunded, disputed, stripe)
    parts = {"refunded_amount": refunded, "disputed_amount": disputed, "stripe_fees": stripe,
             "platform_fees": platform, "net_after_platform_fee": net_after_platform_fee(n, platform)}
    assert sum(parts[p] for p in GROSS_PARTS) == gross


def test_which_charges_are_gross_and_which_refunds_are_refunded_money():
    """One rule each (payops.money), read by the metrics, the payment breakdown and insights."""
    import duckdb

    from payops import money

    con = duckdb.connect()
    rows = con.execute(
        f"SELECT s, {money.gross_charge_sql('s')}, {money.gross_amount_sql('s', 'c')} "
        "FROM (VALUES ('succeeded', 500), ('pending', 500), ('failed', NULL), ('succeeded', NULL)) t(s, c)"
    ).fetchall()
    assert rows == [("succeeded", True, 500), ("pending", False, 0), ("failed", False, 0), ("succeeded", True, 0)]
    refunds = ["succeeded", "pending", "requires_action", "failed", "canceled"]
    got = [con.execute(f"SELECT {money.refunded_sql('?')}", [s]).fetchone()[0] for s in refunds]
    assert got == [True, False, False, False, False]

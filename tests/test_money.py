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
    [("13.125", "usd"), ("1.5", "jpy"), ("1.2345", "kwd"), ("abc", "usd"), ("NaN", "usd"), ("inf", "eur"), (True, "usd")],
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

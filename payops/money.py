"""Money in integer minor units, with Stripe's currency exponents.

Amounts are always ``int`` in the currency's minor unit (cents for USD, yen for JPY, fils
for KWD). Decimals appear only at the edges: typing an amount in, or showing one.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal, InvalidOperation

from babel.numbers import format_currency

from payops.errors import MoneyError

ZERO_DECIMAL = frozenset(
    "bif clp djf gnf jpy kmf krw mga pyg rwf ugx vnd vuv xaf xof xpf".split()
)
THREE_DECIMAL = frozenset("bhd jod kwd omr tnd".split())

__all__ = [
    "ZERO_DECIMAL",
    "THREE_DECIMAL",
    "exponent",
    "to_decimal",
    "from_decimal",
    "fee",
    "format_amount",
    "sum_by_currency",
]


def _norm(currency: str) -> str:
    if not isinstance(currency, str) or len(currency.strip()) != 3 or not currency.strip().isalpha():
        raise MoneyError(f"not a currency code: {currency!r} (expected three letters like 'usd')")
    return currency.strip().lower()


def exponent(currency: str) -> int:
    """How many decimal places ``currency`` has in Stripe (0, 2 or 3)."""
    cur = _norm(currency)
    if cur in ZERO_DECIMAL:
        return 0
    if cur in THREE_DECIMAL:
        return 3
    return 2


def _check_int(amount_minor: object) -> int:
    if isinstance(amount_minor, bool) or not isinstance(amount_minor, int):
        # numpy integers are fine; floats are not
        if hasattr(amount_minor, "dtype") and getattr(amount_minor.dtype, "kind", "") in "iu":
            return int(amount_minor)  # type: ignore[arg-type]
        raise MoneyError(f"amounts are integers in minor units, got {amount_minor!r}")
    return amount_minor


def to_decimal(amount_minor: int, currency: str) -> Decimal:
    """Minor units to an exact Decimal in major units: ``to_decimal(1312, "usd") == Decimal("13.12")``."""
    amount = _check_int(amount_minor)
    return Decimal(amount).scaleb(-exponent(currency))


def from_decimal(value: Decimal | str | int | float, currency: str) -> int:
    """Major units to integer minor units, refusing more precision than the currency has.

    ``from_decimal("12.50", "usd") == 1250``; ``from_decimal("1.5", "jpy")`` raises
    :class:`~payops.errors.MoneyError`.
    """
    exp = exponent(currency)
    if isinstance(value, bool):
        raise MoneyError(f"not an amount: {value!r}")
    try:
        dec = Decimal(str(value).strip().replace(",", "")) if not isinstance(value, Decimal) else value
    except InvalidOperation:
        raise MoneyError(f"not an amount: {value!r}") from None
    if not dec.is_finite():
        raise MoneyError(f"not an amount: {value!r}")
    minor = dec.scaleb(exp)
    if minor != minor.to_integral_value():
        raise MoneyError(
            f"{value} has more decimals than {currency.upper()} allows ({exp})"
        )
    return int(minor)


def fee(amount_minor: int, bps: int) -> int:
    """``amount_minor * bps / 10000`` rounded half-even to a whole minor unit.

    ``fee(125, 1000) == 12`` and ``fee(135, 1000) == 14``.
    """
    amount = _check_int(amount_minor)
    if isinstance(bps, bool) or not isinstance(bps, int):
        raise MoneyError(f"a fee rate is an integer number of basis points, got {bps!r}")
    # integer half-even: q is the floor, r the remainder in [0, 10000)
    q, r = divmod(amount * bps, 10000)
    if r > 5000 or (r == 5000 and q % 2):
        q += 1
    return q


def format_amount(amount_minor: int | None, currency: str, locale: str = "en_US") -> str:
    """A human display string with the currency's symbol and Stripe's decimals.

    ``format_amount(1312, "usd") == "$13.12"``, ``format_amount(1000, "jpy") == "¥1,000"``.
    """
    if amount_minor is None:
        return ""
    exp = exponent(currency)
    pattern = "¤#,##0" + ("." + "0" * exp if exp else "")
    return format_currency(
        to_decimal(amount_minor, currency),
        currency.upper(),
        format=pattern,
        locale=locale,
        currency_digits=False,
    )


def sum_by_currency(items: Iterable[tuple[int, str]]) -> dict[str, int]:
    """Add ``(amount_minor, currency)`` pairs per currency; never across currencies."""
    totals: dict[str, int] = {}
    for amount, currency in items:
        cur = _norm(currency)
        totals[cur] = totals.get(cur, 0) + _check_int(amount)
    return totals

"""Money in integer minor units, with Stripe's currency exponents, and the money rules.

Amounts are always ``int`` in the currency's minor unit (cents for USD, yen for JPY, fils
for KWD). Decimals appear only at the edges: typing an amount in, or showing one.

This module is the one owner of each money rule, in Python and, where SQL needs the rule,
as a function rendering the SQL expression (portable SQL: integer arithmetic, ``CASE``,
``coalesce``; no engine-specific macro), so DuckDB, Spark and Python always agree:

- the currency exponent (:func:`exponent`; nothing else computes one),
- the platform fee (:func:`platform_fee` / :func:`platform_fee_sql`, rounding half-even with
  :func:`fee` / :func:`fee_sql`),
- the money figures and what "net" means (:data:`FIGURES`, :func:`net` / :func:`net_sql`,
  :func:`net_after_platform_fee` / :func:`net_after_platform_fee_sql`).
"""

from __future__ import annotations

import numbers
import re
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
    "FIGURES",
    "GROSS_PARTS",
    "exponent",
    "to_decimal",
    "from_decimal",
    "parse",
    "MAX_MINOR",
    "fee",
    "div_half_even",
    "fee_sql",
    "platform_fee",
    "platform_fee_sql",
    "net",
    "net_sql",
    "net_after_platform_fee",
    "net_after_platform_fee_sql",
    "format_amount",
    "sum_by_currency",
]

#: The money figures of payops, each with its label and its one meaning. Daily metrics, a
#: payment's breakdown (the review app), exports, reports and docs/schema.md all use these
#: names for these meanings and nothing else. A payment's figure is its part of the daily
#: figure of the same name (its charge, its refunds, its disputes, their Stripe fees).
FIGURES: dict[str, tuple[str, str]] = {
    "gross_volume": ("Gross volume", "captured amount of succeeded charges"),
    "refunded_amount": ("Refunded", "succeeded refunds"),
    "disputed_amount": ("Disputed", "chargebacks opened (inquiries move no money), less what won disputes "
                        "got back"),
    "stripe_fees": ("Stripe fees", "Stripe's fees from balance transactions (charges, refunds, disputes)"),
    "platform_fees": ("Platform fees", "the platform's fee on succeeded charges: application_fee_amount, "
                      "else the configured rate rounded half-even"),
    "net": ("Net", "gross volume - refunded - disputed - Stripe fees (before the platform fee)"),
    "net_after_platform_fee": ("Net after platform fee", "net - platform fees"),
}

#: Dispute statuses of an inquiry: the card issuer only asks, no money moves, so it is never in
#: ``disputed_amount`` (docs/statuses.md). Every other dispute withdrew its amount when it opened.
INQUIRY_STATUSES = ("warning_needs_response", "warning_under_review", "warning_closed")
#: ``reporting_category`` of the balance transaction that gives a won dispute's money back: it
#: counts against ``disputed_amount`` on the day of that transaction.
DISPUTE_REINSTATED = "dispute_reversal"


#: The charge status whose captured amount is gross volume (and on which the platform fee is
#: taken); the refund status that is refunded money (pending, requires_action, failed and
#: canceled refunds move none: docs/statuses.md).
GROSS_CHARGE_STATUS = "succeeded"
REFUNDED_STATUS = "succeeded"


def gross_charge_sql(status: str) -> str:
    """SQL, true when a charge (status column ``status``) counts in gross volume."""
    return f"{status} = {GROSS_CHARGE_STATUS!r}"


def gross_amount_sql(status: str, captured: str) -> str:
    """SQL, a charge's part of gross volume: its captured amount if it counts, else 0."""
    return f"CASE WHEN {gross_charge_sql(status)} THEN coalesce({captured}, 0) ELSE 0 END"


def refunded_sql(status: str) -> str:
    """SQL, true when a refund (status column ``status``) is refunded money."""
    return f"{status} = {REFUNDED_STATUS!r}"


def is_chargeback(status: str | None) -> bool:
    """True when a dispute in ``status`` is a chargeback (it took money), False for an inquiry.

    The Python twin of :func:`chargeback_sql`; an unknown status counts as a chargeback.
    """
    return status not in INQUIRY_STATUSES


def chargeback_sql(status: str) -> str:
    """SQL, true when a dispute whose status is the column ``status`` took money (not an inquiry)."""
    return f"{status} NOT IN ({', '.join(repr(s) for s in INQUIRY_STATUSES)})"


def reinstated_sql(category: str) -> str:
    """SQL, true when a balance transaction (``reporting_category`` column ``category``) gives a won
    dispute's money back."""
    return f"{category} = {DISPUTE_REINSTATED!r}"


#: Payout statuses that are cash in the bank: only ``paid``. ``pending`` and ``in_transit`` are on
#: their way; ``failed`` and ``canceled`` (RETURNED_PAYOUT_STATUSES) came back to the Stripe balance
#: and never count as cash (docs/statuses.md).
CASH_PAYOUT_STATUSES = ("paid",)
RETURNED_PAYOUT_STATUSES = ("failed", "canceled")
#: Payout statuses whose balance transactions Stripe has assigned (``?payout=`` lists them), so
#: the payout must reconcile to them: ``paid`` and ``in_transit`` (on its way, not yet cash).
SETTLED_PAYOUT_STATUSES = ("paid", "in_transit")


#: The parts gross volume splits into, exactly: their sum is ``gross_volume`` for every day,
#: period and payment (the fee chart stacks these to 100%).
GROSS_PARTS = ("refunded_amount", "disputed_amount", "stripe_fees", "platform_fees", "net_after_platform_fee")


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
    # numpy integers are Integral too; floats (and bools, which are ints) are not amounts
    if isinstance(amount_minor, bool) or not isinstance(amount_minor, numbers.Integral):
        raise MoneyError(f"amounts are integers in minor units, got {amount_minor!r}")
    return int(amount_minor)


def to_decimal(amount_minor: int, currency: str) -> Decimal:
    """Minor units to an exact Decimal in major units: ``to_decimal(1312, "usd") == Decimal("13.12")``."""
    amount = _check_int(amount_minor)
    return Decimal(amount).scaleb(-exponent(currency))


# What a person may type: ASCII digits, "." before the decimals, "," only between groups of
# three digits ("1,000.50"); so "1,00" (a decimal comma), "1e3" and non-ASCII digits, which
# Decimal() would all accept, are refused instead of read as another amount.
_AMOUNT_TEXT = re.compile(r"\A[+-]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?\Z", re.ASCII)
_AMOUNT_HINT = "write it like 1234.50: digits 0-9, '.' before the decimals, ',' only between groups of three digits"
MAX_MINOR = 2**63 - 1  # BIGINT


def parse(text: str, currency: str) -> int:
    """An amount a person typed, in major units, to integer minor units; strict.

    ``parse("12.50", "usd") == 1250``, ``parse("1,000", "jpy") == 1000``; ``"1,00"``, ``"1e3"``,
    ``"١٢"`` (non-ASCII digits), ``"13.125"`` (USD) and amounts beyond a BIGINT raise
    :class:`~payops.errors.MoneyError` with a hint, never another amount.
    """
    cleaned = str(text).strip()
    if len(cleaned) > 40 or not _AMOUNT_TEXT.match(cleaned):
        raise MoneyError(f"not an amount: {str(text)[:40]!r} ({_AMOUNT_HINT})")
    return from_decimal(Decimal(cleaned.replace(",", "")), currency)


def from_decimal(value: Decimal | str | int | float, currency: str) -> int:
    """Major units to integer minor units, refusing more precision than the currency has.

    ``from_decimal("12.50", "usd") == 1250``; ``from_decimal("1.5", "jpy")`` raises
    :class:`~payops.errors.MoneyError`. Text is read by :func:`parse` (strict).
    """
    exp = exponent(currency)
    if isinstance(value, bool):
        raise MoneyError(f"not an amount: {value!r}")
    if isinstance(value, str):
        return parse(value, currency)
    try:
        dec = Decimal(str(value)) if not isinstance(value, Decimal) else value
    except InvalidOperation:
        raise MoneyError(f"not an amount: {value!r}") from None
    if not dec.is_finite():
        raise MoneyError(f"not an amount: {value!r}")
    minor = dec.scaleb(exp)
    if minor != minor.to_integral_value():
        raise MoneyError(
            f"{value} has more decimals than {currency.upper()} allows ({exp})"
        )
    if abs(minor) > MAX_MINOR:
        raise MoneyError(f"{value} is too large an amount")
    return int(minor)


def fee(amount_minor: int, bps: int) -> int:
    """``amount_minor * bps / 10000`` rounded half-even to a whole minor unit.

    ``fee(125, 1000) == 12`` and ``fee(135, 1000) == 14``.
    """
    return div_half_even(_check_int(amount_minor) * _bps(bps), 10000)


def div_half_even(numerator: int, denominator: int) -> int:
    """``numerator / denominator`` rounded half-even to an integer, in integer maths only.

    The one rounding rule of payops's money (fees, the reversal rule of refunds):
    ``div_half_even(25, 10) == 2``, ``div_half_even(35, 10) == 4``. ``denominator`` > 0.
    """
    # q is the floor and r the remainder in [0, denominator): round up past half, and at
    # exactly half only when q is odd
    q, r = divmod(numerator, denominator)
    if 2 * r > denominator or (2 * r == denominator and q % 2):
        q += 1
    return q


def _bps(bps: object) -> int:
    if isinstance(bps, bool) or not isinstance(bps, int):
        raise MoneyError(f"a fee rate is an integer number of basis points, got {bps!r}")
    return bps


def fee_sql(amount: str, bps: int) -> str:
    """The SQL expression of :func:`fee`: ``amount * bps / 10000`` rounded half-even.

    Integer arithmetic only, and correct whether the engine's ``%`` truncates (DuckDB, Spark,
    SQLite) or floors: the remainder is first brought into ``[0, 10000)``, so the quotient is
    exact. ``bps`` is validated and written into the text as an integer literal.

    Args:
        amount: a SQL expression of an integer amount in minor units (e.g. a column name).
        bps: the rate in basis points.
    """
    product = f"(({amount}) * {_bps(bps)})"
    rem = f"((({product} % 10000) + 10000) % 10000)"
    quotient = f"(({product} - {rem}) // 10000)"
    return (f"({quotient} + CASE WHEN {rem} > 5000 OR ({rem} = 5000 AND {quotient} % 2 <> 0) "
            f"THEN 1 ELSE 0 END)")


def platform_fee(captured: int, application_fee_amount: int | None, bps: int) -> int:
    """The platform's fee on one succeeded charge.

    Stripe's ``application_fee_amount`` where the charge has it, else the configured rate
    ``bps`` of the captured amount, rounded half-even (:func:`fee`).
    """
    if application_fee_amount is not None:
        return _check_int(application_fee_amount)
    return fee(captured, bps)


def platform_fee_sql(captured: str, application_fee_amount: str, bps: int) -> str:
    """The SQL expression of :func:`platform_fee` over two column expressions."""
    return f"coalesce({application_fee_amount}, {fee_sql(f'coalesce({captured}, 0)', bps)})"


def net(gross_volume: int, refunded_amount: int, disputed_amount: int, stripe_fees: int) -> int:
    """What is left of the money taken after refunds, disputes and Stripe's fees.

    ``net = gross_volume - refunded_amount - disputed_amount - stripe_fees``; the platform fee
    is not taken off (that is :func:`net_after_platform_fee`).
    """
    parts = [_check_int(x) for x in (gross_volume, refunded_amount, disputed_amount, stripe_fees)]
    return parts[0] - parts[1] - parts[2] - parts[3]


def net_sql(gross_volume: str, refunded_amount: str, disputed_amount: str, stripe_fees: str) -> str:
    """The SQL expression of :func:`net` over four integer SQL expressions."""
    return f"(({gross_volume}) - ({refunded_amount}) - ({disputed_amount}) - ({stripe_fees}))"


def net_after_platform_fee(net_amount: int, platform_fees: int) -> int:
    """:func:`net` minus the platform's fees: ``net_after_platform_fee = net - platform_fees``."""
    return _check_int(net_amount) - _check_int(platform_fees)


def net_after_platform_fee_sql(net_amount: str, platform_fees: str) -> str:
    """The SQL expression of :func:`net_after_platform_fee`."""
    return f"(({net_amount}) - ({platform_fees}))"


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

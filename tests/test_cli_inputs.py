"""Issue 13, CLI and messages: no traceback for any input, strict amounts, one word for counts."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from click.testing import CliRunner

from payops.cli import cli
from payops.demo import build_demo
from payops.errors import MoneyError
from payops.money import from_decimal, parse

AS_OF = date(2026, 11, 20)


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("inputs") / "demo.duckdb"
    build_demo(path, seed=9, customers=40, days=15, as_of=AS_OF, progress=False)
    return path


@pytest.fixture
def binary(tmp_path: Path) -> Path:
    path = tmp_path / "events.bin"
    path.write_bytes(bytes(range(256)) * 8)
    return path


HOSTILE = [
    ["refunds", "request", "{payment}", "--amount", "1e400", "--reason", "duplicate"],
    ["refunds", "request", "{payment}", "--amount", "1,00", "--reason", "duplicate"],
    ["refunds", "check", "{payment}", "--amount", "1e3"],
    ["refunds", "check", "{payment}", "--amount", "\u0661\u0662"],  # Arabic-Indic digits
    ["refunds", "check", "{payment}", "--amount", "99999999999999999999999999"],
    ["refunds", "list", "--limit", "99999999999999999999"],
    ["refunds", "list", "--offset", "99999999999999999999"],
    ["refunds", "show", "99999999999999999999"],
    ["refunds", "approve", "99999999999999999999"],
    ["refunds", "reconcile", "--older-than", "99999999999999999999"],
    ["audit", "--limit", "99999999999999999999"],
    ["status", "--date", "0001-01-01"],
    ["status", "--date", "9999-12-31"],
    ["analytics", "--from", "0001-01-01", "--to", "0001-01-02"],
    ["analytics", "--from", "9999-12-30", "--to", "9999-12-31"],
    ["export", "payments", "--from", "0001-01-01", "--to", "9999-12-31", "--out", "-"],
    ["report", "daily", "--date", "0001-01-01"],
    ["report", "monthly", "--date", "9999-12-31"],
    ["demo", "--as-of", "0001-01-01", "--db", "{tmp}/d1.duckdb", "-q"],
    ["demo", "--as-of", "9999-12-31", "--db", "{tmp}/d2.duckdb", "-q"],
    ["demo", "--days", "99999999999999999999", "--db", "{tmp}/d3.duckdb", "-q"],
    ["events", "apply", "{binary}"],
]


@pytest.mark.parametrize("args", HOSTILE, ids=lambda a: " ".join(a)[:60])
def test_no_traceback_for_any_input(demo: Path, binary: Path, tmp_path: Path, monkeypatch, args: list[str]):
    import duckdb

    monkeypatch.setenv("PAYOPS_DB", str(demo))
    con = duckdb.connect(str(demo), read_only=True)
    payment = con.execute("SELECT id FROM payment_intents WHERE status = 'succeeded' ORDER BY id LIMIT 1").fetchone()
    con.close()
    assert payment is not None
    argv = [a.format(payment=payment[0], binary=binary, tmp=tmp_path) for a in args]
    result = CliRunner().invoke(cli, argv)
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code in (1, 2), result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines and (lines[-1].startswith("Error:") or "Error:" in result.output), result.output


@pytest.mark.parametrize("text", ["1,00", "1e3", "1E3", "\u0661\u0662", "12.5.0", "1,0000", ",100", "0x10", "1_000",
                                  "\uff11\uff10", "1e400", "nan"])
def test_strict_amounts_are_refused_with_a_hint(text: str):
    with pytest.raises(MoneyError, match=r"digits 0-9, '\.' before the decimals"):
        parse(text, "usd")
    with pytest.raises(MoneyError):
        from_decimal(text, "usd")


def test_a_decimal_comma_is_never_read_as_a_hundred():
    with pytest.raises(MoneyError):
        from_decimal("1,00", "usd")
    assert parse("1,000.50", "usd") == 100050 and parse("1.00", "usd") == 100 and parse(" 12 ", "jpy") == 12


def test_amounts_beyond_a_bigint_are_refused():
    with pytest.raises(MoneyError, match="too large"):
        parse("99999999999999999999", "usd")

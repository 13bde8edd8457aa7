"""Small helpers for text shown to people (CLI lines, messages): counts, missing values, and
terminal safety (text from Stripe or a user never drives the terminal)."""

from __future__ import annotations

import math
import re
from typing import Any, TextIO

__all__ = ["plural", "text_or", "terminal_safe", "TerminalGuard"]


def plural(n: int, singular: str, plural_form: str | None = None, *, thousands: bool = True) -> str:
    """A count and its noun, singular for exactly one: ``plural(1, "payment")`` is ``"1 payment"``.

    Args:
        n: the count.
        singular: the noun for one.
        plural_form: the noun for other counts (default: ``singular + "s"``).
        thousands: group digits with commas (``1,234 payments``).

    Returns:
        The count and the right noun, e.g. ``"0 payments"``, ``"1 payment"``, ``"12,000 payments"``.
    """
    word = singular if n == 1 else (plural_form or f"{singular}s")
    return f"{n:,} {word}" if thousands else f"{n} {word}"


def text_or(value: Any, default: str = "") -> str:
    """``value`` as text, or ``default`` when it is missing (None, NaN, NaT, pandas NA): never ``"nan"``."""
    if value is None:
        return default
    if isinstance(value, float) and math.isnan(value):
        return default
    try:
        import pandas as pd

        if pd.isna(value) is True:
            return default
    except (ImportError, TypeError, ValueError):
        pass
    return str(value)


def terminal_safe(text: str) -> str:
    """``text`` with every control character (terminal escapes from Stripe data) shown as ``\\xNN``."""
    return "".join(c if c.isprintable() or c == " " else f"\\x{ord(c):02x}" for c in text)


# What payops itself writes to a terminal besides printable text: newlines, tabs, CSV's CR LF,
# and click.style's colours and weights (SGR). Everything else (other escape sequences: window
# title, cursor moves, clearing lines, hidden text; BEL, backspace, a bare CR; the bidirectional
# overrides that reorder what a line seems to say) can only come from data, and is shown as \xNN.
_STYLES = {0, 1, 2, 3, 4, 22, 23, 24, 39, 49, *range(30, 38), *range(40, 48), *range(90, 98), *range(100, 108)}
_UNSAFE = re.compile(r"\x1b\[([0-9;]*)m|\r\n|[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029"
                     r"\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _escape(m: re.Match[str]) -> str:
    whole = m.group(0)
    if whole == "\r\n":
        return whole
    if m.group(1) is not None:
        codes = m.group(1) or "0"
        if all(c.isdigit() and int(c) in _STYLES for c in codes.split(";")):
            return whole
    return terminal_safe(whole)


class TerminalGuard:
    """A text stream that writes through to ``stream`` with data's control characters escaped.

    The ``payops`` command writes its standard output through one, so a customer name, note or
    query result holding an escape sequence is shown, never executed by the terminal.
    """

    def __init__(self, stream: TextIO):
        self._stream = stream

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError("TerminalGuard writes text")
        self._stream.write(_UNSAFE.sub(_escape, text))
        return len(text)

    def __getattr__(self, name: str) -> Any:  # encoding, flush, isatty, fileno...
        return getattr(self._stream, name)

"""Small wording helpers for text shown to people (CLI lines, messages): counts and missing values."""

from __future__ import annotations

import math
from typing import Any

__all__ = ["plural", "text_or"]


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

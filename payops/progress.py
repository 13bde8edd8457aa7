"""The one place progress bars are made: drawn on a terminal, silent in logs and pipes."""

from __future__ import annotations

from typing import Any

__all__ = ["bar"]


def bar(iterable: Any = None, *, enabled: bool = True, **options: Any) -> Any:
    """A tqdm bar that draws only when asked for and its stream is a terminal.

    Args:
        iterable: what to iterate over (optional; else call ``update``).
        enabled: False never draws; True draws when stderr is a terminal (tqdm's ``disable=None``),
            so cron logs and CI output get no carriage-return noise.
        **options: passed on to tqdm (``total``, ``desc``, ``unit`` ...).
    """
    from tqdm.auto import tqdm

    return tqdm(iterable, disable=None if enabled else True, **options)

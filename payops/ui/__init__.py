"""Notebook-facing code: the refund review app and display helpers.

``payops.ui`` imports the library; the library never imports ``payops.ui``.

- :class:`payops.ui.review.RefundReview`: the ipywidgets refund review app (its screen parts
  in :mod:`payops.ui.review_parts`, its HTML in :mod:`payops.ui.review_html`, its decisions
  through :class:`payops.service.RefundActions`).
- :mod:`payops.ui.display`: badges, Stripe dashboard links, styled tables and charts.
"""

from __future__ import annotations

from typing import Any

__all__ = ["RefundReview", "display"]


def __getattr__(name: str) -> Any:
    # Lazy, so `import payops.ui.display` does not pay for ipywidgets.
    if name == "RefundReview":
        from payops.ui.review import RefundReview

        return RefundReview
    if name == "display":
        import importlib

        return importlib.import_module("payops.ui.display")
    raise AttributeError(f"module 'payops.ui' has no attribute {name!r}")

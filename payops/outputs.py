"""What payops writes for people, made safe: Stripe links, HTML text, CSV cells.

Names, emails, notes, reasons and ids come from Stripe or from a user, so every surface that
builds HTML or CSV from them goes through this module:

- :func:`stripe_id` owns the rule for ids put into URLs: only :data:`STRIPE_ID` patterns
  (``pi_...``, ``cus_...``), nothing else, ever reaches an ``href``;
  :func:`dashboard_url` and :func:`html_link` build on it.
- :func:`text` escapes a value for HTML (``None``/NaN/``<NA>`` become ``""``); :func:`table`
  turns a DataFrame into a pandas Styler whose every cell and header is escaped (links are
  :func:`html_link`'s), for notebooks, the review app and reports.
- :func:`csv_cell` / :func:`csv_safe` neutralise spreadsheet formulas (OWASP CSV injection) in
  text cells; every CSV payops writes goes through :func:`write_csv`, which calls them.
"""

from __future__ import annotations

import hashlib
import html
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd

from payops.errors import InvalidInput

if TYPE_CHECKING:
    from pandas.io.formats.style import Styler

__all__ = ["STRIPE_ID", "DASHBOARD", "FORMULA_TRIGGERS", "stripe_id", "dashboard_url", "html_link", "text",
           "table", "csv_cell", "write_csv", "csv_safe"]

#: the Stripe ids payops links to; an id must match this whole to be put into a URL
STRIPE_ID = re.compile(r"^(pi|ch|py|re|pyr|cus|dp|du|po|tr|fee|txn|evt)_[A-Za-z0-9]+$")
DASHBOARD = "https://dashboard.stripe.com"
# id prefix -> dashboard section
_SECTIONS = {
    "pi": "payments", "ch": "payments", "py": "payments", "cus": "customers", "re": "refunds",
    "pyr": "refunds", "dp": "disputes", "du": "disputes", "po": "payouts", "tr": "connect/transfers",
    "fee": "connect/application_fees", "txn": "balance/history", "evt": "events",
}
#: first characters that make a spreadsheet run a cell as a formula (OWASP CSV injection),
#: with the full-width forms some spreadsheets fold to them
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r", "\n", "＝", "＋", "－", "＠")
# A plain number ("-13.12", as the *_decimal columns hold) is read as a number, never run.
_PLAIN_NUMBER = re.compile(r"^-?\d+(\.\d+)?$")


def _missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):  # lists, arrays
        return False


def stripe_id(value: Any) -> str | None:
    """``value`` as a Stripe id if it is one of :data:`STRIPE_ID`'s, else None.

    The one rule for what may go into a URL: ``stripe_id("pi_3Nx")`` is ``"pi_3Nx"``;
    ``stripe_id('pi_1"><script>')``, ``stripe_id("javascript:x")`` and ``stripe_id(None)``
    are None.
    """
    if _missing(value) or not isinstance(value, str):
        return None
    return value if STRIPE_ID.fullmatch(value) else None


def dashboard_url(object_id: Any, livemode: Any = False) -> str:
    """The Stripe dashboard page of an object, in test or live mode.

    ``dashboard_url("pi_123")`` is ``https://dashboard.stripe.com/test/payments/pi_123``.

    Raises:
        InvalidInput: ``object_id`` is not a Stripe id payops links to (:data:`STRIPE_ID`).
    """
    oid = stripe_id(object_id)
    if oid is None:
        raise InvalidInput(f"no Stripe dashboard page for {object_id!r} (expected an id like pi_..., cus_..., re_...)")
    mode = "" if (bool(livemode) and not _missing(livemode)) else "/test"
    return f"{DASHBOARD}{mode}/{_SECTIONS[oid.split('_', 1)[0]]}/{oid}"


def text(value: Any) -> str:
    """``value`` escaped for HTML text or an attribute; ``""`` for None, NaN and ``<NA>``."""
    return "" if _missing(value) else html.escape(str(value), quote=True)


def html_link(object_id: Any, livemode: Any = False, label: Any = None) -> str:
    """An HTML link to the object's dashboard page (new tab); escaped text alone for anything else.

    Args:
        object_id: a Stripe id; a value that is not one (:func:`stripe_id`) is shown as text.
        livemode: live (True) or test mode (False, missing).
        label: the link text (default: the id).
    """
    if _missing(object_id) or object_id == "":
        return ""
    shown = text(object_id if label is None else label)
    try:
        url = dashboard_url(object_id, livemode)
    except InvalidInput:
        return shown
    return f'<a href="{html.escape(url)}" target="_blank" rel="noopener noreferrer">{shown}</a>'


def table(df: pd.DataFrame, *, link_columns: Sequence[str] = (), livemode_column: str = "livemode",
          hide: Sequence[str] = (), caption: str | None = None) -> Styler:
    """A pandas Styler of ``df`` that is safe to show: every cell and header escaped, no NaN.

    The frame is copied. Cells of ``link_columns`` become :func:`html_link` links (the
    row's ``livemode_column`` picks test or live mode); every other cell is shown as its
    text, escaped; missing values are blank. The Styler's id is derived from the content,
    so the same data gives the same HTML.

    Args:
        df: the rows to show (already formatted: money as text, and so on).
        link_columns: columns of Stripe ids to link to the dashboard.
        livemode_column: the column saying test or live (missing: test mode).
        hide: columns to leave out (after they served, e.g. ``livemode``).
        caption: a caption above the table (escaped).
    """
    out = df.copy().reset_index(drop=True)
    live = out[livemode_column] if livemode_column in out.columns else pd.Series([False] * len(out), index=out.index)
    links = [c for c in link_columns if c in out.columns]
    for col in links:
        out[col] = [html_link(v, lm) for v, lm in zip(out[col], live, strict=True)]
    out = out.drop(columns=[c for c in hide if c in out.columns])
    plain = [c for c in out.columns if c not in links]
    for col in plain:
        if out[col].dtype == object:
            # lists and other objects are shown as their text, and that text is escaped too
            out[col] = [v if isinstance(v, str) or _missing(v) else str(v) for v in out[col]]
    digest = hashlib.sha1(out.to_json(default_handler=str).encode()).hexdigest()[:10]
    styler = out.style.hide(axis="index").set_uuid(f"payops{digest}")
    if plain:
        styler = styler.format(na_rep="", escape="html", subset=plain)
    if links:
        styler = styler.format(na_rep="", subset=links)
    styler = styler.format_index(escape="html", axis=1)
    if caption:
        styler = styler.set_caption(html.escape(caption))
    return styler


def csv_cell(value: Any) -> Any:
    """One CSV cell, neutralised: text that a spreadsheet would run as a formula gets a leading ``'``.

    Only text is changed (numbers, dates and missing values are returned as they are). Text
    starting with any of :data:`FORMULA_TRIGGERS` (``=``, ``+``, ``-``, ``@``, tab, CR, ...)
    is prefixed, including ``-1+2`` and ``+44...``; a plain number written as text
    (``-13.12``) is left alone, since a spreadsheet reads it as that number.
    """
    if isinstance(value, str) and value.startswith(FORMULA_TRIGGERS) and not _PLAIN_NUMBER.fullmatch(value):
        return "'" + value
    return value


def csv_safe(df: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``df`` with every text cell passed through :func:`csv_cell` (numeric columns untouched).

    Every CSV payops writes (exports, the reports' CSVs, ``payops query --format csv``) goes
    through here, by :func:`write_csv`.
    """
    out = df.copy()
    for col in out.columns:
        s = out[col]
        if s.dtype == object or pd.api.types.is_string_dtype(s):
            out[col] = s.map(csv_cell, na_action="ignore")
    # a header is a cell too (a query can name a column "=cmd()")
    out.columns = [csv_cell(c) if isinstance(c, str) else c for c in out.columns]
    return out


def write_csv(df: pd.DataFrame, out: Any, *, bom: bool = False) -> None:
    """Write ``df`` as CSV (RFC 4180) to ``out`` (a path or a text stream), neutralised by :func:`csv_safe`.

    Rows end with CRLF, so a field holding a lone CR or LF is quoted (a spreadsheet never
    splits it into two rows).

    Args:
        df: the rows (no index written).
        out: a file path, or an open text stream such as ``sys.stdout``.
        bom: start a file with a UTF-8 byte-order mark (spreadsheets then detect the encoding).
    """
    safe = csv_safe(df)
    if hasattr(out, "write"):
        safe.to_csv(out, index=False, lineterminator="\r\n")
    else:
        safe.to_csv(out, index=False, lineterminator="\r\n", encoding="utf-8-sig" if bom else "utf-8")

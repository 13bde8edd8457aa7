"""payops: payments operations for a Stripe marketplace, in DuckDB and Jupyter.

The names below are the public API; everything else is reached through its module
(``payops.refunds``, ``payops.metrics``, ``payops.sync`` ...).
"""

from payops.config import Settings, get_settings
from payops.db import connect, query
from payops.errors import PayopsError
from payops.money import format_amount, from_decimal, to_decimal

__version__ = "0.1.0"

__all__ = [
    "Settings",
    "get_settings",
    "connect",
    "query",
    "PayopsError",
    "format_amount",
    "from_decimal",
    "to_decimal",
    "__version__",
]

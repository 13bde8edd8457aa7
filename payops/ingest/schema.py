"""What payops stores of each Stripe object: the columns of every stream's table.

``OBJECT_TABLES`` maps an object type to its table (a stream of :mod:`payops.streams`), its
columns in table order (each with the extractor that reads it from the object, for the
Python path, and the ``kind`` the SQL path reads: see :mod:`payops.ingest.stage`), and the
expandable fields that may hold objects of their own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import orjson
import pyarrow as pa

from payops.streams import STREAM_OBJECTS

__all__ = ["Column", "OBJECT_TABLES", "EVENT_COLUMNS", "TYPE_WORDS", "I64", "STR", "BOOL", "F64", "TS"]

I64, STR, BOOL, F64 = pa.int64(), pa.string(), pa.bool_(), pa.float64()
TS = pa.timestamp("s", tz="UTC")

Extract = Callable[[list[dict]], list]


def _kind(f: Extract, *kind: str) -> Extract:
    f.kind = kind  # type: ignore[attr-defined]  # what the SQL path extracts (see _plan)
    return f


def _get(key: str) -> Extract:
    return _kind(lambda objs: [o.get(key) for o in objs], "get", key)


def _ref(key: str) -> Extract:
    """An expandable field: the id whether Stripe sent an id string or an expanded object."""

    def f(objs: list[dict]) -> list:
        out = []
        for o in objs:
            v = o.get(key)
            out.append(v.get("id") if type(v) is dict else v)
        return out

    return _kind(f, "ref", key)


def _json(key: str) -> Extract:
    def f(objs: list[dict]) -> list:
        out = []
        for o in objs:
            v = o.get(key)
            out.append(None if v is None else orjson.dumps(v).decode())
        return out

    return _kind(f, "json", key)


def _meta(key: str) -> Extract:
    def f(objs: list[dict]) -> list:
        out = []
        for o in objs:
            m = o.get("metadata")
            v = m.get(key) if type(m) is dict else None
            out.append(None if v is None else str(v))
        return out

    return _kind(f, "meta", key)


def _request_id(objs: list[dict]) -> list:
    out = []
    for o in objs:
        m = o.get("metadata")
        v = m.get("payops_request_id") if type(m) is dict else None
        out.append(int(v) if isinstance(v, str) and v.isdigit() else (v if type(v) is int else None))
    return out


def _pm_type(objs: list[dict]) -> list:
    out = []
    for o in objs:
        d = o.get("payment_method_details")
        out.append(d.get("type") if type(d) is dict else None)
    return out


def _card_brand(objs: list[dict]) -> list:
    out = []
    for o in objs:
        d = o.get("payment_method_details")
        c = d.get("card") if type(d) is dict else None
        out.append(c.get("brand") if type(c) is dict else None)
    return out


def _deleted(objs: list[dict]) -> list:
    return [bool(o.get("deleted")) for o in objs]


_kind(_request_id, "request_id", "payops_request_id")
_kind(_pm_type, "pm_type")
_kind(_card_brand, "card_brand")
_kind(_deleted, "deleted", "deleted")


@dataclass(frozen=True)
class Column:
    name: str
    type: pa.DataType
    extract: Extract
    field: str  # the Stripe field it comes from, for error messages


def _cols(*specs: tuple) -> list[Column]:
    out = []
    for spec in specs:
        name, typ = spec[0], spec[1]
        how = spec[2] if len(spec) > 2 else _get(name)
        src = spec[3] if len(spec) > 3 else name
        out.append(Column(name, typ, how, src))
    return out


# Stripe object type -> (columns in table order, expandable fields holding objects)
_SCHEMAS: dict[str, tuple[list[Column], tuple[str, ...]]] = {
    "customer": (
        _cols(
            ("id", STR), ("email", STR), ("name", STR), ("phone", STR), ("created", TS),
            ("deleted", BOOL, _deleted), ("livemode", BOOL), ("metadata", STR, _json("metadata")),
        ),
        (),
    ),
    "payment_intent": (
        _cols(
            ("id", STR), ("customer", STR, _ref("customer")), ("amount", I64),
            ("amount_received", I64), ("currency", STR), ("status", STR), ("created", TS),
            ("latest_charge", STR, _ref("latest_charge")), ("application_fee_amount", I64),
            ("booking_id", STR, _meta("booking_id"), "metadata.booking_id"),
            ("tutor_id", STR, _meta("tutor_id"), "metadata.tutor_id"),
            ("livemode", BOOL), ("metadata", STR, _json("metadata")),
        ),
        ("customer", "latest_charge"),
    ),
    "charge": (
        _cols(
            ("id", STR), ("payment_intent", STR, _ref("payment_intent")),
            ("customer", STR, _ref("customer")), ("amount", I64), ("amount_captured", I64),
            ("amount_refunded", I64), ("currency", STR), ("status", STR), ("paid", BOOL),
            ("refunded", BOOL), ("disputed", BOOL), ("captured", BOOL), ("failure_code", STR),
            ("failure_message", STR), ("balance_transaction", STR, _ref("balance_transaction")),
            ("payment_method_type", STR, _pm_type, "payment_method_details.type"),
            ("card_brand", STR, _card_brand, "payment_method_details.card.brand"),
            ("application_fee_amount", I64), ("livemode", BOOL),
            ("metadata", STR, _json("metadata")), ("created", TS),
        ),
        ("customer", "payment_intent", "balance_transaction"),
    ),
    "refund": (
        _cols(
            ("id", STR), ("charge", STR, _ref("charge")), ("payment_intent", STR, _ref("payment_intent")),
            ("amount", I64), ("currency", STR), ("status", STR), ("reason", STR),
            ("failure_reason", STR), ("balance_transaction", STR, _ref("balance_transaction")),
            ("payops_request_id", I64, _request_id, "metadata.payops_request_id"),
            ("created", TS), ("metadata", STR, _json("metadata")),
        ),
        ("charge", "payment_intent", "balance_transaction"),
    ),
    "balance_transaction": (
        _cols(
            ("id", STR), ("source", STR, _ref("source")), ("type", STR), ("reporting_category", STR),
            ("amount", I64), ("fee", I64), ("net", I64), ("currency", STR), ("status", STR),
            ("created", TS), ("available_on", TS), ("exchange_rate", F64),
            ("fee_details", STR, _json("fee_details")),
        ),
        ("source",),
    ),
    "dispute": (
        _cols(
            ("id", STR), ("charge", STR, _ref("charge")), ("payment_intent", STR, _ref("payment_intent")),
            ("amount", I64), ("currency", STR), ("status", STR), ("reason", STR), ("created", TS),
        ),
        ("charge", "payment_intent"),
    ),
    "payout": (
        _cols(
            ("id", STR), ("amount", I64), ("currency", STR), ("status", STR),
            ("arrival_date", TS), ("created", TS),
        ),
        (),
    ),
    "transfer": (
        _cols(
            ("id", STR), ("amount", I64), ("amount_reversed", I64), ("currency", STR),
            ("destination", STR, _ref("destination")), ("source_transaction", STR, _ref("source_transaction")),
            ("balance_transaction", STR, _ref("balance_transaction")), ("reversed", BOOL),
            ("transfer_group", STR), ("created", TS), ("livemode", BOOL), ("metadata", STR, _json("metadata")),
        ),
        ("balance_transaction",),
    ),
    "application_fee": (
        _cols(
            ("id", STR), ("account", STR, _ref("account")), ("charge", STR, _ref("charge")), ("amount", I64),
            ("amount_refunded", I64), ("currency", STR), ("refunded", BOOL),
            ("balance_transaction", STR, _ref("balance_transaction")), ("created", TS), ("livemode", BOOL),
        ),
        ("charge", "balance_transaction"),
    ),
}

# Stripe object type -> (table, columns, expandable fields), for every stream of payops.streams
OBJECT_TABLES: dict[str, tuple[str, list[Column], tuple[str, ...]]] = {
    otype: (stream, *_SCHEMAS[otype]) for stream, otype in STREAM_OBJECTS.items()
}

EVENT_COLUMNS = ("id", "type", "created", "api_version", "object_id", "object_type", "applied_at", "raw")

TYPE_WORDS = {I64: "an integer", STR: "a string", BOOL: "true or false", F64: "a number", TS: "a Unix timestamp"}

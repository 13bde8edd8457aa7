"""payops' own fake Stripe HTTP server, for what localstripe lacks.

A real HTTP server (stdlib ``ThreadingHTTPServer``, daemon threads) on 127.0.0.1 and a
free port, speaking enough of Stripe's v1 wire format for stripe-python 16's
``StripeClient(api_key, base_addresses={"api": fake.url}, max_network_retries=N)``:

* form-encoded bodies / query strings with nested keys (``metadata[k]=v``,
  ``created[gte]=1``, ``types[]=a``, ``types[0]=a``), JSON responses, Stripe-shaped errors
  (``{"error": {"type", "code", "message", "param"}}``) with the right HTTP status;
* ``Authorization: Bearer sk_test_...`` or ``sk_live_...`` required (any such key is
  accepted; ``fake.api_key`` is just a convenient default), else 401 ``authentication_error``;
* list endpoints with Stripe semantics (newest first: ``created`` desc, ties by ``id`` desc;
  ``limit``, ``starting_after``, ``ending_before``, ``created[gt|gte|lt|lte]`` / ``created=N``,
  unknown list parameters are refused with 400 like Stripe does);
* ``GET /v1/events`` with ``type`` (trailing ``*`` wildcard) / ``types[]`` and 30-day retention
  relative to the server clock (``set_now``);
* ``POST /v1/refunds`` with Stripe's idempotency semantics and refusals;
* fault injection: ``latency``, ``rate_limit_rps`` (token bucket), ``fail_429_ratio``,
  ``refund_response_delay``, ``next_refund_errors``.

Everything is configured in-process through the Python API; there are no control endpoints.

Idempotency notes: a business result of ``POST /v1/refunds`` (success *or* a 400 such as
``amount_too_large``) is stored under its ``Idempotency-Key`` and replayed for the same key
and parameters (with header ``Idempotent-Replayed: true``), as Stripe does. 429s, 401s and
errors injected through ``next_refund_errors`` are *not* stored (they model failures before
Stripe executed anything), so a retry with the same key can succeed afterwards.

Objects passed to ``add`` are stored as given (not copied) and ``objects()`` returns the
stored dicts themselves; event payloads are snapshot copies.
"""

from __future__ import annotations

import bisect
import contextlib
import json
import random
import re
import string
import threading
import time
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from fake_connect import ConnectMixin
from fake_lifecycle import DAY, DISPUTE_STATUSES, LifecycleMixin

try:  # orjson is a payops dependency; fall back to json when absent
    import orjson

    def _dumps(obj: Any) -> bytes:
        return orjson.dumps(obj)

    def _deepcopy(obj: Any) -> Any:
        return orjson.loads(orjson.dumps(obj))
except ImportError:  # pragma: no cover
    def _dumps(obj: Any) -> bytes:
        return json.dumps(obj).encode()

    def _deepcopy(obj: Any) -> Any:
        return json.loads(json.dumps(obj))


API_VERSION = "2026-10-28.endive"
EVENT_RETENTION_SECONDS = 30 * 86400

# URL segment -> object type
RESOURCES = {
    "customers": "customer",
    "payment_intents": "payment_intent",
    "charges": "charge",
    "refunds": "refund",
    "balance_transactions": "balance_transaction",
    "disputes": "dispute",
    "payouts": "payout",
    "transfers": "transfer",
    "application_fees": "application_fee",
    "events": "event",
}
PLURAL = {v: k for k, v in RESOURCES.items()}
ID_PREFIX = {
    "customer": "cus",
    "payment_intent": "pi",
    "charge": "ch",
    "refund": "re",
    "balance_transaction": "txn",
    "dispute": "dp",
    "payout": "po",
    "transfer": "tr",
    "application_fee": "fee",
    "event": "evt",
}
PREFIX_TYPE = {v: k for k, v in ID_PREFIX.items()}
# Stripe's refunds and balance transactions have no `livemode` field (tests/openapi/stripe_components.json)
LIVEMODE_TYPES = {"customer", "payment_intent", "charge", "dispute", "payout", "event", "transfer", "application_fee"}

COMMON_LIST_PARAMS = {"limit", "starting_after", "ending_before", "created", "expand"}
# extra list filters: param -> field of the object
LIST_FILTERS: dict[str, dict[str, str]] = {
    "customer": {"email": "email"},
    "payment_intent": {"customer": "customer"},
    "charge": {"customer": "customer", "payment_intent": "payment_intent"},
    "refund": {"charge": "charge", "payment_intent": "payment_intent"},
    "balance_transaction": {"source": "source", "type": "type", "currency": "currency"},  # and payout: see _list
    "dispute": {"charge": "charge", "payment_intent": "payment_intent"},
    "payout": {"status": "status"},
    "transfer": {"destination": "destination", "transfer_group": "transfer_group"},
    "application_fee": {"charge": "charge"},
    "event": {},  # type / types handled specially
}

ZERO_DECIMAL = {"bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf",
                "ugx", "vnd", "vuv", "xaf", "xof", "xpf"}
THREE_DECIMAL = {"bhd", "jod", "kwd", "omr", "tnd"}
SYMBOLS = {"usd": "$", "eur": "€", "gbp": "£", "jpy": "¥", "cad": "CA$", "aud": "A$"}

_ALNUM = string.ascii_letters + string.digits
_B62 = string.digits + string.ascii_uppercase + string.ascii_lowercase  # sorts like ASCII


def format_amount(amount: int, currency: str) -> str:
    """Format like Stripe's error messages: ``$12.50``, ``¥1200``, ``BHD 1.500``."""
    cur = currency.lower()
    exp = 0 if cur in ZERO_DECIMAL else 3 if cur in THREE_DECIMAL else 2
    sign = "-" if amount < 0 else ""
    amount = abs(amount)
    if exp:
        major, minor = divmod(amount, 10 ** exp)
        num = f"{major:,}.{minor:0{exp}d}"
    else:
        num = f"{amount:,}"
    sym = SYMBOLS.get(cur)
    return f"{sign}{sym}{num}" if sym else f"{sign}{cur.upper()} {num}"


def stripe_fee(amount: int) -> int:
    """2.9% + 30 minor units, rounded half-even to a whole minor unit (integers only)."""
    q, r = divmod(amount * 29 + 30000, 1000)
    if r * 2 > 1000 or (r * 2 == 1000 and q % 2 == 1):
        q += 1
    return q


# --------------------------------------------------------------------------- form parsing

_KEY_PART = re.compile(r"\[([^\[\]]*)\]")


def parse_form(pairs: list[tuple[str, str]]) -> dict:
    """Stripe-style nested form keys -> nested dicts/lists.

    ``a[b]=1`` -> {"a": {"b": "1"}}; ``t[]=x&t[]=y`` and ``t[0]=x&t[1]=y`` -> {"t": ["x","y"]}.
    """
    root: dict = {}
    for key, value in pairs:
        m = re.match(r"^([^\[\]]+)", key)
        if not m:
            continue
        parts = [m.group(1)] + _KEY_PART.findall(key[m.end():])
        node: Any = root
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            if isinstance(node, list):  # only reached through "[]"
                if last:
                    node.append(value)
                else:
                    node.append({})
                    node = node[-1]
                continue
            nxt = parts[i + 1] if not last else None
            if last:
                node[part] = value
            elif nxt == "":
                node = node.setdefault(part, [])
                if not isinstance(node, list):
                    break
            else:
                child = node.get(part)
                if not isinstance(child, dict):
                    child = node[part] = {}
                node = child
    return _listify(root)


def _listify(node: Any) -> Any:
    if isinstance(node, dict):
        node = {k: _listify(v) for k, v in node.items()}
        if node and all(k.isdigit() for k in node):
            return [node[k] for k in sorted(node, key=int)]
        return node
    if isinstance(node, list):
        return [_listify(v) for v in node]
    return node


class StripeError(Exception):
    def __init__(self, status: int, message: str, *, code: str | None = None,
                 param: str | None = None, type: str = "invalid_request_error", **extra):
        super().__init__(message)
        self.status = status
        self.body = {"error": {"type": type, "message": message}}
        if code is not None:
            self.body["error"]["code"] = code
        if param is not None:
            self.body["error"]["param"] = param
        self.body["error"].update(extra)


def _int_param(value: Any, param: str) -> int:
    try:
        if isinstance(value, bool):
            raise ValueError
        return int(value)
    except (TypeError, ValueError):
        raise StripeError(400, f"Invalid integer: {value}", code="parameter_invalid_integer",
                          param=param) from None


# --------------------------------------------------------------------------- the fake


class FakeStripe(LifecycleMixin, ConnectMixin):
    """In-process state + HTTP server. See the module docstring; lifecycles in fake_lifecycle.py."""

    def __init__(self, *, latency: float = 0.0, rate_limit_rps: float | None = None,
                 fail_429_ratio: float = 0.0, seed: int = 0, now: int | None = None,
                 api_key: str = "sk_test_fake"):
        self.api_key = api_key
        self.latency = latency
        self._rate_limit_rps = rate_limit_rps
        self.fail_429_ratio = fail_429_ratio
        self.refund_response_delay = 0.0
        self.next_refund_errors: list[tuple[int, str, str]] = []
        # statuses the next created refunds take (pending, requires_action, succeeded), popped in order
        self.refund_outcomes: list[str] = []
        self._event_floor: int | None = None
        self.requests: list[dict] = []
        self.url = ""
        self.lock = threading.RLock()
        self._now = now
        self._rng = random.Random(seed)          # ids
        self._fault_rng = random.Random(seed + 1)  # 429 injection
        self._counter = 0
        self._store: dict[str, dict[str, dict]] = {t: {} for t in ID_PREFIX}
        self._keys: dict[str, list[tuple[int, str]]] = {t: [] for t in ID_PREFIX}
        self._dirty: dict[str, bool] = {t: False for t in ID_PREFIX}
        self._refunds_by_charge: dict[str, list[str]] = {}
        self._idempotency: dict[str, tuple[Any, int, dict]] = {}  # key -> (params, status, body)
        self._tokens = float(rate_limit_rps or 0)
        self._tokens_at = time.monotonic()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self, port: int = 0) -> FakeStripe:
        """Serve on 127.0.0.1:``port`` (0: a free port) in a daemon thread."""
        fake = self

        class Handler(_Handler):
            pass

        Handler.fake = fake
        server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        server.daemon_threads = True
        self._server = server
        self.url = f"http://127.0.0.1:{server.server_address[1]}"
        self._thread = threading.Thread(target=server.serve_forever, name="fake-stripe",
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> FakeStripe:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ------------------------------------------------------------------ clock / ids
    def now(self) -> int:
        return int(self._now) if self._now is not None else int(time.time())

    def set_now(self, ts: int | None) -> None:
        """Fix the server clock (None: back to real time)."""
        with self.lock:
            self._now = None if ts is None else int(ts)

    def new_id(self, prefix: str) -> str:
        """Stripe-looking id; a counter prefix makes ids of one process sort by creation."""
        with self.lock:
            self._counter += 1
            n = self._counter
            rnd = "".join(self._rng.choices(_ALNUM, k=16))
        c = ""
        for _ in range(8):
            n, r = divmod(n, 62)
            c = _B62[r] + c
        return f"{prefix}_{c}{rnd}"

    # ------------------------------------------------------------------ faults
    @property
    def rate_limit_rps(self) -> float | None:
        return self._rate_limit_rps

    @rate_limit_rps.setter
    def rate_limit_rps(self, value: float | None) -> None:
        with self.lock:
            self._rate_limit_rps = value
            self._tokens = float(max(1.0, value)) if value else 0.0
            self._tokens_at = time.monotonic()

    def _should_429(self) -> bool:
        with self.lock:
            rps = self._rate_limit_rps
            if rps:
                cap = max(1.0, float(rps))
                t = time.monotonic()
                self._tokens = min(cap, self._tokens + (t - self._tokens_at) * rps)
                self._tokens_at = t
                if self._tokens < 1.0:
                    return True
                self._tokens -= 1.0
            if self.fail_429_ratio and self._fault_rng.random() < self.fail_429_ratio:
                return True
        return False

    # ------------------------------------------------------------------ state API
    def add(self, obj: dict, *, emit_event: str | None = None) -> dict:
        """Store a Stripe object (dict with "id", "object", "created"), as is (no copy)."""
        otype = obj["object"]
        if otype not in self._store:
            raise ValueError(f"unsupported object type {otype!r}")
        if otype in LIVEMODE_TYPES:
            obj.setdefault("livemode", False)
        with self.lock:
            self._put(obj)
            if emit_event:
                self.add_event(emit_event, obj)
        return obj

    def _put(self, obj: dict) -> None:
        otype, oid = obj["object"], obj["id"]
        store = self._store[otype]
        old = store.get(oid)
        if old is not None and old["created"] != obj["created"]:
            self._keys[otype].remove((old["created"], oid))
            old = None
        store[oid] = obj
        if old is None:
            self._keys[otype].append((int(obj["created"]), oid))
            self._dirty[otype] = True
        if otype == "refund" and obj.get("charge"):
            lst = self._refunds_by_charge.setdefault(obj["charge"], [])
            if oid not in lst:
                lst.append(oid)

    def add_event(self, type: str, obj: dict, *, created: int | None = None,
                  event_id: str | None = None, request: dict | None = None) -> dict:
        """Create an event of ``type`` carrying a snapshot copy of ``obj``."""
        with self.lock:
            evt = {
                "id": event_id or self.new_id("evt"),
                "object": "event",
                "api_version": API_VERSION,
                "created": self.now() if created is None else int(created),
                "data": {"object": _deepcopy(obj)},
                "livemode": bool(obj.get("livemode", False)),
                "pending_webhooks": 0,
                "request": request or {"id": None, "idempotency_key": None},
                "type": type,
            }
            self._put(evt)
        return evt

    def objects(self, object_type: str) -> list[dict]:
        with self.lock:
            return list(self._store[object_type].values())

    def get(self, object_id: str) -> dict | None:
        otype = PREFIX_TYPE.get(object_id.split("_", 1)[0])
        if otype is None:
            return None
        with self.lock:
            return self._store[otype].get(object_id)

    def must(self, object_id: str) -> dict:
        """The stored object, or KeyError."""
        obj = self.get(object_id)
        if obj is None:
            raise KeyError(object_id)
        return obj

    def events(self, type: str | None = None) -> list[dict]:
        """All stored events (including ones past retention), oldest first."""
        with self.lock:
            evs = [e for e in self._store["event"].values() if type is None or e["type"] == type]
        return sorted(evs, key=lambda e: (e["created"], e["id"]))

    # ------------------------------------------------------------------ object builders
    def _balance_txn(self, *, amount: int, currency: str, source: str, type: str,
                     reporting_category: str, fee: int = 0, fee_details=None,
                     created: int, description: str | None = None, hold: int = 0) -> dict:
        available_on = created + hold
        txn = {
            "id": self.new_id("txn"),
            "object": "balance_transaction",
            "amount": amount,
            "available_on": available_on,
            "balance_type": "payments",
            "created": created,
            "currency": currency,
            "description": description,
            "exchange_rate": None,
            "fee": fee,
            "fee_details": fee_details or [],
            "net": amount - fee,
            "reporting_category": reporting_category,
            "source": source,
            "status": "available" if available_on <= self.now() else "pending",
            "type": type,
        }
        self._put(txn)
        return txn

    def make_refund(self, charge: dict, amount: int, *, reason: str | None = None, status: str = "succeeded",
                    metadata: dict | None = None, at: int | None = None, request: dict | None = None) -> dict:
        """Create a refund of ``charge`` in ``status`` (succeeded, pending or requires_action).

        The charge's ``amount_refunded`` counts it at once, as Stripe does; a ``requires_action``
        refund (a payment method without native refunds) has no balance transaction until it
        succeeds. Emits refund.created, charge.refunded and charge.refund.updated.
        """
        if status not in ("succeeded", "pending", "requires_action"):
            raise ValueError(f"a refund is created succeeded, pending or requires_action, not {status}")
        now = self.now() if at is None else int(at)
        cur = charge["currency"]
        rid = self.new_id("re")
        txn_id = None
        if status != "requires_action":
            txn_id = self._balance_txn(amount=-amount, currency=cur, source=rid, type="refund",
                                       reporting_category="refund", created=now,
                                       description="REFUND FOR CHARGE")["id"]
        pmd = charge.get("payment_method_details") or {"type": "card"}
        if pmd.get("type") == "card":
            destination = {"type": "card", "card": {"reference_status": "pending" if status == "pending" else
                                                    "available", "type": "pending" if status == "pending"
                                                    else "refund"}}
        else:
            destination = {"type": "eu_bank_transfer",
                           "eu_bank_transfer": {"reference": None, "reference_status": "pending"}}
        refund: dict[str, Any] = {
            "id": rid, "object": "refund", "amount": amount, "balance_transaction": txn_id,
            "charge": charge["id"], "created": now, "currency": cur, "destination_details": destination,
            "metadata": dict(metadata or {}), "payment_intent": charge.get("payment_intent"), "reason": reason,
            "receipt_number": None, "source_transfer_reversal": None, "status": status,
            "transfer_reversal": None,
        }
        if status == "pending":
            refund["pending_reason"] = "processing"
        if status == "requires_action":
            refund["next_action"] = {"type": "display_details", "display_details": {
                "email_sent": {"email_sent_at": now, "email_sent_to": "student@example.com"},
                "expires_at": now + 45 * DAY}}
        with self.lock:
            self._put(refund)
            captured = charge.get("amount_captured", charge["amount"])
            charge["amount_refunded"] = charge.get("amount_refunded", 0) + amount
            charge["refunded"] = charge["amount_refunded"] >= captured
            floor = self._event_floor
            if floor is None or now >= floor:
                self.add_event("refund.created", refund, created=now, request=request)
                self.add_event("charge.refunded", charge, created=now, request=request)
                self.add_event("charge.refund.updated", refund, created=now, request=request)
        return refund

    # ------------------------------------------------------------------ HTTP operations
    def _list(self, otype: str, params: dict) -> dict:
        params = dict(params)
        allowed = COMMON_LIST_PARAMS | set(LIST_FILTERS[otype])
        if otype == "event":
            allowed |= {"type", "types", "delivery_success"}
        if otype == "balance_transaction":
            allowed |= {"payout"}
        for p in params:
            if p not in allowed:
                raise StripeError(400, f"Received unknown parameter: {p}",
                                  code="parameter_unknown", param=p)
        limit = _int_param(params.get("limit", 10), "limit")
        if not 1 <= limit <= 100:
            raise StripeError(400, "This value must be greater than or equal to 1 and less "
                              "than or equal to 100.", code="parameter_invalid_integer",
                              param="limit")
        with self.lock:
            keys = self._keys[otype]
            if self._dirty[otype]:
                keys.sort()
                self._dirty[otype] = False
            store = self._store[otype]
            lo, hi = _created_bounds(keys, params.get("created"))
            if otype == "event":
                cutoff = self.now() - EVENT_RETENTION_SECONDS
                lo = max(lo, bisect.bisect_left(keys, cutoff, key=_created))
            lo, hi = _cursor_bounds(keys, store, otype, params, lo, hi)
            preds = [(field, params[p]) for p, field in LIST_FILTERS[otype].items() if p in params]
            type_ok = _event_type_filter(params) if otype == "event" else None
            in_payout = self._payout_filter(params.get("payout")) if otype == "balance_transaction" else None

            def match(obj: dict) -> bool:
                if any(obj.get(field) != want for field, want in preds):
                    return False
                if in_payout is not None and obj["id"] not in in_payout:
                    return False
                return type_ok is None or type_ok(obj["type"])

            out, has_more = _page(store, keys, lo, hi, limit, match, newest_first=not params.get("ending_before"))
            expand = _expand_list(params.get("expand"), in_list=True)
            data = [self._export(o, expand) for o in out]
        return {"object": "list", "data": data, "has_more": has_more,
                "url": f"/v1/{PLURAL[otype]}"}

    def _payout_filter(self, payout_id: Any) -> set[str] | None:
        """The ids ``?payout=po_...`` lists; Stripe refuses the filter for a manual payout."""
        if payout_id is None:
            return None
        if payout_id not in self._store["payout"]:
            raise StripeError(404, f"No such payout: '{payout_id}'", code="resource_missing", param="payout")
        txns = self.payout_txns(payout_id)
        if txns is None:
            raise StripeError(400, "Balance transaction history can only be filtered on automatic transfers, "
                              "not manual.", param="payout")
        return set(txns)

    def _retrieve(self, otype: str, oid: str, params: dict) -> dict:
        with self.lock:
            obj = self._store[otype].get(oid)
            if obj is not None and otype == "event" and \
                    obj["created"] < self.now() - EVENT_RETENTION_SECONDS:
                obj = None
            if obj is None:
                raise StripeError(404, f"No such {otype}: '{oid}'", code="resource_missing",
                                  param="id")
            return self._export(obj, _expand_list(params.get("expand")))

    def _export(self, obj: dict, expand: list[str]) -> dict:
        out = _deepcopy(obj)
        for path in expand:
            field = path.split(".", 1)[0]
            if obj["object"] == "charge" and field == "refunds":
                ids = self._refunds_by_charge.get(obj["id"], [])
                refunds = sorted((self._store["refund"][r] for r in ids),
                                 key=lambda r: (r["created"], r["id"]), reverse=True)
                out["refunds"] = {"object": "list", "data": _deepcopy(refunds),
                                  "has_more": False,
                                  "url": f"/v1/charges/{obj['id']}/refunds"}
                continue
            val = out.get(field)
            if isinstance(val, str):
                target = self.get(val)
                if target is not None:
                    out[field] = _deepcopy(target)
        return out

    def _update(self, otype: str, oid: str, form: dict) -> dict:
        with self.lock:
            obj = self._store[otype].get(oid)
            if obj is None:
                raise StripeError(404, f"No such {otype}: '{oid}'", code="resource_missing",
                                  param="id")
            for k, v in form.items():
                if k == "metadata":
                    if v == "":
                        obj["metadata"] = {}
                    elif isinstance(v, dict):
                        md = obj.setdefault("metadata", {})
                        for mk, mv in v.items():
                            if mv == "":
                                md.pop(mk, None)
                            else:
                                md[mk] = mv
                elif k in ("description", "email", "name") and k in obj:
                    obj[k] = v or None
                elif k == "expand":
                    continue
                else:
                    raise StripeError(400, f"Received unknown parameter: {k}",
                                      code="parameter_unknown", param=k)
            self.add_event(f"{otype}.updated", obj)
            return self._export(obj, _expand_list(form.get("expand")))

    def _create_customer(self, form: dict) -> dict:
        with self.lock:
            cus = _customer(self, self.now(), form.get("email"), form.get("name"))
            if isinstance(form.get("metadata"), dict):
                cus["metadata"] = dict(form["metadata"])
            if form.get("description"):
                cus["description"] = form["description"]
            self._put(cus)
            self.add_event("customer.created", cus)
            return self._export(cus, [])

    def _create_refund(self, form: dict, idem_key: str | None,
                       request_id: str) -> tuple[int, dict, bool]:
        """-> (status, body, replayed)."""
        with self.lock:
            if idem_key is not None and idem_key in self._idempotency:
                params, status, body = self._idempotency[idem_key]
                if params != form:
                    raise StripeError(
                        400, "Keys for idempotent requests can only be used with the same "
                        "parameters they were first used with. Try using a key other than "
                        f"'{idem_key}' if you meant to execute a different request.",
                        type="idempotency_error")
                return status, body, True
            if self.next_refund_errors:
                status, code, message = self.next_refund_errors.pop(0)
                etype = "api_error" if status >= 500 else "invalid_request_error"
                return status, {"error": {"type": etype, "code": code, "message": message}}, False
            try:
                body = self._do_refund(form, idem_key, request_id)
                status = 200
            except StripeError as e:
                status, body = e.status, e.body
            if idem_key is not None:
                self._idempotency[idem_key] = (_deepcopy(form), status, body)
            return status, body, False

    def _do_refund(self, form: dict, idem_key: str | None, request_id: str) -> dict:
        allowed = {"charge", "payment_intent", "amount", "reason", "metadata", "expand",
                   "instructions_email", "refund_application_fee", "reverse_transfer"}
        for p in form:
            if p not in allowed:
                raise StripeError(400, f"Received unknown parameter: {p}",
                                  code="parameter_unknown", param=p)
        charge = self._refund_target(form)
        reason = form.get("reason")
        if reason is not None and reason not in ("duplicate", "fraudulent",
                                                 "requested_by_customer"):
            raise StripeError(400, "Invalid reason: must be one of duplicate, fraudulent, or "
                              "requested_by_customer", code="parameter_invalid_string",
                              param="reason")
        amount = self._refund_amount(charge, form)
        md = form.get("metadata")
        status = self.refund_outcomes.pop(0) if self.refund_outcomes else "succeeded"
        refund = self.make_refund(charge, amount, reason=reason, status=status,
                                  metadata=dict(md) if isinstance(md, dict) else {},
                                  request={"id": request_id, "idempotency_key": idem_key})
        if form.get("reverse_transfer") == "true" and status != "requires_action":
            self.connect_refund(charge, refund, at=refund["created"])
        return self._export(refund, _expand_list(form.get("expand")))

    def _refund_target(self, form: dict) -> dict:
        """The charge a refund request names (directly or through its payment intent)."""
        charge_id, pi_id = form.get("charge"), form.get("payment_intent")
        if charge_id and pi_id:
            raise StripeError(400, "You cannot specify both `charge` and `payment_intent`.",
                              param="payment_intent")
        if pi_id:
            pi = self._store["payment_intent"].get(pi_id)
            if pi is None:
                raise StripeError(400, f"No such payment_intent: '{pi_id}'",
                                  code="resource_missing", param="payment_intent")
            charge_id = pi.get("latest_charge")
            if isinstance(charge_id, dict):
                charge_id = charge_id.get("id")
            if not charge_id:
                raise StripeError(400, f"PaymentIntent {pi_id} does not have a successful "
                                  "charge to refund.", code="charge_not_refundable",
                                  param="payment_intent")
        if not charge_id:
            raise StripeError(400, "One of the following params should be provided for this "
                              "request: payment_intent or charge.", code="parameter_missing",
                              param="charge")
        charge = self._store["charge"].get(charge_id)
        if charge is None:
            raise StripeError(400, f"No such charge: '{charge_id}'", code="resource_missing",
                              param="charge")
        return charge

    def _refund_amount(self, charge: dict, form: dict) -> int:
        """The amount to refund, after Stripe's refusals (uncaptured, disputed, already refunded, too large)."""
        charge_id = charge["id"]
        if charge["status"] != "succeeded" or not charge.get("captured", True):
            raise StripeError(400, f"Charge {charge_id} has not been captured or has failed "
                              "and cannot be refunded.", code="charge_not_refundable",
                              param="charge")
        if charge.get("disputed") and not all(
                d["is_charge_refundable"] for d in self._store["dispute"].values() if d["charge"] == charge_id):
            raise StripeError(400, f"Charge {charge_id} has been charged back; cannot issue "
                              "a refund.", code="charge_disputed", param="charge")
        captured = charge.get("amount_captured", charge["amount"])
        remaining = captured - charge.get("amount_refunded", 0)
        if remaining <= 0:
            raise StripeError(400, f"Charge {charge_id} has already been refunded.",
                              code="charge_already_refunded", param="charge")
        amount = remaining
        if "amount" in form:
            amount = _int_param(form["amount"], "amount")
            if amount <= 0:
                raise StripeError(400, "Invalid positive integer", code="parameter_invalid_integer",
                                  param="amount")
        cur = charge["currency"]
        if amount > remaining:
            raise StripeError(
                400, f"Refund amount ({format_amount(amount, cur)}) is greater than unrefunded "
                f"amount on charge ({format_amount(remaining, cur)})",
                code="amount_too_large", param="amount")
        return amount

def _created_bounds(keys: list[tuple[int, str]], created: Any) -> tuple[int, int]:
    """Index range of ``keys`` (sorted by created) inside a ``created`` filter."""
    lo, hi = 0, len(keys)
    if created is None:
        return lo, hi
    if not isinstance(created, dict):
        v = _int_param(created, "created")
        return bisect.bisect_left(keys, v, key=_created), bisect.bisect_right(keys, v, key=_created)
    for op, raw in created.items():
        if op not in ("gt", "gte", "lt", "lte"):
            raise StripeError(400, f"Received unknown parameter: created[{op}]",
                              code="parameter_unknown", param=f"created[{op}]")
        v = _int_param(raw, f"created[{op}]")
        if op == "gt":
            lo = max(lo, bisect.bisect_right(keys, v, key=_created))
        elif op == "gte":
            lo = max(lo, bisect.bisect_left(keys, v, key=_created))
        elif op == "lt":
            hi = min(hi, bisect.bisect_left(keys, v, key=_created))
        else:
            hi = min(hi, bisect.bisect_right(keys, v, key=_created))
    return lo, hi


def _cursor_bounds(keys: list[tuple[int, str]], store: dict, otype: str, params: dict, lo: int,
                   hi: int) -> tuple[int, int]:
    """Narrow the range by ``starting_after`` / ``ending_before`` (only one of them)."""
    sa, eb = params.get("starting_after"), params.get("ending_before")
    if sa and eb:
        raise StripeError(400, "You may only specify one of these parameters: "
                          "ending_before, starting_after.", param="starting_after")
    for pname, cursor in (("starting_after", sa), ("ending_before", eb)):
        if not cursor:
            continue
        cobj = store.get(cursor)
        if cobj is None:
            raise StripeError(400, f"No such {otype}: '{cursor}'", code="resource_missing", param=pname)
        ck = (int(cobj["created"]), cursor)
        if pname == "starting_after":
            hi = min(hi, bisect.bisect_left(keys, ck))
        else:
            lo = max(lo, bisect.bisect_right(keys, ck))
    return lo, hi


def _event_type_filter(params: dict) -> Any:
    """A predicate on event types from ``type`` / ``types[]`` (a trailing ``*`` is a prefix), or None."""
    types = params.get("types")
    if isinstance(types, str):
        types = [types]
    if isinstance(types, dict):
        types = list(types.values())
    t1 = params.get("type")
    if t1 is not None and types:
        raise StripeError(400, "You may only specify one of these parameters: type, types.", param="types")
    if t1 is not None:
        types = [t1]
    if not types:
        return None
    exact = {t for t in types if not t.endswith("*")}
    prefixes = tuple(t[:-1] for t in types if t.endswith("*"))
    return lambda t: t in exact or (bool(prefixes) and t.startswith(prefixes))


def _page(store: dict, keys: list[tuple[int, str]], lo: int, hi: int, limit: int, match: Any, *,
          newest_first: bool) -> tuple[list[dict], bool]:
    """Up to ``limit`` matching objects, newest first; ``newest_first=False`` (ending_before) takes
    the ``limit`` just newer than the cursor and returns them newest first too."""
    out: list[dict] = []
    step = -1 if newest_first else 1
    i = hi - 1 if newest_first else lo
    while lo <= i < hi and len(out) <= limit:
        obj = store[keys[i][1]]
        if match(obj):
            out.append(obj)
        i += step
    has_more = len(out) > limit
    out = out[:limit]
    return (out if newest_first else out[::-1]), has_more

def _created(k: tuple[int, str]) -> int:
    return k[0]


def _expand_list(expand: Any, in_list: bool = False) -> list[str]:
    if not expand:
        return []
    if isinstance(expand, str):
        expand = [expand]
    if isinstance(expand, dict):
        expand = list(expand.values())
    out = []
    for e in expand:
        if in_list:
            if not e.startswith("data."):
                continue
            e = e[5:]
        out.append(e)
    return out


# --------------------------------------------------------------------------- HTTP handler


class _Handler(BaseHTTPRequestHandler):
    fake: FakeStripe
    protocol_version = "HTTP/1.1"
    server_version = "fake-stripe/1.0"

    def log_message(self, format, *args):  # silence the access log
        pass

    def do_GET(self):
        self._handle("GET")

    def do_POST(self):
        self._handle("POST")

    def do_DELETE(self):
        self._handle("DELETE")

    def _handle(self, method: str) -> None:
        fake = self.fake
        t = time.time()
        parsed = urllib.parse.urlsplit(self.path)
        path = parsed.path
        query = parse_form(urllib.parse.parse_qsl(parsed.query, keep_blank_values=True))
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        form: dict = {}
        if raw:
            form = parse_form(urllib.parse.parse_qsl(raw.decode("utf-8"), keep_blank_values=True))
        idem_key = self.headers.get("Idempotency-Key")
        request_id = "req_" + "".join(random.choices(_ALNUM, k=14))
        headers = {"Request-Id": request_id}
        status, body = 500, {}
        delay = 0.0
        try:
            self._admit(method, path)
            status, body, delay, replayed = self._route(method, path, query, form, idem_key,
                                                        request_id)
            if replayed:
                headers["Idempotent-Replayed"] = "true"
        except StripeError as e:
            status, body = e.status, e.body
        except Exception as e:  # pragma: no cover - a bug in the fake
            status, body = 500, {"error": {"type": "api_error", "message": repr(e)}}
        if idem_key:
            headers["Idempotency-Key"] = idem_key
        with fake.lock:
            fake.requests.append({"method": method, "path": path, "query": query, "form": form,
                                  "idempotency_key": idem_key, "status": status, "t": t})
        if delay:
            time.sleep(delay)
        payload = _dumps(body)
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.send_header("Stripe-Version", API_VERSION)
            for k, v in headers.items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):  # client gave up (timeout test)
            self.close_connection = True

    def _admit(self, method: str, path: str) -> None:
        """Stripe's checks before any work: a /v1/ path, a secret key, then latency and 429s."""
        fake = self.fake
        if not path.startswith("/v1/"):
            raise StripeError(404, f"Unrecognized request URL ({method}: {path}).")
        auth = self.headers.get("Authorization", "")
        key = auth[7:] if auth.startswith("Bearer ") else ""
        if not (key.startswith("sk_test_") or key.startswith("sk_live_")) or len(key) < 9:
            raise StripeError(401, "Invalid API Key provided: " + (key[:12] or "(none)"),
                              type="authentication_error")
        if fake.latency:
            time.sleep(fake.latency)
        if fake._should_429():
            raise StripeError(429, "Too many requests hit the API too quickly. We "
                              "recommend an exponential backoff of your requests.",
                              code="rate_limit")

    def _route(self, method, path, query, form, idem_key, request_id):
        fake = self.fake
        parts = path.strip("/").split("/")[1:]
        if not parts or parts[0] not in RESOURCES:
            raise StripeError(404, f"Unrecognized request URL ({method}: {path}).")
        otype = RESOURCES[parts[0]]
        if len(parts) == 1:
            if method == "GET":
                return 200, fake._list(otype, query), 0.0, False
            if method == "POST" and otype == "refund":
                status, body, replayed = fake._create_refund(form, idem_key, request_id)
                delay = fake.refund_response_delay if status == 200 and not replayed else 0.0
                return status, body, delay, replayed
            if method == "POST" and otype == "customer":
                return 200, fake._create_customer(form), 0.0, False
        elif len(parts) == 2:
            if method == "GET":
                return 200, fake._retrieve(otype, parts[1], query), 0.0, False
            if method == "POST" and otype != "event":
                return 200, fake._update(otype, parts[1], form), 0.0, False
        raise StripeError(404, f"Unrecognized request URL ({method}: {path}).")


# --------------------------------------------------------------------------- synthetic account


def _customer(fake: FakeStripe, created: int, email: str | None, name: str | None) -> dict:
    cid = fake.new_id("cus")
    return {
        "id": cid, "object": "customer", "address": None, "balance": 0, "created": created,
        "currency": None, "default_source": None, "delinquent": False, "description": None,
        "email": email, "invoice_prefix": cid[4:12].upper(),
        "invoice_settings": {"custom_fields": None, "default_payment_method": None,
                             "footer": None, "rendering_options": None},
        "livemode": False, "metadata": {}, "name": name, "phone": None,
        "preferred_locales": [], "shipping": None, "tax_exempt": "none",
        "test_clock": None,
    }


FIRST = ["Ana", "Ben", "Chloé", "Dmitri", "Emma", "Farah", "Goro", "Hana", "Ivan", "Jules",
         "Kofi", "Lena", "Mateo", "Nora", "Omar", "Priya", "Quinn", "Rosa", "Sven", "Yuki"]
LAST = ["Smith", "García", "Müller", "Okafor", "Tanaka", "Rossi", "Dubois", "Nowak", "Kim",
        "Silva", "Haddad", "Novak", "O'Brien", "Larsen", "Patel"]
FAILURES = [("card_declined", "Your card was declined."),
            ("insufficient_funds", "Your card has insufficient funds."),
            ("expired_card", "Your card has expired."),
            ("incorrect_cvc", "Your card's security code is incorrect."),
            ("processing_error", "An error occurred while processing your card.")]
BRANDS = ["visa", "visa", "visa", "mastercard", "mastercard", "amex"]


def build_account(fake: FakeStripe, n_customers: int, n_payments: int, start: int, end: int,
                  seed: int = 0, *, emit_events: bool = False, lifecycles: bool = False) -> None:
    """Fill ``fake`` with a consistent synthetic marketplace account.

    Customers; one payment_intent + one charge per payment (~92% succeeded, the rest failed
    with a failure_code); a "charge" balance transaction for each succeeded charge
    (fee = 2.9% + 30, half-even); ~4% refunded (some partially; ~5% of refunds failed)
    with "refund" balance transactions; ~0.6% disputed; a payout every 3 days per currency.
    Currencies: usd (~85%), eur (~10%, a third of them sepa_debit), jpy (~5%, zero-decimal).
    ``created`` spread over [start, end]; every child object is created after its parent.
    ``emit_events``: also emit the matching events for objects created in the last 30 days
    of the server clock (older ones could not be listed anyway).
    ``lifecycles``: on top of the ``n_payments``, objects in every other lifecycle status (intents
    requires_* / processing / canceled, pending and requires_action refunds, a refund failing days
    later, disputes in all seven statuses, pending / failed / canceled payouts; see
    ``_lifecycle_extras``), and 40% of the disputes are inquiries (``warning_*``).
    """
    start, end = int(start), int(end)
    cutoff = fake.now() - EVENT_RETENTION_SECONDS
    acct = _Account(fake, random.Random(seed), random.Random(seed + 101), start, end, emit_events, lifecycles)
    with fake.lock, _event_floor(fake, cutoff if emit_events else NO_EVENTS):
        customers = [acct.customer(i) for i in range(max(1, n_customers))]
        for i in range(n_payments):
            acct.payment(i, customers[acct.rng.randrange(len(customers))])
        acct.payouts()
        if lifecycles:
            _lifecycle_extras(fake, acct.lrng, customers, max(1, n_payments // 150), start, end)


class _Account:
    """The pieces of :func:`build_account`; ``rng`` draws in the same order as it always did, and
    ``lrng`` (lifecycle variety) is a separate stream, so adding statuses changes no other object."""

    def __init__(self, fake: FakeStripe, rng: random.Random, lrng: random.Random, start: int, end: int,
                 emit_events: bool, lifecycles: bool):
        self.fake, self.rng, self.lrng = fake, rng, lrng
        self.start, self.end, self.span = start, end, max(1, end - start)
        self.now = fake.now()
        self.cutoff = self.now - EVENT_RETENTION_SECONDS
        self.emit_events, self.lifecycles = emit_events, lifecycles
        self.volume: dict[str, int] = {}

    def ev(self, type_: str, obj: dict, created: int) -> None:
        if self.emit_events and created >= self.cutoff:
            self.fake.add_event(type_, obj, created=created)

    def customer(self, i: int) -> dict:
        fake, rng, ev, start, span = self.fake, self.rng, self.ev, self.start, self.span
        created = start + int(rng.random() * span * 0.5)
        fn, ln = rng.choice(FIRST), rng.choice(LAST)
        cus = _customer(fake, created, f"{fn.lower()}.{ln.lower().replace(chr(39), '')}"
                        f"{i}@example.com", f"{fn} {ln}")
        cus["metadata"] = {"student_id": f"stu_{i}"}
        fake._put(cus)
        ev("customer.created", cus, created)

        return cus

    def payment(self, i: int, cus: dict) -> None:
        fake, rng, ev, end, volume = self.fake, self.rng, self.ev, self.end, self.volume
        created = cus["created"] + int(rng.random() * (end - cus["created"]))
        r = rng.random()
        currency = "usd" if r < 0.85 else "eur" if r < 0.95 else "jpy"
        if currency == "jpy":
            amount = rng.randrange(20, 121) * 100
        else:
            amount = rng.randrange(4, 25) * 500
        app_fee = (amount * 15 + 50) // 100 if rng.random() < 0.8 else None
        succeeded = rng.random() < 0.92
        booking = f"bk_{i:07d}"
        md = {"booking_id": booking, "tutor_id": f"tut_{rng.randrange(1, 200):04d}"}
        pi_id, ch_id = fake.new_id("pi"), fake.new_id("ch")
        pmd: dict[str, Any]
        if currency == "eur" and rng.random() < 0.33:
            pmd = {"type": "sepa_debit", "sepa_debit": {
                "bank_code": "37040044", "country": "DE", "last4": f"{rng.randrange(10000):04d}",
                "fingerprint": "".join(rng.choices(_ALNUM, k=16))}}
        else:
            pmd = {"type": "card", "card": {
                "brand": rng.choice(BRANDS), "last4": f"{rng.randrange(10000):04d}",
                "exp_month": rng.randrange(1, 13), "exp_year": 2027 + rng.randrange(5),
                "country": "US", "funding": "credit", "network": None,
                "checks": {"cvc_check": "pass", "address_line1_check": None,
                           "address_postal_code_check": "pass"}}}
            pmd["card"]["network"] = pmd["card"]["brand"]
        failure = None if succeeded else rng.choice(FAILURES)
        fcode, fmsg = failure if failure else (None, None)
        txn_id = None
        if succeeded:
            fee = stripe_fee(amount)
            txn = fake._balance_txn(
                amount=amount, currency=currency, source=ch_id, type="charge",
                reporting_category="charge", fee=fee, created=created, hold=2 * 86400,
                fee_details=[{"amount": fee, "application": None, "currency": currency,
                              "description": "Stripe processing fees",
                              "type": "stripe_fee"}],
                description=f"Tutoring session {booking}")
            txn_id = txn["id"]
            volume[currency] = volume.get(currency, 0) + txn["net"]
        charge = {
            "id": ch_id, "object": "charge", "amount": amount,
            "amount_captured": amount if succeeded else 0, "amount_refunded": 0,
            "application": None, "application_fee": None,
            "application_fee_amount": app_fee, "balance_transaction": txn_id,
            "billing_details": {"address": None, "email": cus["email"], "name": cus["name"],
                                "phone": None},
            "calculated_statement_descriptor": "PAYOPS TUTORING", "captured": succeeded,
            "created": created, "currency": currency, "customer": cus["id"],
            "description": f"Tutoring session {booking}", "disputed": False,
            "failure_balance_transaction": None,
            "failure_code": fcode,
            "failure_message": fmsg,
            "fraud_details": {}, "livemode": False, "metadata": dict(md),
            "outcome": {"network_status": "approved_by_network" if succeeded else
                        "declined_by_network", "reason": fcode,
                        "risk_level": "normal", "risk_score": rng.randrange(0, 60),
                        "seller_message": "Payment complete." if succeeded else
                        "The bank did not return any further details with this decline.",
                        "type": "authorized" if succeeded else "issuer_declined"},
            "paid": succeeded, "payment_intent": pi_id,
            "payment_method": "pm_" + "".join(rng.choices(_ALNUM, k=24)),
            "payment_method_details": pmd, "receipt_email": None, "receipt_url": None,
            "refunded": False, "review": None, "shipping": None, "source_transfer": None,
            "statement_descriptor": None, "statement_descriptor_suffix": None,
            "status": "succeeded" if succeeded else "failed", "transfer_data": None,
            "transfer_group": None,
        }
        pi = {
            "id": pi_id, "object": "payment_intent", "amount": amount,
            "amount_capturable": 0, "amount_received": amount if succeeded else 0,
            "application": None, "application_fee_amount": app_fee,
            "automatic_payment_methods": None, "canceled_at": None,
            "cancellation_reason": None, "capture_method": "automatic",
            "client_secret": f"{pi_id}_secret_{''.join(rng.choices(_ALNUM, k=10))}",
            "confirmation_method": "automatic", "created": created, "currency": currency,
            "customer": cus["id"], "description": f"Tutoring session {booking}",
            "last_payment_error": None if succeeded else {
                "code": fcode, "message": fmsg, "type": "card_error",
                "charge": ch_id},
            "latest_charge": ch_id, "livemode": False, "metadata": dict(md),
            "payment_method": charge["payment_method"],
            "payment_method_types": [pmd["type"]], "receipt_email": None,
            "status": "succeeded" if succeeded else "requires_payment_method",
            "transfer_data": None, "transfer_group": None,
        }
        if succeeded and app_fee is not None:
            # a destination charge: the tutor's share goes to their connected account (fake_connect)
            fake.connect_charge(charge, f"acct_{md['tutor_id']}", app_fee, at=created)
        fake._put(pi)
        fake._put(charge)
        ev("payment_intent.created", pi, created)
        ev("charge.succeeded" if succeeded else "charge.failed", charge, created)
        ev("payment_intent.succeeded" if succeeded else "payment_intent.payment_failed",
           pi, created)
        if not succeeded:
            return
        r = rng.random()
        if r < 0.04:
            self.refund(charge, pi_id, created)
        elif r < 0.046:
            self.dispute(charge, created)

    def refund(self, charge: dict, pi_id: str, created: int) -> None:
        fake, rng, ev, end, volume = self.fake, self.rng, self.ev, self.end, self.volume
        amount, currency, ch_id = charge["amount"], charge["currency"], charge["id"]
        partial = rng.random() < 0.3
        ramount = amount // 2 if partial else amount
        rcreated = min(end, created + rng.randrange(3600, 10 * 86400))
        rid = fake.new_id("re")
        rtxn = fake._balance_txn(amount=-ramount, currency=currency, source=rid,
                                 type="refund", reporting_category="refund",
                                 created=rcreated, description="REFUND FOR CHARGE")
        failed = rng.random() < 0.05
        refund = {
            "id": rid, "object": "refund", "amount": ramount,
            "balance_transaction": rtxn["id"], "charge": ch_id, "created": rcreated,
            "currency": currency,
            "destination_details": {"type": "card", "card": {"type": "refund"}},
            "metadata": {}, "payment_intent": pi_id,
            "reason": rng.choice(["requested_by_customer", "requested_by_customer",
                                  "duplicate", "fraudulent"]),
            "receipt_number": None, "source_transfer_reversal": None,
            "status": "failed" if failed else "succeeded", "transfer_reversal": None,
        }
        if failed:
            refund["failure_reason"] = "expired_or_canceled_card"
            ftxn = fake._balance_txn(amount=ramount, currency=currency, source=rid,
                                     type="refund_failure",
                                     reporting_category="refund_failure",
                                     created=rcreated, description="REFUND FAILURE")
            refund["failure_balance_transaction"] = ftxn["id"]
        else:
            charge["amount_refunded"] = ramount
            charge["refunded"] = ramount >= amount
            volume[currency] -= ramount
        fake._put(refund)
        if not failed:
            fake.connect_refund(charge, refund, at=rcreated)
            ev("charge.refunded", charge, rcreated)
        ev("refund.created", refund, rcreated)

    def dispute(self, charge: dict, created: int) -> None:
        rng, lrng, end = self.rng, self.lrng, self.end
        amount, currency = charge["amount"], charge["currency"]
        dcreated = min(end, created + rng.randrange(86400, 20 * 86400))
        status = rng.choice(["needs_response", "under_review", "won", "lost"])
        reason = rng.choice(["fraudulent", "product_not_received", "duplicate", "general"])
        if self.lifecycles and lrng.random() < 0.4:  # an inquiry rather than a chargeback
            status = lrng.choice(["warning_needs_response", "warning_under_review", "warning_closed"])
        self.fake.dispute_to(charge["id"], status, amount, reason, at=dcreated, until=end)
        if not status.startswith("warning_"):
            self.volume[currency] -= amount


    def payouts(self) -> None:
        """Every 3 days per currency, an automatic payout of everything available (fake_connect's sweep),
        so each payout is the sum of the net of the balance transactions it settled."""
        fake, rng, start, end = self.fake, self.rng, self.start, self.end
        t = start + 3 * 86400
        currencies = sorted(self.volume)
        while t <= end:
            for currency in currencies:
                fake.sweep_payout(currency, at=t, destination="ba_" + "".join(rng.choices(_ALNUM, k=24)))
            t += 3 * 86400


NO_EVENTS = 1 << 62  # an event floor no event reaches


@contextlib.contextmanager
def _event_floor(fake: FakeStripe, floor: int) -> Iterator[None]:
    """Lifecycle methods emit no event older than ``floor`` while building a history."""
    saved = fake._event_floor
    fake._event_floor = floor
    try:
        yield
    finally:
        fake._event_floor = saved


def _lifecycle_extras(fake: FakeStripe, rng: random.Random, customers: list[dict], n: int,
                      start: int, end: int) -> None:
    """Payments, refunds, disputes and payouts in every lifecycle status, ``n`` of each kind.

    Intents still in flight (requires_*, processing) are recent, as they would be in a live account.
    """
    def recent() -> int:
        return end - rng.randrange(0, 2 * DAY)

    def intent(currency: str = "usd", capture: str = "automatic", at: int | None = None) -> dict:
        cus = customers[rng.randrange(len(customers))]
        pm_type = "sepa_debit" if currency == "eur" else "card"
        i = len(fake._store["payment_intent"])
        md = {"booking_id": f"bk_l{i:06d}", "tutor_id": f"tut_{rng.randrange(1, 200):04d}"}
        return fake.create_payment_intent(rng.randrange(4, 25) * 500, currency, customer=cus["id"],
                                          capture_method=capture, metadata=md, payment_method_type=pm_type,
                                          at=recent() if at is None else at)

    def older() -> int:
        return start + rng.randrange(0, max(1, end - start - 12 * DAY))

    for _ in range(n):
        intent()  # requires_payment_method: the customer never entered a card
        fake.attach_payment_method(intent()["id"])  # requires_confirmation
        fake.confirm_payment_intent(intent()["id"], "requires_action", at=end)
        fake.confirm_payment_intent(intent("eur")["id"], "processing", at=end)
        fake.confirm_payment_intent(intent(capture="manual")["id"], "succeeded", at=end)
        t = older()
        fake.cancel_payment_intent(intent(at=t)["id"], "abandoned", at=t + DAY)
        pi = intent(capture="manual", at=t)
        fake.confirm_payment_intent(pi["id"], "succeeded", at=t)
        fake.cancel_payment_intent(pi["id"], "requested_by_customer", at=t + DAY)
        pi = intent("eur", at=t)
        fake.confirm_payment_intent(pi["id"], "processing", at=t)
        fake.settle_processing(pi["id"], True, at=t + 3 * DAY)
        pi = intent("eur", at=t)
        fake.confirm_payment_intent(pi["id"], "processing", at=t)
        fake.settle_processing(pi["id"], False, at=t + 3 * DAY)
        pi = intent(at=t)
        fake.confirm_payment_intent(pi["id"], "requires_action", at=t)
        fake.complete_action(pi["id"], "failed", decline="insufficient_funds", at=t)
        fake.confirm_payment_intent(pi["id"], "succeeded", at=t + 600)

    def fresh_charge(at: int) -> dict:
        pi = intent(at=at)
        fake.confirm_payment_intent(pi["id"], "succeeded", at=at)
        return fake._store["charge"][pi["latest_charge"]]

    for _ in range(n):
        t = older()
        fake.make_refund(fresh_charge(t), 1000, reason="requested_by_customer", status="pending", at=end)
        fake.make_refund(fresh_charge(t), 1000, reason="requested_by_customer", status="requires_action",
                         at=end)
        r = fake.make_refund(fresh_charge(t), 1500, reason="duplicate", status="requires_action", at=t + DAY)
        fake.cancel_refund(r["id"], at=t + 3 * DAY)
        r = fake.make_refund(fresh_charge(t), 2000, reason="requested_by_customer", status="pending", at=t + DAY)
        fake.succeed_refund(r["id"], at=t + 2 * DAY)
        r = fake.make_refund(fresh_charge(t), 2000, reason="requested_by_customer", at=t + DAY)
        fake.fail_refund(r["id"], "expired_or_canceled_card", at=t + 6 * DAY)  # fails days later
        for status in DISPUTE_STATUSES:
            ch = fresh_charge(t)
            fake.dispute_to(ch["id"], status, ch["amount"], "product_not_received", at=t + 2 * DAY, until=end)
        for currency, status in (("usd", "pending"), ("usd", "failed"), ("usd", "canceled"), ("eur", "pending")):
            fake.make_payout(currency, rng.randrange(10, 60) * 1000, status=status,
                             at=end if status == "pending" else t)

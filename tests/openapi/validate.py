"""Check Stripe-shaped dicts against the vendored OpenAPI components (stripe_components.json).

Hand-written rather than ``jsonschema`` because the spec is OpenAPI 3.0, not JSON Schema:
``nullable: true`` has no JSON Schema meaning, and two rules here are ours, not the spec's:

* a field the component does not declare is an error (``unknown_field``): Stripe sends exactly the
  documented fields, so an extra one in the fake or the demo is invented (``livemode`` on a refund);
* a stub component (``x-trimmed``, referenced but not vendored) accepts any object.

Expandable fields are ``anyOf: [string, <object>]``, so an id and the expanded object both pass and
anything else fails with ``no_match``. Every error names the JSON path, a code and the expectation.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

COMPONENTS_FILE = Path(__file__).with_name("stripe_components.json")
REF = "#/components/schemas/"

# Objects payops keeps (and the Connect ones of issue 12): `object` value -> component name.
OBJECT_SCHEMAS = {
    "customer": "customer", "payment_intent": "payment_intent", "charge": "charge", "refund": "refund",
    "balance_transaction": "balance_transaction", "dispute": "dispute", "payout": "payout", "event": "event",
    "transfer": "transfer", "transfer_reversal": "transfer_reversal", "application_fee": "application_fee",
    "fee_refund": "fee_refund",
}


@dataclass(frozen=True)
class Violation:
    """One way an object differs from the spec."""

    path: str
    code: str  # missing_required, unknown_field, wrong_type, null_not_allowed, not_in_enum, no_match
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.code}: {self.message}"


class SchemaViolation(AssertionError):
    """An object does not conform to Stripe's OpenAPI spec."""

    def __init__(self, what: str, violations: list[Violation]):
        self.violations = violations
        lines = "\n  ".join(str(v) for v in violations[:20])
        more = f"\n  ... and {len(violations) - 20} more" if len(violations) > 20 else ""
        super().__init__(f"{what} does not conform to Stripe's spec:\n  {lines}{more}")


@cache
def components() -> dict[str, Any]:
    """The vendored document: ``x-source`` (commit, API version) and ``components.schemas``."""
    return json.loads(COMPONENTS_FILE.read_text(encoding="utf-8"))


def schemas() -> dict[str, Any]:
    return components()["components"]["schemas"]


def api_version() -> str:
    return components()["x-source"]["api_version"]


def _type_ok(value: Any, type_: str) -> bool:
    if type_ == "string":
        return isinstance(value, str)
    if type_ == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if type_ == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if type_ == "boolean":
        return isinstance(value, bool)
    if type_ == "object":
        return isinstance(value, dict)
    if type_ == "array":
        return isinstance(value, list)
    return True


def _describe(schema: dict) -> str:
    if "$ref" in schema:
        return schema["$ref"][len(REF):]
    return schema.get("type", "any")


def check(value: Any, schema: dict, path: str = "$") -> list[Violation]:
    """Every violation of ``value`` against one schema node (``$ref``s resolved)."""
    if value is None:
        if schema.get("nullable"):
            return []
        if "$ref" in schema or "anyOf" in schema or "type" in schema:
            return [Violation(path, "null_not_allowed", f"null where the spec wants {_expected(schema)}")]
        return []
    if "$ref" in schema:
        target = schemas().get(schema["$ref"][len(REF):])
        if target is None:
            return [Violation(path, "unknown_schema", f"{schema['$ref']} is not vendored")]
        return check(value, target, path)
    if "anyOf" in schema:
        return _check_any_of(value, schema, path)
    return _check_typed(value, schema, path)


def _expected(schema: dict) -> str:
    if "anyOf" in schema:
        return " or ".join(_describe(s) for s in schema["anyOf"])
    return _describe(schema)


def _check_any_of(value: Any, schema: dict, path: str) -> list[Violation]:
    best: list[Violation] | None = None
    for branch in schema["anyOf"]:
        errors = check(value, branch, path)
        if not errors:
            return []
        # report the branch of the value's own kind (an object that is nearly right, not "not a string")
        if best is None or (isinstance(value, dict) and "$ref" in branch):
            best = errors
    got = type(value).__name__
    head = Violation(path, "no_match", f"expected {_expected(schema)}, got {got}")
    if isinstance(value, dict) and best:
        return [head, *best]
    return [head]


def _check_typed(value: Any, schema: dict, path: str) -> list[Violation]:
    type_ = schema.get("type")
    if type_ and not _type_ok(value, type_):
        return [Violation(path, "wrong_type", f"expected {type_}, got {type(value).__name__} {value!r:.60}")]
    if "enum" in schema and value not in schema["enum"]:
        return [Violation(path, "not_in_enum", f"{value!r} is not one of {schema['enum']}")]
    if isinstance(value, list) and "items" in schema:
        out: list[Violation] = []
        for i, item in enumerate(value):
            out.extend(check(item, schema["items"], f"{path}[{i}]"))
        return out
    if isinstance(value, dict):
        return _check_object(value, schema, path)
    return []


def _check_object(value: dict, schema: dict, path: str) -> list[Violation]:
    if schema.get("x-trimmed"):
        return []
    out = [Violation(f"{path}.{name}", "missing_required", "required by the spec, absent")
           for name in schema.get("required", []) if name not in value]
    props = schema.get("properties")
    extra = schema.get("additionalProperties")
    for name, item in value.items():
        sub = f"{path}.{name}"
        if props is not None and name in props:
            out.extend(check(item, props[name], sub))
        elif isinstance(extra, dict):
            out.extend(check(item, extra, sub))
        elif extra is True or props is None:
            continue
        else:
            out.append(Violation(sub, "unknown_field", "not a field of this object in the spec"))
    return out


def violations(obj: dict, component: str | None = None, path: str = "$") -> list[Violation]:
    """Violations of one Stripe object, chosen by its ``object`` field unless ``component`` is given.

    A list (``object: list``) checks each item; an event also checks the object in ``data.object``.
    """
    if component is None and obj.get("object") == "list":
        out: list[Violation] = []
        for i, item in enumerate(obj.get("data") or []):
            out.extend(violations(item, path=f"{path}.data[{i}]"))
        return out
    name = component or OBJECT_SCHEMAS.get(str(obj.get("object")))
    if name is None:
        return [Violation(path, "unknown_object", f"no vendored schema for object {obj.get('object')!r}")]
    out = check(obj, {"$ref": REF + name}, path)
    if name == "event" and isinstance(obj.get("data"), dict) and isinstance(obj["data"].get("object"), dict):
        out.extend(violations(obj["data"]["object"], path=f"{path}.data.object"))
    return out


def assert_conforms(obj: dict, component: str | None = None, what: str | None = None) -> None:
    """Raise SchemaViolation naming every violation of ``obj``."""
    found = violations(obj, component)
    if found:
        raise SchemaViolation(what or f"{obj.get('object')} {obj.get('id')}", found)

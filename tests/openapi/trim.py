"""Cut the components payops relies on out of Stripe's OpenAPI spec (stripe/openapi).

Usage::

    python tests/openapi/trim.py path/to/openapi.spec3.json tests/openapi/stripe_components.json \\
        --commit <stripe/openapi commit> --path latest/openapi.spec3.json

The full spec (4-8 MB) is never committed; only the trimmed output is. The trim keeps, per schema,
what a shape check needs (type, nullable, enum, anyOf, $ref, properties, required, items,
additionalProperties) and drops descriptions, titles, formats, lengths and ``x-*`` annotations.
Enums of more than ``MAX_ENUM`` values (the payment-method-type lists) are reduced to their type.
A component referenced from a kept one but not kept itself becomes a stub that any object passes.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

REF = "#/components/schemas/"
MAX_ENUM = 64
KEEP = ("type", "nullable", "enum", "anyOf", "$ref", "required", "properties", "items",
        "additionalProperties")

# The objects payops stores or reads (issue 15) and the sub-schemas a shape check needs to see inside.
COMPONENTS = (
    "customer", "payment_intent", "charge", "refund", "balance_transaction", "dispute", "payout", "event",
    "transfer", "transfer_reversal", "application_fee", "fee_refund",
    "address", "api_errors", "application", "billing_details", "charge_fraud_details", "charge_outcome",
    "charge_transfer_data", "destination_details_unimplemented", "dispute_enhanced_eligibility",
    "dispute_enhanced_eligibility_mastercard_compliance", "dispute_enhanced_eligibility_visa_compelling_evidence3",
    "dispute_enhanced_eligibility_visa_compliance", "dispute_enhanced_evidence",
    "dispute_enhanced_evidence_mastercard_compliance", "dispute_enhanced_evidence_visa_compliance",
    "dispute_evidence", "dispute_evidence_details", "dispute_payment_method_details",
    "dispute_payment_method_details_card", "email_sent", "fee", "notification_event_data",
    "notification_event_request", "payment_data", "payment_intent_next_action", "payouts_trace_id",
    "radar_radar_options", "refund_destination_details", "refund_destination_details_card",
    "refund_destination_details_eu_bank_transfer", "refund_next_action", "refund_next_action_display_details",
    "transfer_data",
)


def trim(node: Any) -> Any:
    """One schema node reduced to what a shape check needs."""
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key in KEEP:
        if key not in node:
            continue
        value = node[key]
        if key == "properties":
            out[key] = {name: trim(sub) for name, sub in value.items()}
        elif key == "anyOf":
            out[key] = [trim(sub) for sub in value]
        elif key in ("items", "additionalProperties"):
            out[key] = trim(value)
        elif key == "enum" and len(value) > MAX_ENUM:
            continue
        else:
            out[key] = value
    return out


def _refs(node: Any, acc: set[str]) -> set[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str) and value.startswith(REF):
                acc.add(value[len(REF):])
            else:
                _refs(value, acc)
    elif isinstance(node, list):
        for value in node:
            _refs(value, acc)
    return acc


def trim_spec(spec: dict, names: tuple[str, ...] = COMPONENTS) -> dict[str, Any]:
    """The ``components.schemas`` subset for ``names``, with stubs for what they reference."""
    schemas = spec["components"]["schemas"]
    kept = {name: trim(schemas[name]) for name in names if name in schemas}
    for name in sorted(_refs(kept, set()) - set(kept)):
        kept[name] = {"type": "object", "x-trimmed": True}
    return dict(sorted(kept.items()))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("spec", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--commit", required=True, help="stripe/openapi commit the spec comes from")
    parser.add_argument("--path", default="latest/openapi.spec3.json", help="the spec's path in that repository")
    args = parser.parse_args(argv)
    spec = json.loads(args.spec.read_text(encoding="utf-8"))
    doc = {
        "x-source": {"repository": "stripe/openapi", "path": args.path, "commit": args.commit,
                     "api_version": spec["info"]["version"],
                     "trimmed": f"components {', '.join(COMPONENTS[:12])} and their sub-schemas; see trim.py"},
        "components": {"schemas": trim_spec(spec)},
    }
    args.out.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()

"""Stripe OpenAPI components vendored for the shape checks (see validate.py, trim.py)."""

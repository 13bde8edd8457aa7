"""The Stripe client: pinned API version, a shared rate limiter, retries, errors translated.

- :mod:`~payops.stripe_api.transport`: the pinned ``StripeClient``, the process-wide token
  bucket (20 requests/s live, 10 test; ``PAYOPS_STRIPE_RPS``), retries with jitter (a 429
  is never success), SDK exceptions as :mod:`payops.errors` without the key.
- :mod:`~payops.stripe_api.pager`: the one paging loop, guarded against repeated pages.
- :mod:`~payops.stripe_api.resources`: :class:`StripeAPI`, what payops asks for (lists,
  probes, objects, refunds); build it with :func:`get_client`.
"""

from payops.stripe_api.pager import PAGE_LIMIT, Pager, window_params
from payops.stripe_api.resources import RESOURCES, StripeAPI, get_client, to_dict
from payops.stripe_api.transport import PINNED_API_VERSION, TokenBucket, Transport, shared_bucket

__all__ = ["PINNED_API_VERSION", "StripeAPI", "Transport", "TokenBucket", "Pager", "PAGE_LIMIT",
           "get_client", "to_dict", "RESOURCES", "window_params", "shared_bucket"]

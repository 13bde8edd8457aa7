"""``payops serve``: the one writer of team mode, and the clients that talk to it.

* :mod:`payops.service.app`: the tornado service JupyterHub runs. It alone holds the Stripe
  key and the audit key, authenticates every request with the hub (``HubAuth``: the user name
  comes from the hub, never from a header or the client's environment), and applies every
  refund rule by calling :mod:`payops.refunds` with that user, on one writer thread.
* :mod:`payops.service.client`: :class:`ServiceClient`, the HTTP client (the user's hub token).
* :mod:`payops.service.actions`: :class:`RefundActions`, what the CLI and the review app call
  to change anything: local in single-user mode, remote (the service) in team mode.

Importing this package is cheap; the tornado app is only loaded by ``payops serve``.
"""

from __future__ import annotations

from payops.service.actions import LocalActions, RefundActions, RemoteActions, refund_actions
from payops.service.client import ServiceClient

__all__ = ["RefundActions", "LocalActions", "RemoteActions", "refund_actions", "ServiceClient"]

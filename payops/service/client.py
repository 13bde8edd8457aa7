"""The HTTP client of ``payops serve``: every call carries the user's own JupyterHub token.

The service learns who calls from the hub (the token), so this client sends nothing else
about the user: no name, no role, no header the service would trust. In a JupyterHub
single-user server (a terminal, a kernel, the review app in Voila) the token is
``JUPYTERHUB_API_TOKEN``; elsewhere, a token made at ``<hub>/hub/token``.
"""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from typing import Any

import orjson

from payops.authority import ServiceRequired
from payops.errors import (
    InvalidInput,
    NotFound,
    PayopsError,
    PermissionDenied,
    RefundError,
    TransientError,
)

__all__ = ["ServiceClient", "ServiceUnavailable", "TOKEN_ENV", "URL_ENV"]

TOKEN_ENV = "JUPYTERHUB_API_TOKEN"
URL_ENV = "PAYOPS_SERVICE_URL"


class ServiceUnavailable(TransientError):
    """payops serve could not be reached."""


def _error(status: int, message: str) -> PayopsError:
    if status == 401:
        return PermissionDenied(f"the hub did not accept your token ({TOKEN_ENV}): {message}")
    if status == 403:
        return PermissionDenied(message)
    if status == 404:
        return NotFound(message)
    if status in (400, 413, 422):
        return InvalidInput(message)
    if status == 409:
        return RefundError(message)
    if status in (502, 503, 504):
        return ServiceUnavailable(message)
    return PayopsError(f"payops serve failed ({status}): {message}")


class ServiceClient:
    """Calls ``payops serve`` with one user's hub token.

    Args:
        url: the service's URL, e.g. ``http://127.0.0.1:8000/services/payops/``.
        token: the user's JupyterHub API token.
        timeout: seconds per call.
    """

    def __init__(self, url: str, token: str, *, timeout: float = 60.0):
        self.url = url.rstrip("/") + "/"
        self._token = token
        self.timeout = timeout

    def __repr__(self) -> str:  # the token never shows
        return f"ServiceClient({self.url!r})"

    @classmethod
    def from_env(cls, *, what: str = "this change") -> ServiceClient:
        """The client for the user of this process: ``PAYOPS_SERVICE_URL`` and ``JUPYTERHUB_API_TOKEN``.

        Raises:
            ServiceRequired: one of them is missing (one line saying how to set them).
        """
        url, token = os.environ.get(URL_ENV), os.environ.get(TOKEN_ENV)
        if not url or not token:
            missing = " and ".join(n for n, v in ((URL_ENV, url), (TOKEN_ENV, token)) if not v)
            raise ServiceRequired(
                f"team mode: {what} goes through payops serve as the user your JupyterHub token names; "
                f"set {missing} (a token from <hub>/hub/token; PAYOPS_USER is ignored)")
        return cls(url, token)

    def call(self, method: str, path: str, body: dict | None = None) -> Any:
        """One request to ``<url>api/<path>``; the JSON reply, or a :class:`PayopsError`."""
        data = orjson.dumps(body) if body is not None else None
        req = urllib.request.Request(self.url + "api/" + path.lstrip("/"), data=data, method=method,
                                     headers={"Authorization": f"token {self._token}",
                                              "Content-Type": "application/json",
                                              "Accept": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as reply:
                return orjson.loads(reply.read() or b"null")
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                message = str(orjson.loads(raw).get("error") or exc.reason)
            except (orjson.JSONDecodeError, AttributeError):
                message = str(exc.reason)
            raise _error(exc.code, message) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ServiceUnavailable(f"cannot reach payops serve at {self.url}: {reason}") from None

    def whoami(self) -> dict:
        """``{"user", "groups", "roles", "mode"}`` as the service (and so the hub) sees this token."""
        return self.call("GET", "whoami")

"""Who may write: single-user or team mode, the acting identity, and the writer's audit key.

*Single-user* mode (no ``[roles]`` in payops.toml): one person holds every role and the
library writes the database directly, as the demo does. *Team* mode (``[roles]`` present):
one writer, ``payops serve``, takes the acting user from JupyterHub and alone holds the
Stripe key and the audit key; everyone else reads, and writes by asking the service.

The audit key keys the audit chain (HMAC-SHA256). It is read from ``PAYOPS_AUDIT_KEY`` or
from the file ``PAYOPS_AUDIT_KEY_FILE`` names (readable by the writer's OS user only); it is
never stored in the database, printed, or put in a report. Only the writer's environment
has it, so a row written by anyone else cannot carry a valid MAC.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path

from payops.config import ROLES, Settings, get_settings
from payops.errors import ConfigError, PermissionDenied

__all__ = [
    "AUDIT_KEY_ENV", "AUDIT_KEY_FILE_ENV", "Identity", "ServiceRequired", "audit_key", "team_mode",
    "roles_for", "require_audit_key", "MIN_KEY_BYTES", "acting", "current_identity",
]

AUDIT_KEY_ENV = "PAYOPS_AUDIT_KEY"
AUDIT_KEY_FILE_ENV = "PAYOPS_AUDIT_KEY_FILE"
MIN_KEY_BYTES = 16
# A role list entry naming a hub group rather than a user: ``"group:reviewers"``.
GROUP_PREFIX = "group:"


class ServiceRequired(PermissionDenied):
    """In team mode, changes go through payops serve."""


def team_mode(settings: Settings | None = None) -> bool:
    """True when payops.toml has a ``[roles]`` table: one writer, logins from JupyterHub."""
    return not (settings or get_settings()).single_user


@dataclass(frozen=True)
class Identity:
    """Who acts, as an authenticated source (the hub) says; never from the environment.

    Attributes:
        name: the hub user name.
        groups: the hub groups the user belongs to.
        roles: the payops roles this gives (payops.toml names users and ``group:<name>``).
    """

    name: str
    groups: tuple[str, ...] = ()
    roles: tuple[str, ...] = field(default_factory=tuple)

    def has(self, *roles: str) -> bool:
        """Whether the identity holds any of ``roles``."""
        return any(r in self.roles for r in roles)


_ACTING: ContextVar[Identity | None] = ContextVar("payops_acting", default=None)


@contextmanager
def acting(identity: Identity) -> Iterator[Identity]:
    """Within the block, the library knows ``identity``'s hub groups (for ``group:`` roles)."""
    token = _ACTING.set(identity)
    try:
        yield identity
    finally:
        _ACTING.reset(token)


def current_identity() -> Identity | None:
    """The identity :func:`acting` set for this context, if any."""
    return _ACTING.get()


def roles_for(name: str, groups: Iterable[str] | None = None, settings: Settings | None = None) -> tuple[str, ...]:
    """The roles of hub user ``name`` in ``groups``, from ``[roles]`` (every role in single-user mode).

    ``groups`` default: those of the identity the writer is acting for, when it is ``name``.
    """
    settings = settings or get_settings()
    if settings.single_user:
        return ROLES
    if groups is None:
        me = _ACTING.get()
        groups = me.groups if me is not None and me.name == name else ()
    mine = {name} | {GROUP_PREFIX + g for g in groups}
    return tuple(r for r in ROLES if mine & set(settings.roles.get(r, ())))


def _key_from_file(path: Path) -> bytes:
    try:
        info = path.stat()
        raw = path.read_bytes().strip()
    except OSError as exc:
        raise ConfigError(f"cannot read the audit key file {path} ({AUDIT_KEY_FILE_ENV}): {exc.strerror}") from None
    if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(f"the audit key file {path} is readable by others; chmod 600 it "
                          "(only the writer's OS user may read it)")
    return raw


def audit_key() -> bytes | None:
    """The writer's audit key, or None where there is none (everyone but the writer).

    Raises:
        ConfigError: the key file is unreadable, readable by others, or the key is too short.
    """
    raw: bytes | None = None
    value = os.environ.get(AUDIT_KEY_ENV)
    if value:
        raw = value.encode()
    else:
        path = os.environ.get(AUDIT_KEY_FILE_ENV)
        if path:
            raw = _key_from_file(Path(path))
    if raw is None:
        return None
    if len(raw) < MIN_KEY_BYTES:
        raise ConfigError(f"the audit key ({AUDIT_KEY_ENV} / {AUDIT_KEY_FILE_ENV}) must be at least "
                          f"{MIN_KEY_BYTES} bytes; make one with: python -c 'import secrets; "
                          "print(secrets.token_urlsafe(32))'")
    return raw


def require_audit_key() -> bytes:
    """The audit key, or :class:`~payops.errors.ConfigError` listing where it was looked for."""
    key = audit_key()
    if key is None:
        raise ConfigError(f"no audit key: set {AUDIT_KEY_FILE_ENV} to a file only the writer can read "
                          f"(or {AUDIT_KEY_ENV}); looked in the environment of this process")
    return key

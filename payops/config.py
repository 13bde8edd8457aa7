"""Settings from the environment and an optional ``payops.toml``.

Every setting has one environment variable; thresholds and roles live in the TOML file
(path from ``PAYOPS_CONFIG``, default ``./payops.toml``). Secrets are wrapped in
:class:`Secret`, whose ``repr``/``str`` show at most the last four characters.
"""

from __future__ import annotations

import getpass
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from payops.errors import ConfigError

ROLES = ("viewer", "reviewer", "senior", "processor")

DEFAULT_REFUNDS: dict[str, Any] = {
    "urgent_after_days": 3,
    "high_after_days": 1,
    "large_above": {"default": "50.00", "jpy": "5000", "krw": "50000"},
    "refund_window_days": 180,
    "auto_approve_cap": "100.00",
    "stuck_processing_hours": 1,
}
DEFAULT_KPIS: dict[str, Any] = {
    "min_success_rate": 0.95,
    "max_processing_hours": 24,
    "max_pending_requests": 10,
    "max_failed_rate": 0.05,
}


class Secret:
    """A secret string that never shows itself in a repr, a log or a message."""

    __slots__ = ("_value",)

    def __init__(self, value: str):
        self._value = value

    def reveal(self) -> str:
        """The secret itself, for the one place that must send it."""
        return self._value

    @property
    def last4(self) -> str:
        return self._value[-4:] if len(self._value) >= 8 else ""

    def __repr__(self) -> str:
        return f"Secret('...{self.last4}')"

    __str__ = __repr__

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self):  # refuse to pickle a secret into some file by accident
        raise TypeError("a Secret cannot be pickled")


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else default


@dataclass(frozen=True)
class Settings:
    """payops settings; build with :func:`get_settings`."""

    db_path: Path
    stripe_api_key: Secret | None
    stripe_api_base: str | None
    webhook_secret: Secret | None
    timezone: str
    user: str
    config_path: Path
    config_found: bool
    reports_dir: Path
    archive_dir: Path
    db_timeout: float
    stripe_rps: float | None
    platform_fee_bps: int
    roles: dict[str, list[str]] = field(default_factory=dict)
    refunds: dict[str, Any] = field(default_factory=dict)
    kpis: dict[str, Any] = field(default_factory=dict)

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def single_user(self) -> bool:
        """Without a payops.toml (or without a [roles] table) the current user holds every role."""
        return not self.roles

    def has_role(self, user: str, role: str) -> bool:
        if self.single_user:
            return True
        return user in self.roles.get(role, [])

    def roles_of(self, user: str) -> list[str]:
        return [r for r in ROLES if self.has_role(user, r)]


def _float(name: str, raw: str | None, default: float | None) -> float | None:
    if raw is None:
        return default
    try:
        return float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None


def get_settings(**overrides: Any) -> Settings:
    """Read the settings now (environment first, then ``payops.toml``, then defaults).

    Keyword arguments override single fields, e.g. ``get_settings(db_path="x.duckdb")``.
    """
    config_path = Path(_env("PAYOPS_CONFIG", "payops.toml"))
    data: dict[str, Any] = {}
    found = config_path.is_file()
    if found:
        try:
            data = tomllib.loads(config_path.read_text())
        except (tomllib.TOMLDecodeError, OSError) as exc:
            raise ConfigError(f"cannot read {config_path}: {exc}") from None
    elif "PAYOPS_CONFIG" in os.environ and os.environ["PAYOPS_CONFIG"]:
        raise ConfigError(
            f"PAYOPS_CONFIG points to {config_path}, which does not exist "
            "(unset it to run in single-user mode)"
        )
    general = data.get("payops", {})

    roles_raw = data.get("roles", {})
    roles: dict[str, list[str]] = {}
    for role, users in roles_raw.items():
        if role not in ROLES:
            raise ConfigError(f"{config_path}: unknown role {role!r} (known: {', '.join(ROLES)})")
        if isinstance(users, str):
            users = [users]
        if not isinstance(users, list) or not all(isinstance(u, str) for u in users):
            raise ConfigError(f"{config_path}: [roles] {role} must be a list of user names")
        roles[role] = list(users)

    refunds = {**DEFAULT_REFUNDS, **data.get("refunds", {})}
    if isinstance(refunds["large_above"], (str, int, float)):
        refunds["large_above"] = {"default": str(refunds["large_above"])}
    kpis = {**DEFAULT_KPIS, **data.get("kpis", {})}

    tz = _env("PAYOPS_TIMEZONE", general.get("timezone", "UTC"))
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"unknown timezone {tz!r} (PAYOPS_TIMEZONE); use a name like Europe/Berlin") from None

    key = _env("STRIPE_API_KEY")
    hook = _env("STRIPE_WEBHOOK_SECRET")
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    bps_raw = _env("PAYOPS_PLATFORM_FEE_BPS", str(general.get("platform_fee_bps", 1500)))
    try:
        bps = int(bps_raw)
    except ValueError:
        raise ConfigError(f"PAYOPS_PLATFORM_FEE_BPS must be an integer, got {bps_raw!r}") from None
    values: dict[str, Any] = dict(
        db_path=Path(_env("PAYOPS_DB", general.get("db", "data/payops.duckdb"))),
        stripe_api_key=Secret(key) if key else None,
        stripe_api_base=_env("STRIPE_API_BASE"),
        webhook_secret=Secret(hook) if hook else None,
        timezone=tz,
        user=_env("PAYOPS_USER", user),
        config_path=config_path,
        config_found=found,
        reports_dir=Path(_env("PAYOPS_REPORTS_DIR", general.get("reports_dir", "reports"))),
        archive_dir=Path(_env("PAYOPS_ARCHIVE_DIR", general.get("archive_dir", "data/archive"))),
        db_timeout=_float("PAYOPS_DB_TIMEOUT", _env("PAYOPS_DB_TIMEOUT"), 30.0),
        stripe_rps=_float("PAYOPS_STRIPE_RPS", _env("PAYOPS_STRIPE_RPS"), None),
        platform_fee_bps=bps,
        roles=roles,
        refunds=refunds,
        kpis=kpis,
    )
    for name, value in overrides.items():
        if name not in values:
            raise TypeError(f"unknown setting {name!r}")
        if name in ("db_path", "reports_dir", "archive_dir", "config_path") and value is not None:
            value = Path(value)
        values[name] = value
    return Settings(**values)

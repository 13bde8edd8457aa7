"""Settings from the environment and an optional ``payops.toml``.

Every setting has one environment variable; thresholds and roles live in the TOML file
(path from ``PAYOPS_CONFIG``, default ``./payops.toml``). Secrets are wrapped in
:class:`Secret`, whose ``repr``/``str`` show at most the last four characters.
"""

from __future__ import annotations

import getpass
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import ROUND_DOWN, Decimal, InvalidOperation
from pathlib import Path
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from payops.errors import ConfigError, MoneyError
from payops.money import exponent, from_decimal

ROLES = ("viewer", "reviewer", "senior", "processor")

# Amounts are major units as text, per currency ("default" for every other currency).
DEFAULT_REFUNDS: dict[str, Any] = {
    "urgent_after_days": 3,
    "high_after_days": 1,
    "large_above": {"default": "50.00", "jpy": "5000", "krw": "50000"},
    "refund_window_days": 180,
    "auto_approve_cap": "100.00",
    "stuck_processing_hours": 1,
    "send_reason": True,
}
DEFAULT_KPIS: dict[str, Any] = {
    "min_success_rate": 0.95,
    "max_processing_hours": 24,
    "max_pending_requests": 10,
    "max_failed_rate": 0.05,
}
# The keys payops.toml may hold, per table; anything else is a typo worth reporting.
GENERAL_KEYS = ("db", "timezone", "reports_dir", "archive_dir", "platform_fee_bps")
TOML_TABLES: dict[str, tuple[str, ...]] = {
    "payops": GENERAL_KEYS,
    "roles": ROLES,
    "refunds": tuple(DEFAULT_REFUNDS),
    "kpis": tuple(DEFAULT_KPIS),
}
DEFAULT_CURRENCY_KEY = "default"
DEFAULT_DB = "data/payops.duckdb"


def db_anchor(config_path: Path, config_found: bool) -> Path:
    """The one folder a relative ``PAYOPS_DB`` (or ``db =`` in payops.toml) is taken from.

    The folder of the payops.toml in use when there is one (``PAYOPS_CONFIG``, else
    ``./payops.toml``), otherwise the current directory; always absolute, so every message
    names the file itself.
    """
    return (config_path.parent if config_found else Path.cwd()).resolve()


def resolve_db_path(value: str | Path, config_path: Path, config_found: bool) -> Path:
    """``value`` as an absolute path: relative ones are taken from :func:`db_anchor`."""
    path = Path(value).expanduser()
    return path if path.is_absolute() else db_anchor(config_path, config_found) / path


def _minor_down(value: Decimal, currency: str) -> int:
    """``value`` (major units) in minor units of ``currency``, rounded down to a whole unit.

    Only a ``default`` amount can have more decimals than a currency (``"50.50"`` applied to
    JPY); amounts given for a currency itself were checked against its exponent on reading.
    """
    quantum = Decimal(1).scaleb(-exponent(currency))
    return from_decimal(value.quantize(quantum, rounding=ROUND_DOWN), currency)


@dataclass(frozen=True)
class RefundPolicy:
    """The ``[refunds]`` table of payops.toml, validated.

    Attributes:
        urgent_after_days: a PENDING request older than this is URGENT.
        high_after_days: a PENDING request older than this is HIGH.
        large_above: per currency (lower case, or ``"default"``), the amount in major units
            above which a request is LARGE; read it with :meth:`large_threshold`.
        refund_window_days: payments older than this cannot be refunded (None: no window).
        auto_approve_caps: per currency (or ``"default"``), the most ``apply-policy`` may
            approve, in major units; empty means no cap. Read it with :meth:`auto_approve_cap`.
        stuck_processing_hours: a request PROCESSING for longer is reconciled by ``process``.
        send_reason: send the request's reason to Stripe (false only for stand-ins such as
            localstripe that refuse it).
    """

    urgent_after_days: float = DEFAULT_REFUNDS["urgent_after_days"]
    high_after_days: float = DEFAULT_REFUNDS["high_after_days"]
    large_above: Mapping[str, Decimal] = field(
        default_factory=lambda: _amounts(None, "large_above", DEFAULT_REFUNDS["large_above"]))
    refund_window_days: float | None = DEFAULT_REFUNDS["refund_window_days"]
    auto_approve_caps: Mapping[str, Decimal] = field(
        default_factory=lambda: _amounts(None, "auto_approve_cap", DEFAULT_REFUNDS["auto_approve_cap"]))
    stuck_processing_hours: float = DEFAULT_REFUNDS["stuck_processing_hours"]
    send_reason: bool = DEFAULT_REFUNDS["send_reason"]

    def large_threshold(self, currency: str) -> int:
        """The LARGE threshold of ``currency`` in minor units: ``large_threshold("jpy") == 5000``."""
        cur = currency.lower()
        return _minor_down(self.large_above.get(cur, self.large_above[DEFAULT_CURRENCY_KEY]), cur)

    def auto_approve_cap(self, currency: str) -> int | None:
        """The most ``apply-policy`` may approve in ``currency`` (minor units); None: no cap."""
        cur = currency.lower()
        value = self.auto_approve_caps.get(cur, self.auto_approve_caps.get(DEFAULT_CURRENCY_KEY))
        return None if value is None else _minor_down(value, cur)

    @property
    def urgent_after(self) -> timedelta:
        return timedelta(days=self.urgent_after_days)

    @property
    def high_after(self) -> timedelta:
        return timedelta(days=self.high_after_days)

    @property
    def refund_window(self) -> timedelta | None:
        return timedelta(days=self.refund_window_days) if self.refund_window_days else None

    @property
    def stuck_after(self) -> timedelta:
        return timedelta(hours=self.stuck_processing_hours)


@dataclass(frozen=True)
class KpiThresholds:
    """The ``[kpis]`` table of payops.toml, validated (rates are fractions: 0.95 = 95%)."""

    min_success_rate: float = DEFAULT_KPIS["min_success_rate"]
    max_processing_hours: float = DEFAULT_KPIS["max_processing_hours"]
    max_pending_requests: int = DEFAULT_KPIS["max_pending_requests"]
    max_failed_rate: float = DEFAULT_KPIS["max_failed_rate"]


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


def _env(name: str) -> str | None:
    """The environment variable ``name``; unset and empty are the same."""
    return os.environ.get(name) or None


def _env_or(name: str, default: Any) -> str:
    """The environment variable ``name``, else ``default`` (a TOML value) as text."""
    return os.environ.get(name) or str(default)


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
    refund_policy: RefundPolicy = field(default_factory=RefundPolicy)
    kpis: KpiThresholds = field(default_factory=KpiThresholds)

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


def _check_keys(path: Path, data: dict[str, Any]) -> None:
    """Refuse any table or key payops.toml does not know, naming it and the file."""
    for table, body in data.items():
        if table not in TOML_TABLES:
            raise ConfigError(f"{path}: unknown table [{table}] (known: {', '.join(TOML_TABLES)})")
        if not isinstance(body, dict):
            raise ConfigError(f"{path}: {table} must be a table ([{table}])")
        if table == "roles":
            continue  # unknown roles get their own message in _roles
        for key in body:
            if key not in TOML_TABLES[table]:
                raise ConfigError(f"{path}: unknown key {key!r} in [{table}] "
                                  f"(known: {', '.join(TOML_TABLES[table])})")


def _roles(path: Path, raw: dict[str, Any]) -> dict[str, list[str]]:
    roles: dict[str, list[str]] = {}
    for role, users in raw.items():
        if role not in ROLES:
            raise ConfigError(f"{path}: unknown role {role!r} (known: {', '.join(ROLES)})")
        if isinstance(users, str):
            users = [users]
        if not isinstance(users, list) or not all(isinstance(u, str) for u in users):
            raise ConfigError(f"{path}: [roles] {role} must be a list of user names")
        roles[role] = list(users)
    return roles


def _number(path: Path, where: str, value: Any, *, integer: bool = False, at_most: float | None = None) -> float:
    ok = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok or value < 0 or (at_most is not None and value > at_most):
        kind = "a whole number" if integer else "a number"
        limit = f" between 0 and {at_most:g}" if at_most is not None else " >= 0"
        raise ConfigError(f"{path}: {where} must be {kind}{limit}, got {value!r}")
    return value


def _amounts(path: Path | None, where: str, value: Any, *, allow_none: bool = False) -> Mapping[str, Decimal]:
    """A per-currency amount table (major units) from ``"50.00"`` or ``{ default = ..., jpy = ... }``."""
    if allow_none and value == "":
        return MappingProxyType({})
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        value = {DEFAULT_CURRENCY_KEY: value}
    if not isinstance(value, dict):
        raise ConfigError(f"{path}: {where} must be an amount like \"50.00\" or a table per currency")
    table: dict[str, Decimal] = {}
    for key, raw in value.items():
        cur = str(key).lower()
        try:
            amount = Decimal(str(raw).strip())
            if isinstance(raw, bool) or not amount.is_finite() or amount < 0:
                raise InvalidOperation
            if cur != DEFAULT_CURRENCY_KEY:
                from_decimal(amount, cur)  # a currency's own amount must fit its decimals
        except (InvalidOperation, ValueError):
            raise ConfigError(f"{path}: {where}.{key} must be an amount like \"50.00\", got {raw!r}") from None
        except MoneyError as exc:
            raise ConfigError(f"{path}: {where}.{key}: {exc.message}") from None
        table[cur] = amount
    return MappingProxyType(table)


def _refund_policy(path: Path, raw: dict[str, Any]) -> RefundPolicy:
    r = {**DEFAULT_REFUNDS, **raw}
    if not isinstance(r["send_reason"], bool):
        raise ConfigError(f"{path}: [refunds] send_reason must be true or false, got {r['send_reason']!r}")
    window = _number(path, "[refunds] refund_window_days", r["refund_window_days"])
    return RefundPolicy(
        urgent_after_days=_number(path, "[refunds] urgent_after_days", r["urgent_after_days"]),
        high_after_days=_number(path, "[refunds] high_after_days", r["high_after_days"]),
        # a table without "default" keeps the built-in default for the other currencies
        large_above=MappingProxyType({DEFAULT_CURRENCY_KEY: Decimal(DEFAULT_REFUNDS["large_above"]["default"]),
                                      **_amounts(path, "[refunds] large_above", r["large_above"])}),
        refund_window_days=window or None,
        auto_approve_caps=_amounts(path, "[refunds] auto_approve_cap", r["auto_approve_cap"], allow_none=True),
        stuck_processing_hours=_number(path, "[refunds] stuck_processing_hours", r["stuck_processing_hours"]),
        send_reason=r["send_reason"],
    )


def _kpis(path: Path, raw: dict[str, Any]) -> KpiThresholds:
    k = {**DEFAULT_KPIS, **raw}
    return KpiThresholds(
        min_success_rate=_number(path, "[kpis] min_success_rate", k["min_success_rate"], at_most=1),
        max_processing_hours=_number(path, "[kpis] max_processing_hours", k["max_processing_hours"]),
        max_pending_requests=int(_number(path, "[kpis] max_pending_requests", k["max_pending_requests"],
                                         integer=True)),
        max_failed_rate=_number(path, "[kpis] max_failed_rate", k["max_failed_rate"], at_most=1),
    )


def get_settings(**overrides: Any) -> Settings:
    """Read the settings now (environment first, then ``payops.toml``, then defaults).

    Keyword arguments override single fields, e.g. ``get_settings(db_path="x.duckdb")``.
    """
    config_path = Path(_env_or("PAYOPS_CONFIG", "payops.toml"))
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
    _check_keys(config_path, data)
    general = data.get("payops", {})
    roles = _roles(config_path, data.get("roles", {}))
    refund_policy = _refund_policy(config_path, data.get("refunds", {}))
    kpis = _kpis(config_path, data.get("kpis", {}))

    tz = _env_or("PAYOPS_TIMEZONE", general.get("timezone", "UTC"))
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
    bps_raw = _env_or("PAYOPS_PLATFORM_FEE_BPS", str(general.get("platform_fee_bps", 1500)))
    try:
        bps = int(bps_raw)
    except ValueError:
        raise ConfigError(f"PAYOPS_PLATFORM_FEE_BPS must be an integer, got {bps_raw!r}") from None
    values: dict[str, Any] = dict(
        db_path=resolve_db_path(_env_or("PAYOPS_DB", general.get("db", DEFAULT_DB)), config_path, found),
        stripe_api_key=Secret(key) if key else None,
        stripe_api_base=_env("STRIPE_API_BASE"),
        webhook_secret=Secret(hook) if hook else None,
        timezone=tz,
        user=_env_or("PAYOPS_USER", user),
        config_path=config_path,
        config_found=found,
        reports_dir=Path(_env_or("PAYOPS_REPORTS_DIR", general.get("reports_dir", "reports"))),
        archive_dir=Path(_env_or("PAYOPS_ARCHIVE_DIR", general.get("archive_dir", "data/archive"))),
        db_timeout=_float("PAYOPS_DB_TIMEOUT", _env("PAYOPS_DB_TIMEOUT"), 30.0),
        stripe_rps=_float("PAYOPS_STRIPE_RPS", _env("PAYOPS_STRIPE_RPS"), None),
        platform_fee_bps=bps,
        roles=roles,
        refund_policy=refund_policy,
        kpis=kpis,
    )
    for name, value in overrides.items():
        if name not in values:
            raise TypeError(f"unknown setting {name!r}")
        if name in ("db_path", "reports_dir", "archive_dir", "config_path") and value is not None:
            value = Path(value)
        if name == "db_path" and value is not None:
            value = resolve_db_path(value, config_path, found)
        values[name] = value
    return Settings(**values)

import logging
from datetime import timedelta

import pytest

from payops.config import KpiThresholds, RefundPolicy, Secret, get_settings
from payops.errors import ConfigError


def test_secret_never_shows(monkeypatch, caplog):
    key = "sk_test_51VerySecretValue9876"
    monkeypatch.setenv("STRIPE_API_KEY", key)
    s = get_settings()
    assert s.stripe_api_key.reveal() == key
    for text in (repr(s), str(s), repr(s.stripe_api_key), f"{s.stripe_api_key}"):
        assert key not in text
        assert "VerySecret" not in text
    assert "...9876" in repr(s.stripe_api_key)
    logging.getLogger("x").warning("settings %s", s)
    assert key not in caplog.text
    with pytest.raises(TypeError):
        import pickle
        pickle.dumps(s.stripe_api_key)


def test_short_secret_shows_nothing():
    assert repr(Secret("abc")) == "Secret('...')"


def test_defaults():
    s = get_settings()
    assert s.timezone == "UTC"
    assert s.single_user and s.has_role("anyone", "senior")
    assert s.db_timeout == 5.0  # from the test environment
    assert s.platform_fee_bps == 1500


def test_roles_and_thresholds_from_toml(tmp_path, monkeypatch):
    (tmp_path / "payops.toml").write_text(
        '[roles]\nreviewer = ["ana", "ben"]\nsenior = ["carla"]\nprocessor = ["ben"]\n'
        '[refunds]\nurgent_after_days = 5\nlarge_above = { default = "80.00", jpy = "9000" }\n'
    )
    s = get_settings()
    assert not s.single_user
    assert s.roles_of("ben") == ["reviewer", "processor"]
    assert not s.has_role("ana", "senior")
    policy = s.refund_policy
    assert policy.urgent_after_days == 5 and policy.high_after_days == 1
    assert policy.urgent_after == timedelta(days=5)
    assert policy.large_threshold("jpy") == 9000 and policy.large_threshold("USD") == 8000
    assert policy.large_threshold("kwd") == 80000  # three decimals


@pytest.mark.parametrize(
    "env, value, message",
    [("PAYOPS_TIMEZONE", "Mars/Olympus", "unknown timezone"),
     ("PAYOPS_DB_TIMEOUT", "soon", "PAYOPS_DB_TIMEOUT must be a number"),
     ("PAYOPS_CONFIG", "/nope/payops.toml", "does not exist")],
)
def test_bad_settings_are_clear(monkeypatch, env, value, message):
    monkeypatch.setenv(env, value)
    with pytest.raises(ConfigError, match=message):
        get_settings()


def test_bad_toml(tmp_path):
    (tmp_path / "payops.toml").write_text("[roles]\nwizard = ['x']\n")
    with pytest.raises(ConfigError, match="unknown role 'wizard'"):
        get_settings()


def _toml(tmp_path, text: str):
    (tmp_path / "payops.toml").write_text(text)
    return get_settings()


def test_typed_defaults_in_minor_units():
    s = get_settings()
    assert s.refund_policy == RefundPolicy() and s.kpis == KpiThresholds()
    p = s.refund_policy
    assert (p.large_threshold("usd"), p.large_threshold("jpy"), p.large_threshold("krw")) == (5000, 5000, 50000)
    assert p.large_threshold("bhd") == 50000
    assert p.auto_approve_cap("usd") == 10000 and p.auto_approve_cap("jpy") == 100
    assert p.refund_window == timedelta(days=180) and p.stuck_after == timedelta(hours=1)
    assert p.send_reason is True
    assert s.kpis.min_success_rate == 0.95 and s.kpis.max_pending_requests == 10


def test_per_currency_amounts(tmp_path):
    p = _toml(tmp_path, '[refunds]\nlarge_above = "50.50"\n'
                        'auto_approve_cap = { default = "20.00", jpy = 3000 }\nrefund_window_days = 0\n').refund_policy
    # a default finer than the currency rounds down to a whole minor unit
    assert p.large_threshold("jpy") == 50 and p.large_threshold("usd") == 5050
    assert p.auto_approve_cap("JPY") == 3000 and p.auto_approve_cap("eur") == 2000
    assert p.refund_window is None


def test_large_table_without_default_keeps_the_builtin_default(tmp_path):
    p = _toml(tmp_path, '[refunds]\nlarge_above = { jpy = "9000" }\n').refund_policy
    assert p.large_threshold("jpy") == 9000 and p.large_threshold("eur") == 5000


def test_no_cap(tmp_path):
    p = _toml(tmp_path, '[refunds]\nauto_approve_cap = ""\n').refund_policy
    assert p.auto_approve_cap("usd") is None
    p = _toml(tmp_path, '[refunds]\nauto_approve_cap = { jpy = "500" }\n').refund_policy
    assert p.auto_approve_cap("usd") is None and p.auto_approve_cap("jpy") == 500


def test_kpis_typed(tmp_path):
    k = _toml(tmp_path, "[kpis]\nmin_success_rate = 0.9\nmax_pending_requests = 3\n").kpis
    assert k == KpiThresholds(min_success_rate=0.9, max_pending_requests=3)


@pytest.mark.parametrize(
    "text, message",
    [("[refunds]\nurgent_after_dayz = 3\n", r"payops.toml: unknown key 'urgent_after_dayz' in \[refunds\]"),
     ("[kpis]\nmin_sucess_rate = 0.9\n", r"unknown key 'min_sucess_rate' in \[kpis\]"),
     ("[payops]\ntimezon = 'UTC'\n", r"unknown key 'timezon' in \[payops\]"),
     ("[refund]\nurgent_after_days = 3\n", r"unknown table \[refund\]"),
     ("timezone = 'UTC'\n", r"unknown table \[timezone\]"),
     ("[refunds]\nlarge_above = { jpy = \"50.5\" }\n", "large_above.jpy: .*more decimals than JPY"),
     ("[refunds]\nlarge_above = { usd = \"lots\" }\n", "large_above.usd must be an amount"),
     ("[refunds]\nlarge_above = { usd = \"-1\" }\n", "large_above.usd must be an amount"),
     ("[refunds]\nlarge_above = { usdollar = \"1\" }\n", "large_above.usdollar: not a currency code"),
     ("[refunds]\nurgent_after_days = \"3\"\n", "urgent_after_days must be a number"),
     ("[refunds]\nhigh_after_days = -1\n", "high_after_days must be a number >= 0"),
     ("[refunds]\nsend_reason = \"no\"\n", "send_reason must be true or false"),
     ("[kpis]\nmin_success_rate = 95\n", "min_success_rate must be a number between 0 and 1"),
     ("[kpis]\nmax_pending_requests = 2.5\n", "max_pending_requests must be a whole number"),
     ("[kpis]\nmax_failed_rate = true\n", "max_failed_rate must be a number"),
     ("refunds = 3\n", r"refunds must be a table")],
)
def test_bad_toml_names_the_key_and_the_file(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message) as info:
        _toml(tmp_path, text)
    assert info.value.message.startswith("payops.toml: ")  # the file as PAYOPS_CONFIG names it (cwd here)

import logging

import pytest

from payops.config import Secret, get_settings
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
    assert s.refunds["urgent_after_days"] == 5 and s.refunds["high_after_days"] == 1
    assert s.refunds["large_above"]["jpy"] == "9000"


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

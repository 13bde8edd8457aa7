"""Shared fixtures: every test gets a clean environment and its own database file."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TESTS = REPO / "tests"
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

_ISOLATED = ("PAYOPS_", "STRIPE_", "JUPYTERHUB_")
TEST_AUDIT_KEY = "test-only-audit-key-0123456789abcdef"


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """No setting leaks in from the developer's shell; cwd is a fresh folder."""
    for name in list(os.environ):
        if name.startswith(_ISOLATED):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PAYOPS_DB", str(tmp_path / "payops.duckdb"))
    monkeypatch.setenv("PAYOPS_REPORTS_DIR", str(tmp_path / "reports"))
    monkeypatch.setenv("PAYOPS_USER", "tester")
    monkeypatch.setenv("PAYOPS_DB_TIMEOUT", "5")
    # Tests act as the writer (team mode's payops serve): it alone holds the audit key.
    monkeypatch.setenv("PAYOPS_AUDIT_KEY", TEST_AUDIT_KEY)
    yield


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """The test's database file (also in $PAYOPS_DB)."""
    return tmp_path / "payops.duckdb"


@pytest.fixture
def empty_db(db_path: Path) -> Path:
    """The test's database, created empty (migrated): commands that only read never create one."""
    from payops.db import connect

    with connect(db_path):
        pass
    return db_path


@pytest.fixture
def repo() -> Path:
    return REPO


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch):
    """The project's fake Stripe on 127.0.0.1, with the environment pointing payops at it
    (modules that need another account or seed define their own ``fake``)."""
    from fake_stripe import FakeStripe

    with FakeStripe() as fs:
        monkeypatch.setenv("STRIPE_API_KEY", fs.api_key)
        monkeypatch.setenv("STRIPE_API_BASE", fs.url)
        yield fs

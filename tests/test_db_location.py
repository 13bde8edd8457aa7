"""Issue 13, safety 3: one anchor for a relative PAYOPS_DB; commands that only read never create a database."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from payops.cli import cli
from payops.config import get_settings
from payops.db import connect


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project folder with its payops.toml, and the shell in another folder."""
    proj = tmp_path / "project"
    proj.mkdir()
    (proj / "payops.toml").write_text('[payops]\ntimezone = "UTC"\n')
    elsewhere = tmp_path / "elsewhere" / "notebooks"
    elsewhere.mkdir(parents=True)
    monkeypatch.chdir(elsewhere)
    monkeypatch.setenv("PAYOPS_CONFIG", str(proj / "payops.toml"))
    monkeypatch.setenv("PAYOPS_DB", "data/payops.duckdb")
    return proj


def test_relative_db_is_taken_from_the_folder_of_payops_toml(project: Path):
    assert get_settings().db_path == project / "data" / "payops.duckdb"


def test_relative_db_in_payops_toml_is_taken_from_its_folder(project: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("PAYOPS_DB")
    (project / "payops.toml").write_text('[payops]\ndb = "store/ops.duckdb"\n')
    assert get_settings().db_path == project / "store" / "ops.duckdb"


def test_without_payops_toml_relative_db_is_taken_from_the_current_folder(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("PAYOPS_DB", "here.duckdb")
    path = get_settings().db_path
    assert path.is_absolute() and path == Path.cwd().resolve() / "here.duckdb"


READERS = [
    ["status"],
    ["status", "--json"],
    ["query", "SELECT 1"],
    ["export", "payments", "--out", "payments.csv"],
    ["analytics"],
    ["report", "daily", "--date", "2026-11-18"],
    ["refunds", "list"],
    [],  # bare payops shows the status
]


@pytest.mark.parametrize("args", READERS, ids=lambda a: " ".join(a) or "payops")
def test_a_command_that_only_reads_refuses_to_create_a_database(project: Path, args: list[str]):
    result = CliRunner().invoke(cli, args)
    where = project / "data" / "payops.duckdb"
    assert result.exit_code != 0, result.output
    assert f"no database at {where} (run `payops init`" in result.output
    assert "Traceback" not in result.output
    assert not where.exists() and not (project / "data").exists()
    assert not Path("data").exists() and not Path("payments.csv").exists()  # nothing in the other folder


def test_the_library_readers_refuse_too(project: Path):
    from payops import db, exports, metrics, refunds
    from payops.errors import DatabaseError

    for call in (lambda: db.query("SELECT 1"), lambda: exports.frame("payments"),
                 lambda: metrics.compute_daily(), lambda: refunds.queue()):
        with pytest.raises(DatabaseError, match="no database at /"):
            call()
    assert not (project / "data").exists()


def test_init_creates_it_where_the_anchor_says_and_readers_then_work(project: Path):
    runner = CliRunner()
    assert runner.invoke(cli, ["init"], catch_exceptions=False).exit_code == 0
    assert (project / "data" / "payops.duckdb").is_file()
    result = runner.invoke(cli, ["query", "SELECT count(*) AS n FROM charges"], catch_exceptions=False)
    assert result.exit_code == 0 and "0" in result.output


def test_status_check_exits_3_for_a_missing_or_corrupt_database(project: Path):
    runner = CliRunner()
    missing = runner.invoke(cli, ["status", "--check"])
    assert missing.exit_code == 3 and "no database at" in missing.output
    assert "KPI" not in missing.output and "OK" not in missing.output
    corrupt = project / "data" / "payops.duckdb"
    corrupt.parent.mkdir()
    corrupt.write_bytes(b"this is not a database\x00" * 500)
    broken = runner.invoke(cli, ["status", "--check"])
    assert broken.exit_code == 3, broken.output
    assert "KPI" not in broken.output and "OK" not in broken.output and "Traceback" not in broken.output


def test_a_notebook_kernel_in_another_folder_names_the_missing_file(project: Path, tmp_path: Path):
    """What a notebook run outside `make lab` meets: an error naming the file, no notebooks/data/ folder."""
    code = "import payops\ntry:\n    payops.query('SELECT 1')\nexcept payops.PayopsError as e:\n    print(e.message)\n"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert f"no database at {project / 'data' / 'payops.duckdb'}" in out.stdout
    assert not (Path.cwd() / "data").exists()


def test_writers_still_create_it(project: Path):
    with connect() as con:
        con.execute("SELECT 1")
    assert (project / "data" / "payops.duckdb").is_file()

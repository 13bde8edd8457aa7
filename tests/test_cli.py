"""Every command has help text and is documented; errors are one line."""

import click
import pytest
from click.testing import CliRunner

from payops.cli import cli


def all_commands(group=cli, prefix=()):
    for name, cmd in group.commands.items():
        path = prefix + (name,)
        yield path, cmd
        if isinstance(cmd, click.Group):
            yield from all_commands(cmd, path)


COMMANDS = sorted(all_commands(), key=lambda p: p[0])


@pytest.mark.parametrize("path", [p for p, _ in COMMANDS], ids=" ".join)
def test_every_command_has_help(path):
    result = CliRunner().invoke(cli, list(path) + ["--help"], catch_exceptions=False)
    assert result.exit_code == 0
    cmd = dict(COMMANDS)[path]
    assert cmd.help and len(cmd.help.strip()) > 10, f"payops {' '.join(path)} has no help text"


def test_every_command_is_documented(repo):
    doc = (repo / "docs" / "cli.md").read_text()
    for path, _ in COMMANDS:
        assert f"payops {' '.join(path)}" in doc, f"docs/cli.md does not document payops {' '.join(path)}"


def test_bare_payops_shows_status(empty_db):
    db_path = empty_db
    result = CliRunner().invoke(cli, [], catch_exceptions=False)
    assert result.exit_code == 0
    assert "payops status" in result.output and str(db_path) in result.output
    assert "single-user mode" in result.output


def test_status_json(empty_db):
    db_path = empty_db
    import json
    result = CliRunner().invoke(cli, ["status", "--json"], catch_exceptions=False)
    data = json.loads(result.output)
    assert data["tables"]["charges"] == 0 and data["db_path"] == str(db_path)


def test_init_is_idempotent(db_path):
    runner = CliRunner()
    first = runner.invoke(cli, ["init"], catch_exceptions=False)
    assert first.exit_code == 0
    second = runner.invoke(cli, ["init"], catch_exceptions=False)
    assert "up to date" in second.output


def test_user_error_is_one_line_not_traceback(empty_db):
    result = CliRunner().invoke(cli, ["query", "SELECT * FROM nope"], catch_exceptions=False)
    assert result.exit_code == 1
    assert result.output.startswith("Error: query failed") and "Traceback" not in result.output

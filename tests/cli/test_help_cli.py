"""Every command explains itself with examples; click's own usage errors never show a traceback."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from app.cli import cli

COMMANDS = [
    ("status",), ("set",), ("list",), ("ls",), ("test",), ("providers",), ("history",), ("show",),
    ("sessions",), ("stats",), ("export",), ("prune",), ("db",), ("import",),
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c))
def test_help_has_examples(command):
    result = CliRunner().invoke(cli, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Examples:" in result.stdout


def test_the_subcommands_are_listed():
    out = CliRunner().invoke(cli, ["--help"]).stdout
    for name in ("status", "set", "list", "ls", "test", "providers", "history", "show", "sessions", "stats",
                 "export", "prune", "db", "import"):
        assert f"  {name} " in out


def test_an_unknown_command():
    result = CliRunner().invoke(cli, ["frobnicate"])
    assert result.exit_code == 2 and "No such command 'frobnicate'" in result.stderr
    assert "Traceback" not in result.output

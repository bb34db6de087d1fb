"""provider-cli tests: run a command with click's runner against the test database."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from click.testing import CliRunner, Result

from app.cli import cli


@pytest.fixture
def run(database_url: str, tmp_path) -> Callable[..., Result]:
    """``run("history", "-l", "5")``: the command's result; stdout and stderr apart."""

    def invoke(*args: str, env: dict[str, str] | None = None, input: str | None = None) -> Result:
        full_env = {
            "DATABASE_URL": database_url, "LOG_LEVEL": "WARNING",
            "AUDIT_JOURNAL_DIR": str(tmp_path / "audit-journal"), **(env or {}),
        }
        return CliRunner().invoke(cli, args, env=full_env, input=input)

    return invoke


def failed(result: Result, message: str) -> bool:
    """The command failed the way every command fails: one ``Error:`` line on stderr, exit 1, no traceback."""
    assert result.exit_code == 1, (result.exit_code, result.output)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    assert result.stderr.startswith("Error: "), result.stderr
    assert message in result.stderr, result.stderr
    return True

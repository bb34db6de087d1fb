"""``provider-cli set``: switch the active provider from a terminal."""

from __future__ import annotations

from click.testing import CliRunner

from app.cli import cli
from app.db import get_engine
from app.services.admin.settings import get_settings


def run(database_url: str, *args: str):
    return CliRunner().invoke(cli, args, env={"DATABASE_URL": database_url, "LOG_LEVEL": "WARNING"})


def test_set_switches_the_active_provider(database_url):
    result = run(database_url, "set", "mock")
    assert (result.exit_code, result.output) == (0, "Active provider: lm-studio -> mock\n")
    assert get_settings(get_engine(database_url), default_provider="lm-studio")["active_provider"] == "mock"


def test_an_unknown_provider_exits_1_naming_the_known_ones(database_url):
    result = run(database_url, "set", "nowhere")
    assert result.exit_code == 1
    assert result.output == (
        "Error: Invalid 'active_provider': there is no provider 'nowhere'. Known providers: lm-studio, mock.\n"
    )
    assert get_settings(get_engine(database_url), default_provider="lm-studio")["active_provider"] == "lm-studio"


def test_a_bad_environment_is_one_line(database_url):
    result = CliRunner().invoke(cli, ["set", "mock"], env={"DATABASE_URL": database_url, "REQUEST_TIMEOUT": "x"})
    assert result.exit_code == 1 and result.output.startswith("Error: REQUEST_TIMEOUT must be")

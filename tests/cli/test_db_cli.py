"""``db current|upgrade|history``: Alembic from any working directory."""

from __future__ import annotations

import json

from app.migrate import current_revision, head_revision
from tests.cli.conftest import failed


def test_current_at_head(run, database_url):
    head = head_revision(database_url)
    assert run("db", "current").stdout == f"{head} (head)\n"
    assert json.loads(run("db", "current", "--json").stdout) == {"current": head, "head": head, "up_to_date": True}


def test_history_marks_the_current_revision(run, database_url):
    result = run("db", "history")
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"* {head_revision(database_url)}  ")
    assert lines[-1].startswith("  0001  ")
    data = json.loads(run("db", "history", "--json").stdout)
    assert [r["current"] for r in data].count(True) == 1


def test_upgrade_a_new_database_from_another_directory(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from app.cli import cli

    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///{tmp_path / 'new.db'}"
    env = {"DATABASE_URL": url}
    assert CliRunner().invoke(cli, ["db", "current"], env=env).stdout.startswith("none (empty database) (behind")
    result = CliRunner().invoke(cli, ["db", "upgrade"], env=env)
    assert (result.exit_code, result.stdout) == (0, f"Upgraded empty -> {head_revision(url)}.\n")
    assert current_revision(url) == head_revision(url)
    assert CliRunner().invoke(cli, ["db", "upgrade"], env=env).stdout == f"Already at head {head_revision(url)}.\n"


def test_an_unreachable_database_is_one_line(tmp_path):
    from click.testing import CliRunner

    from app.cli import cli

    url = f"sqlite:///{tmp_path / 'no-such-dir' / 'sub' / 'x.db'}"
    (tmp_path / "no-such-dir").write_text("a file, not a directory")
    result = CliRunner().invoke(cli, ["db", "current"], env={"DATABASE_URL": url})
    assert failed(result, "")


def test_a_bad_environment(run):
    assert failed(run("db", "current", env={"DATABASE_URL": "nope://"}), "Can't load plugin")

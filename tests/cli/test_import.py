"""provider-cli import: summary, --json, --dry-run, and one-line errors."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from app import migrate
from app.cli import cli
from tests.legacy_dbs import build_v1, build_v2, counts


@pytest.fixture
def run(database_url: str):
    """Invoke provider-cli against the test database."""

    def invoke(*args: str, url: str | None = None):
        return CliRunner().invoke(cli, list(args), env={"DATABASE_URL": url or database_url})

    return invoke


def test_import_prints_a_summary_and_a_second_import_adds_nothing(run, database_url: str, tmp_path: Path):
    original = build_v2(tmp_path / "v2.db")

    first = run("import", str(original))

    assert first.exit_code == 0, first.output
    lines = first.stdout.splitlines()
    assert lines[0] == f"Imported {original} (schema v2, original schema_version 2)"
    assert lines[2] == "table      read  imported  duplicates  with problems  not imported"
    assert [line.split() for line in lines[3:8]] == [
        ["sessions", "40", "40", "0", "0", "0"],
        ["requests", "120", "120", "0", "1", "0"],
        ["responses", "116", "116", "0", "0", "0"],
        ["settings", "1", "1", "0", "0", "0"],
        ["total", "277", "277", "0", "1", "0"],
    ]
    assert "openai_request is not valid JSON; kept as text" in first.stdout

    second = run("import", "--json", str(original))

    assert second.exit_code == 0, second.output
    report = json.loads(second.stdout)
    total = {"read": 277, "imported": 0, "duplicates": 277, "problems": 0, "not_imported": 0}
    assert report["total"] == total
    assert counts(database_url) == {"sessions": 40, "requests": 120, "responses": 116, "settings": 1}


def test_dry_run_reports_and_writes_nothing(run, database_url: str, tmp_path: Path):
    result = run("import", "--dry-run", "--json", "--batch-size", "7", str(build_v1(tmp_path / "v1.db")))

    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["dry_run"] is True and report["schemas"] == ["v1"]
    assert report["tables"]["request_logs"] == {
        "read": 120, "imported": 120, "duplicates": 0, "problems": 2, "not_imported": 0
    }
    assert counts(database_url) == {"sessions": 0, "requests": 0, "responses": 0, "settings": 0}


def test_a_new_database_gets_its_schema_first(run, tmp_path: Path):
    target = tmp_path / "fresh.db"
    result = run("import", str(build_v1(tmp_path / "v1.db")), url=f"sqlite:///{target}")

    assert result.exit_code == 0, result.output
    assert counts(f"sqlite:///{target}")["requests"] == 120


def _not_sqlite(tmp_path: Path) -> Path:
    path = tmp_path / "notes.db"
    path.write_text("not a database at all, just some text that is long enough to have a header\n" * 3)
    return path


def _unknown_schema(tmp_path: Path) -> Path:
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE todo (id INTEGER PRIMARY KEY, title TEXT)")
    connection.close()
    return path


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda tmp_path: tmp_path / "missing.db", "missing.db: no such file"),
        (_not_sqlite, "notes.db: not an SQLite database"),
        (_unknown_schema, "other.db: unknown schema: expected request_logs (v1) or sessions, requests and "
                          "responses (v2), found tables: todo"),
    ],
)
def test_unreadable_originals_are_one_line_errors(run, tmp_path: Path, make, message):
    result = run("import", str(make(tmp_path)))

    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.startswith("Error: ") and message in result.stderr
    assert "Traceback" not in result.output and len(result.stderr.splitlines()) == 1


def test_our_own_database_is_refused(run, database_url: str, sqlite_template: str):
    result = run("import", sqlite_template)

    assert result.exit_code == 1
    assert "this is a provider-router database, not one of the original Node gateway" in result.stderr


def test_a_target_behind_head_is_refused_with_the_fix(run, tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    migrate.upgrade(url, "0001")

    result = run("import", str(build_v1(tmp_path / "v1.db")), url=url)

    assert result.exit_code == 1
    assert result.stderr.startswith("Error: the database schema is at revision 0001")
    assert "alembic upgrade head" in result.stderr

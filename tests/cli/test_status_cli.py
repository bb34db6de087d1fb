"""``status``: the active provider and whether it answers, the schema, row counts."""

from __future__ import annotations

import json

import responses

from app.migrate import head_revision
from app.models import now_ms
from tests.cli.conftest import failed
from tests.factories import make_call, make_session


def test_status_of_a_reachable_active_provider(run, database_url, db_session):
    make_call(db_session, make_session(db_session, "s"), timestamp=now_ms())
    db_session.commit()
    assert run("set", "mock").exit_code == 0
    result = run("status")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("Active provider: mock  mock://local  reachable (")
    assert lines[2] == f"Schema:          {head_revision(database_url)} (head)"
    assert lines[3] == "Rows:            1 sessions, 1 requests, 1 responses"


@responses.activate
def test_status_of_an_unreachable_provider_json(run):
    responses.get("http://localhost:1234/v1/models", status=503)
    data = json.loads(run("status", "--json").stdout)
    assert (data["active_provider"], data["reachable"]) == ("lm-studio", False)
    assert data["rows"] == {"sessions": 0, "requests": 0, "responses": 0}
    assert data["error"]


def test_status_of_an_old_schema(tmp_path):
    from click.testing import CliRunner

    from app.cli import cli
    from app.migrate import upgrade

    url = f"sqlite:///{tmp_path / 'old.db'}"
    upgrade(url, "0001")
    result = CliRunner().invoke(cli, ["status"], env={"DATABASE_URL": url})
    assert failed(result, "run `provider-cli db upgrade`")

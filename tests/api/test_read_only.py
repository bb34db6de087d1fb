"""A read-only instance: on a database that takes no writes, history reads are served and writes refused.

The database is made read-only as a hot standby is to its clients (``default_transaction_read_only``:
every transaction is READ ONLY, an INSERT fails with SQLSTATE 25006); tests/e2e/test_replica_e2e.py
runs the same instance on a real standby.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from sqlalchemy.orm import Session

from app import create_app, migrate
from app.cli import cli
from app.config import PROJECT_ROOT, Settings
from app.db import dispose_engines, get_engine
from app.db.read_only import forget
from app.models import UsageRollupDay, now_ms
from app.services.search.indexer import SearchIndexer
from tests.conftest import PG_URL
from tests.factories import DAY_MS, make_call, make_session

pytestmark = pytest.mark.postgres

DAY0 = now_ms() // DAY_MS * DAY_MS - 5 * DAY_MS  # five whole past days, then today


def _settings(url: str, tmp_path, **env: str) -> Settings:
    return Settings.from_env({"DATABASE_URL": url, "LOG_LEVEL": "WARNING", "SEARCH_INDEXER": "false",
                              "AUDIT_JOURNAL_DIR": str(tmp_path / "journal"), **env})


def _set_read_only(url: str, on: bool) -> None:
    """As a standby is to its clients: every new transaction READ ONLY (pooled connections are dropped)."""
    name = sa.make_url(url).database
    admin = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'ALTER DATABASE "{name}" SET default_transaction_read_only = {str(on).lower()}'))
    admin.dispose()
    dispose_engines()
    forget()


@pytest.fixture(scope="module")
def primary(pg_url: str, tmp_path_factory) -> Iterator[dict]:
    """A database of its own, written as a primary's gateway writes it, then turned read-only; its URL."""
    name = f"provider_router_ro_{os.getpid()}"
    admin = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.make_url(pg_url).set(database=name).render_as_string(hide_password=False)
    migrate.upgrade(url)
    tmp = tmp_path_factory.mktemp("primary")
    writer = create_app(_settings(url, tmp))  # seeds the providers, as a primary's gateway does
    with Session(get_engine(url)) as db:
        for day in range(6):  # five past days and today, two sessions
            session = make_session(db, f"s{day % 2}-{day}", created_at=DAY0 + day * DAY_MS)
            for n in range(day + 1):
                make_call(db, session, timestamp=DAY0 + day * DAY_MS + 60_000 * (n + 1),
                          model="gpt-4o" if n % 2 else "qwen", duration_ms=100 + n)
        db.commit()
    assert SearchIndexer(url).run_once() == 21  # the primary's indexer
    # The primary's dashboard rolled up days 0-2; a call then arrived late on day 1 (an import).
    report = writer.test_client().get(f"/v1/stats/usage?start_date={DAY0}&end_date={DAY0 + 3 * DAY_MS - 1}")
    assert report.status_code == 200
    with Session(get_engine(url)) as db:
        make_call(db, make_session(db, "late", created_at=DAY0 + DAY_MS), timestamp=DAY0 + DAY_MS + 5_000)
        db.commit()
    writer.extensions["gateway"].stop_background()
    _set_read_only(url, True)
    yield {"url": url, "tmp": tmp}
    _set_read_only(url, False)
    with admin.connect() as connection:
        connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="module")
def replica(primary: dict):
    """The gateway started on the read-only database."""
    app = create_app(_settings(primary["url"], primary["tmp"]))
    yield app.test_client()
    app.extensions["gateway"].stop_background()


def test_it_starts_read_only_and_says_so(primary, caplog):
    with caplog.at_level(logging.WARNING, logger="app"):
        app = create_app(_settings(primary["url"], primary["tmp"]))
    assert app.extensions["gateway"].settings.read_only
    assert app.extensions["gateway"].chat.audit is None  # no audit writer, drainer or sweep
    assert "read-only instance: the database is read-only (transaction_read_only is on)" in caplog.text
    assert app.test_client().get("/health").get_json()["read_only"] is True


def test_history_reads_are_served(replica):
    page = replica.get("/v1/requests?limit=100").get_json()
    assert len(page["data"]) == 22
    one = page["data"][0]
    assert replica.get(f"/v1/requests/{one['id']}").status_code == 200
    assert replica.get(f"/v1/requests/{one['id']}/response").status_code == 200
    assert len(replica.get("/v1/sessions?limit=100").get_json()["data"]) == 7
    assert replica.get("/v1/sessions/s1-5/requests").get_json()["data"][0]["session_id"] == "s1-5"
    assert replica.get("/v1/sessions/s1-5/stats").get_json()["usage"]["total_responses"] == 6
    assert len(replica.get("/v1/requests?q=hello&limit=100").get_json()["data"]) == 21  # the late one unindexed
    assert replica.get("/v1/responses/stats").get_json()["statistics"]["total_responses"] == 22


def test_usage_takes_the_primarys_current_rollups_and_computes_the_rest_live_without_writing(replica, primary):
    usage = f"/v1/stats/usage?start_date={DAY0}&group_by=day"
    report = replica.get(usage).get_json()
    # Days 0 and 2 from the rollups; day 1 (stale: the late call), days 3-4 (never rolled up) and today live.
    assert [group["requests"] for group in report["data"]] == [6, 5, 4, 3, 3, 1]
    live = replica.get(usage + "&endpoint=chat").get_json()  # a filter the rollups cannot answer: all live
    assert (report["totals"], report["data"]) == (live["totals"], live["data"])
    with Session(get_engine(primary["url"])) as db:
        assert db.scalar(sa.select(sa.func.count()).select_from(UsageRollupDay)) == 3


def test_the_dashboard_reads_are_served(replica):
    for page in ("/ui/", "/ui/calls", "/ui/keys", "/ui/providers", "/ui/sessions/s0-4", "/ui/calls/export.csv"):
        assert replica.get(page).status_code == 200, page
    assert "read-only instance" in replica.get("/ui/").get_data(as_text=True)
    assert replica.get("/ui/calls/export.jsonl").get_data(as_text=True).count("\n") == 22


@pytest.mark.parametrize(("method", "path", "body"), [
    ("POST", "/v1/chat/completions", {"model": "qwen", "messages": [{"role": "user", "content": "hi"}]}),
    ("POST", "/v1/responses", {"model": "qwen", "input": "hi"}),
    ("PUT", "/v1/settings/active_provider", {"value": "lm-studio"}),
    ("POST", "/v1/providers", {"name": "x", "type": "openai", "base_url": "http://127.0.0.1:9/v1"}),
    ("POST", "/v1/keys", {"name": "team"}),
    ("DELETE", "/v1/sessions", None),
    ("DELETE", "/v1/requests/1", None),
])
def test_whatever_would_write_gets_one_clear_error(replica, method, path, body):
    reply = replica.open(path, method=method, json=body)
    assert reply.status_code == 503
    error = reply.get_json()["error"]
    assert (error["type"], error["code"]) == ("api_error", "read_only_instance")
    assert "read-only" in error["message"] and "primary" in error["message"]


def test_a_dashboard_change_gets_the_error_page(replica):
    reply = replica.post("/ui/providers/active", data={"name": "lm-studio"})
    assert reply.status_code == 503
    assert "read-only" in reply.get_data(as_text=True)


def test_a_write_reaching_a_database_turned_read_only_under_a_running_gateway_is_the_same_error(
    primary, tmp_path
):
    _set_read_only(primary["url"], False)
    try:
        app = create_app(_settings(primary["url"], tmp_path))  # writable when it started
        assert "read-only instance" not in app.test_client().get("/ui/").get_data(as_text=True)
        _set_read_only(primary["url"], True)  # then demoted: its new connections are read-only
        reply = app.test_client().delete("/v1/requests/1")
        app.extensions["gateway"].stop_background()
    finally:
        _set_read_only(primary["url"], True)
    assert reply.status_code == 503
    assert reply.get_json()["error"]["code"] == "read_only_instance"


def test_read_only_true_keeps_a_writable_database_untouched(primary, tmp_path):
    _set_read_only(primary["url"], False)
    try:
        app = create_app(_settings(primary["url"], tmp_path, READ_ONLY="true"))
        client = app.test_client()
        assert client.delete("/v1/sessions").get_json()["error"]["code"] == "read_only_instance"
        assert client.get(f"/v1/stats/usage?start_date={DAY0}").get_json()["totals"]["requests"] == 22
        with Session(get_engine(primary["url"])) as db:
            assert db.scalar(sa.select(sa.func.count()).select_from(UsageRollupDay)) == 3
        app.extensions["gateway"].stop_background()
    finally:
        _set_read_only(primary["url"], True)


def test_provider_cli_reads_a_read_only_database(primary, tmp_path):
    env = {"DATABASE_URL": primary["url"], "LOG_LEVEL": "WARNING", "AUDIT_JOURNAL_DIR": str(tmp_path / "journal")}
    stats = CliRunner().invoke(cli, ["stats", "--by", "day", "--json"], env=env)
    assert stats.exit_code == 0, stats.output
    assert json.loads(stats.stdout)["totals"]["requests"] == 22
    history = CliRunner().invoke(cli, ["history", "--json"], env=env)
    assert history.exit_code == 0, history.output


def _check(url: str) -> subprocess.CompletedProcess:
    """``python -m app check``, what gunicorn runs once before forking its workers."""
    return subprocess.run([sys.executable, "-m", "app", "check"], capture_output=True, text=True, cwd=PROJECT_ROOT,
                          env={"DATABASE_URL": url, "PATH": os.environ.get("PATH", "")})


def test_the_start_up_check_says_read_only_once(primary):
    result = _check(primary["url"])
    assert result.returncode == 0, result.stderr
    assert "provider-router: read-only instance: the database is read-only" in result.stderr


def test_a_read_only_database_without_the_schema_stops_start_up_with_one_line(primary):
    empty = sa.make_url(primary["url"]).set(database=f"provider_router_ro_empty_{os.getpid()}")
    admin = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{empty.database}"'))
    try:
        url = empty.render_as_string(hide_password=False)
        _set_read_only(url, True)
        result = _check(url)
    finally:
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE "{empty.database}" WITH (FORCE)'))
        admin.dispose()
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "provider-router: the database is read-only and holds no provider-router schema: start a gateway on the "
        "primary first (it creates the schema), then this one on its replica"
    )


def test_a_database_that_cannot_be_asked_is_taken_as_writable_and_asked_again(caplog):
    """A worker booting while its database is away must boot (the journal keeps the calls meanwhile)."""
    from app.db import read_only

    engine = sa.create_engine("postgresql+psycopg://postgres@127.0.0.1:1/away")
    with caplog.at_level(logging.WARNING, logger="app.db.read_only"):
        assert read_only.read_only_reason(engine) is None
    assert "could not ask the database whether it takes writes (OperationalError)" in caplog.text
    assert engine.url not in read_only._found  # asked again next time
    engine.dispose()

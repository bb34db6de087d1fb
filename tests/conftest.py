"""Shared fixtures: a migrated database on SQLite and PostgreSQL, the app, its client."""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from app import create_app, migrate
from app.config import Settings
from app.db import create_engine, dispose_engines, get_engine
from app.models import Base, Request
from app.services.audit.group_commit import stop_all
from tests.faults import TcpProxy

PG_URL = os.environ.get("TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI", "").lower() == "true"


def _postgres_unreachable(url: str) -> str | None:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001 - any failure means "not reachable"
        return f"PostgreSQL not reachable at {sa.make_url(url).render_as_string()}: {type(exc).__name__}"
    finally:
        engine.dispose()
    return None


@pytest.fixture(scope="session")
def pg_url(worker_id: str) -> Iterator[str]:
    """A database of this test worker's own on the PostgreSQL server, at head."""
    reason = _postgres_unreachable(PG_URL)
    if reason:
        if IN_CI:
            pytest.fail(f"{reason} (CI=true: PostgreSQL tests must run)")
        pytest.skip(f"{reason}; set TEST_DATABASE_URL to run the PostgreSQL tests")
    # Unique per process: concurrent runs (other checkouts, CI) must never drop each other's database.
    name = f"provider_router_test_{worker_id}_{os.getpid()}"
    admin = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    migrate.upgrade(url)
    yield url
    dispose_engines()
    with admin.connect() as connection:
        connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def pg_proxy(pg_url: str) -> Iterator[tuple[TcpProxy, str]]:
    """(a TCP proxy in front of the test database, emptied; the database's URL through it)."""
    _empty_tables(pg_url)
    url = sa.make_url(pg_url)
    proxy = TcpProxy((url.host, url.port or 5432))
    yield proxy, url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    proxy.close()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> str:
    """An SQLite file at head, copied for each test (faster than migrating each time)."""
    path = tmp_path_factory.mktemp("template") / "template.db"
    migrate.upgrade(f"sqlite:///{path}")
    dispose_engines()
    return str(path)


def _empty_tables(url: str) -> None:
    # Rows still queued by earlier tests' apps are written first: their writers must not
    # hold locks on these tables while they are truncated.
    stop_all()
    tables = ", ".join(f'"{table.name}"' for table in Base.metadata.sorted_tables)
    for attempt in range(5):
        try:
            with get_engine(url).begin() as connection:
                connection.execute(sa.text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
            return
        except sa.exc.OperationalError:  # a deadlock with a straggling background writer
            if attempt == 4:
                raise
            time.sleep(0.2)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path, sqlite_template: str) -> Iterator[str]:
    """A database at head with no rows, once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        path = tmp_path / "gateway.db"
        shutil.copyfile(sqlite_template, path)
        url = f"sqlite:///{path}"
    else:
        url = request.getfixturevalue("pg_url")
        _empty_tables(url)
    yield url
    dispose_engines()


@pytest.fixture
def make_settings(database_url: str, tmp_path) -> Callable[..., Settings]:
    """Settings on the test database (its audit journal in the test's own directory); keywords override fields."""

    def make(**overrides) -> Settings:
        # No background indexer unless a test asks: search tests index with run_once, in step.
        base = Settings.from_env({
            "DATABASE_URL": database_url, "LOG_LEVEL": "WARNING", "SEARCH_INDEXER": "false",
            "AUDIT_JOURNAL_DIR": str(tmp_path / "audit-journal"),
        })
        return dataclasses.replace(base, **overrides)

    return make


@pytest.fixture
def settings(make_settings) -> Settings:
    return make_settings()


@pytest.fixture
def app(settings: Settings):
    app = create_app(settings)
    yield app
    app.extensions["gateway"].stop_background()  # queued rows written, the journal closed, the indexer stopped


@pytest.fixture
def flush_audit(app) -> Callable[[], None]:
    """Wait until the app's queued audit rows are written (responses are written after the reply)."""

    def flush() -> None:
        audit = app.extensions["gateway"].chat.audit
        if audit is not None:
            audit.flush()

    return flush


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def db_session(database_url: str) -> Iterator[Session]:
    """An ORM session on the test database, for reading what the gateway wrote."""
    with Session(get_engine(database_url)) as session:
        yield session


@pytest.fixture(autouse=True)
def _app_log_level():
    """An app built with LOG_LEVEL=ERROR (even by a module's fixture) must not silence the
    warnings a later test checks for: every test starts with the app's loggers at their default."""
    logging.getLogger("app").setLevel(logging.NOTSET)
    yield


ENDPOINT_CALLS = {  # one call of each non-chat kind, through the gateway to the mock provider, in one session
    "completion": ("/v1/completions", {"prompt": "Summarise the harbour report"}),
    "completion_stream": ("/v1/completions", {"prompt": ["Lighthouse keeper log", "Tide table"], "stream": True}),
    "response": ("/v1/responses", {
        "instructions": "You are a ferry timetable clerk.",
        "input": [{"role": "user", "content": [{"type": "input_text", "text": "When does the night ferry leave?"}]}],
        "tools": [{"type": "function", "name": "ferry_times", "parameters": {
            "type": "object", "properties": {"route": {"type": "string"}}, "required": ["route"]}}],
    }),
    "response_stream": ("/v1/responses", {"stream": True, "instructions": "You are a ferry timetable clerk.", "input": [
        {"role": "user", "content": "When does the night ferry leave?"},
        {"type": "function_call", "call_id": "call_ferry", "name": "ferry_times", "arguments": '{"route":"night"}'},
        {"type": "function_call_output", "call_id": "call_ferry", "output": "23:40 from pier 4"},
    ]}),
    "embeddings": ("/v1/embeddings", {"input": ["glacier melt rates", "fjord depth survey"]}),
}


@pytest.fixture
def endpoint_calls(client, flush_audit, db_session) -> dict[str, int]:
    """The calls of ``ENDPOINT_CALLS`` as the gateway recorded them: their request ids by name."""
    for path, body in ENDPOINT_CALLS.values():
        reply = client.post(path, json={"model": "mock/mock-chat", **body}, headers={"X-Session-Id": "endpoints"})
        assert reply.status_code == 200, reply.get_data(as_text=True)
        reply.get_data()  # a stream is recorded once it is read to its end
    flush_audit()
    ids = db_session.scalars(sa.select(Request.id).order_by(Request.id)).all()
    assert len(ids) == len(ENDPOINT_CALLS)
    return dict(zip(ENDPOINT_CALLS, ids, strict=True))

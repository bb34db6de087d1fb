"""PostgreSQL with a gateway role that may not create pg_trgm: what the README promises.

The migration logs a warning and goes on without the trigram index; searches read every row and
give the same answers; once a superuser has created the extension, `provider-cli search
accelerate` (run as the same role) adds the index.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from app import create_app, migrate
from app.cli import cli
from app.config import PROJECT_ROOT, Settings
from app.db import dispose_engines, get_engine
from app.services.search.indexer import SearchIndexer
from tests.conftest import PG_URL

pytestmark = pytest.mark.postgres

REFUSED = 'content search: pg_trgm is not available (permission denied to create extension "pg_trgm")'
# Through the mock provider, which answers with the last user message.
MESSAGES = {
    "overdue": "Invoice 4471 is overdue since March",
    "paid": "Invoice 4472 was paid in March",
    "books": "Three library books are overdue",
    "chinese": "请把这张发票翻译成英文",
}
ANSWERS = {
    "invoice overdue": {"overdue"},
    "4471": {"overdue"},
    '"invoice 4472"': {"paid"},
    '"overdue invoice"': set(),
    "march": {"overdue", "paid"},
    "OVERDUE": {"overdue", "books"},
    "发票": {"chinese"},  # two characters: under a trigram
    "invoice books": set(),
}


@dataclass(frozen=True, slots=True)
class Unprivileged:
    url: str  # the gateway's role: it may create tables in public, not extensions
    admin_url: str  # postgres, on the same database


@pytest.fixture
def unprivileged(pg_url: str, worker_id: str) -> Iterator[Unprivileged]:
    """A fresh database owned by postgres and a login role without its CREATE privilege."""
    suffix = f"{worker_id}_{os.getpid()}"  # per process: other checkouts share the server
    database, role = f"provider_router_nopriv_{suffix}", f"provider_router_gateway_{suffix}"
    server = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with server.connect() as connection:
        connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
        connection.execute(sa.text(f'DROP ROLE IF EXISTS "{role}"'))
        connection.execute(sa.text(f'CREATE ROLE "{role}" LOGIN'))
        connection.execute(sa.text(f'CREATE DATABASE "{database}"'))
        # pg_trgm is a trusted extension (PostgreSQL 13+): the database's CREATE privilege decides.
        connection.execute(sa.text(f'REVOKE CREATE ON DATABASE "{database}" FROM PUBLIC, "{role}"'))
        connection.execute(sa.text(f'GRANT CONNECT ON DATABASE "{database}" TO "{role}"'))
    admin_url = sa.make_url(PG_URL).set(database=database)
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'GRANT USAGE, CREATE ON SCHEMA public TO "{role}"'))
    admin.dispose()
    yield Unprivileged(
        url=admin_url.set(username=role).render_as_string(hide_password=False),
        admin_url=admin_url.render_as_string(hide_password=False),
    )
    dispose_engines()
    with server.connect() as connection:
        connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
        connection.execute(sa.text(f'DROP ROLE IF EXISTS "{role}"'))
    server.dispose()


def _as_superuser(db: Unprivileged, *statements: str) -> list[tuple]:
    """Run the statements as postgres on the test's database; the last one's rows."""
    engine = sa.create_engine(db.admin_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            for sql in statements:
                result = connection.exec_driver_sql(sql)
            return [tuple(row) for row in result] if result.returns_rows else []
    finally:
        engine.dispose()


def _trigram_index(db: Unprivileged) -> bool:
    return bool(_as_superuser(db, "SELECT 1 FROM pg_indexes WHERE indexname = 'ix_search_docs_body_trgm'"))


def _found(client, names: dict[int, str], query: str) -> set[str]:
    reply = client.get("/v1/requests", query_string={"q": query, "limit": 100})
    assert reply.status_code == 200, reply.get_json()
    body = reply.get_json()
    assert body["total"] == len(body["data"])
    return {names[row["id"]] for row in body["data"]}


def test_without_create_privilege_the_migration_warns_searches_answer_and_accelerate_adds_the_index(
    unprivileged: Unprivileged, tmp_path, caplog
):
    with pytest.raises(sa.exc.ProgrammingError, match='permission denied to create extension "pg_trgm"'):
        with get_engine(unprivileged.url).begin() as connection:
            connection.exec_driver_sql("CREATE EXTENSION pg_trgm")
    env = {"DATABASE_URL": unprivileged.url, "LOG_LEVEL": "WARNING", "SEARCH_INDEXER": "false",
           "AUDIT_JOURNAL_DIR": str(tmp_path / "journal")}

    with caplog.at_level(logging.WARNING):
        app = create_app(Settings.from_env(env))  # the first start creates the schema, as that role
    try:
        warnings = [record for record in caplog.records if REFUSED in record.getMessage()]
        assert [record.levelno for record in warnings] == [logging.WARNING]
        assert "then `provider-cli search accelerate`" in warnings[0].getMessage()
        assert migrate.current_revision(unprivileged.url) == migrate.head_revision(unprivileged.url)
        assert not _trigram_index(unprivileged)
        assert _as_superuser(unprivileged, "SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm'") == []

        client = app.test_client()
        for text in MESSAGES.values():
            reply = client.post("/v1/chat/completions", json={
                "model": "mock/mock-chat", "messages": [{"role": "user", "content": text}]})
            assert reply.status_code == 200, reply.get_json()
        app.extensions["gateway"].chat.audit.flush()
        assert SearchIndexer(unprivileged.url).run_once() == len(MESSAGES)
        rows = client.get("/v1/requests", query_string={"order": "asc"}).get_json()["data"]
        names = dict(zip((row["id"] for row in rows), MESSAGES, strict=True))
        assert {query: _found(client, names, query) for query in ANSWERS} == ANSWERS

        run = CliRunner()
        status = run.invoke(cli, ["search", "status"], env=env)
        assert "No trigram index (pg_trgm missing)" in status.stdout
        refused = run.invoke(cli, ["search", "accelerate"], env=env)
        assert refused.exit_code == 1
        assert refused.stderr.startswith("Error: database error: permission denied to create extension")

        _as_superuser(unprivileged, "CREATE EXTENSION pg_trgm")  # what the README asks of a superuser
        accelerated = run.invoke(cli, ["search", "accelerate"], env=env)  # then the gateway's role
        assert (accelerated.exit_code, accelerated.stdout) == (0, "Trigram index in place.\n")
        assert _trigram_index(unprivileged)
        assert "No trigram index" not in run.invoke(cli, ["search", "status"], env=env).stdout
        assert {query: _found(client, names, query) for query in ANSWERS} == ANSWERS
        plan = _as_superuser(unprivileged, "SET enable_seqscan = off",
                             "EXPLAIN SELECT request_id FROM search_docs WHERE body LIKE '%%4471%%'")
        assert "ix_search_docs_body_trgm" in " ".join(line for (line,) in plan)
    finally:
        app.extensions["gateway"].stop_background()


@pytest.mark.parametrize("command", [
    ("-m", "app", "check"),  # what gunicorn runs before it starts the workers
    ("-c", "from app.cli import main; main()", "db", "upgrade"),
], ids=["app-check", "provider-cli-db-upgrade"])
def test_a_first_start_outside_the_gateway_prints_the_warning(unprivileged: Unprivileged, tmp_path, command):
    env = {**os.environ, "DATABASE_URL": unprivileged.url, "AUDIT_JOURNAL_DIR": str(tmp_path / "journal")}
    result = subprocess.run([sys.executable, *command], cwd=PROJECT_ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert migrate.current_revision(unprivileged.url) == migrate.head_revision(unprivileged.url)
    assert REFUSED in result.stderr
    assert "then `provider-cli search accelerate`" in result.stderr

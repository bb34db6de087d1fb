"""Migrations: up and down on empty databases, head equal to the models, data kept across revisions."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from app import migrate
from app.config import PROJECT_ROOT
from app.db import dispose_engines, get_engine
from app.models import Base
from app.models.search import include_name
from app.services.search import index

APP_TABLES = {"sessions", "requests", "responses", "settings"}


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path, worker_id: str) -> Iterator[str]:
    """A database with no tables at all, once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        dispose_engines()
        return
    pg_url = request.getfixturevalue("pg_url")  # skips when PostgreSQL is unreachable
    # Per process: other checkouts may run this suite against the same server at once.
    name = f"provider_router_migrations_{worker_id}_{os.getpid()}"
    admin = sa.create_engine(pg_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    yield sa.make_url(pg_url).set(database=name).render_as_string(hide_password=False)
    dispose_engines()
    with admin.connect() as connection:
        connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


# A call's rows as raw SQL, so that any revision can take them: only the columns all revisions have.
SESSION = {"id": "s1", "message_count": 1, "created_at": 1000, "last_accessed": 2000, "expires_at": 3000}
REQUEST = {"session_id": "s1", "request_id": "r-1", "timestamp": 1000, "method": "POST",
           "path": "/v1/chat/completions", "provider": "p", "model": "m", "stream": False, "created_at": 1000}
RESPONSE = {"session_id": "s1", "response_id": "p-1", "timestamp": 1500, "usage_estimated": False,
            "status": "ok", "client_disconnected": False, "created_at": 1500}


def _insert(connection, table: str, values: dict[str, Any]) -> Any:
    """Insert one row; answer its id."""
    columns, params = ", ".join(values), ", ".join(f":{name}" for name in values)
    return connection.execute(
        sa.text(f"INSERT INTO {table} ({columns}) VALUES ({params}) RETURNING id"), values
    ).scalar_one()


def _tables(url: str) -> set[str]:
    return set(sa.inspect(get_engine(url)).get_table_names())


def test_revision_files_are_date_prefixed_and_chained_to_one_head():
    versions = PROJECT_ROOT / "alembic" / "versions"
    names = sorted(path.name for path in versions.glob("*.py"))
    assert names and all(re.fullmatch(r"\d{8}_\d{4}_[a-z0-9_]+\.py", name) for name in names), names
    script = ScriptDirectory.from_config(migrate.alembic_config("sqlite://"))
    assert len(script.get_heads()) == 1


def test_upgrade_downgrade_upgrade(empty_url: str):
    head = migrate.head_revision(empty_url)
    migrate.upgrade(empty_url)
    assert migrate.current_revision(empty_url) == head
    assert APP_TABLES <= _tables(empty_url)

    migrate.downgrade(empty_url, "base")
    assert migrate.current_revision(empty_url) is None
    assert _tables(empty_url) & APP_TABLES == set()

    migrate.upgrade(empty_url)
    assert migrate.current_revision(empty_url) == head
    assert APP_TABLES <= _tables(empty_url)


def test_head_equals_the_models(empty_url: str):
    migrate.upgrade(empty_url)
    with get_engine(empty_url).connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True, "include_name": include_name})
        assert compare_metadata(context, Base.metadata) == []


def test_rows_written_at_0001_survive_0003_and_its_downgrade(empty_url: str):
    migrate.upgrade(empty_url, "0001")
    engine = get_engine(empty_url)
    with engine.begin() as connection:
        _insert(connection, "sessions", {**SESSION, "message_count": 2, "chat_id": "chat-1"})
        request_id = _insert(connection, "requests", {
            **REQUEST, "openai_request": '{"model": "m"}', "provider": "lm-studio", "stream": True,
        })
        _insert(connection, "responses", {
            **RESPONSE, "request_id": request_id, "prompt_tokens": 0, "status_code": 200,
        })

    migrate.upgrade(empty_url, "0003")
    with engine.connect() as connection:
        session = connection.execute(sa.text(
            "SELECT chat_id, message_count, retained, legacy_source, legacy_id FROM sessions"
        )).one()
        assert tuple(session) == ("chat-1", 2, False, None, None)
        request = connection.execute(sa.text(
            "SELECT request_id, openai_request, stream, legacy_id FROM requests"
        )).one()
        assert tuple(request) == ("r-1", '{"model": "m"}', True, None)
        response = connection.execute(sa.text(
            "SELECT request_id, prompt_tokens, status_code, legacy_source FROM responses"
        )).one()
        assert tuple(response) == (request_id, 0, 200, None)

    # SQLite's batch downgrade copies tables: no cascade may empty the children on the way.
    migrate.downgrade(empty_url, "0001")
    with engine.connect() as connection:
        counts = [connection.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one()
                  for table in ("sessions", "requests", "responses")]
        assert counts == [1, 1, 1]
        columns = {column["name"] for column in sa.inspect(connection).get_columns("requests")}
        assert "legacy_id" not in columns
        if connection.dialect.name == "sqlite":
            assert connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall() == []
            assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


def test_legacy_ids_are_unique_per_source_and_absent_for_gateway_rows(database_url: str):
    engine = get_engine(database_url)
    row = {"message_count": 0, "created_at": 1, "last_accessed": 1, "expires_at": 1}
    with engine.begin() as connection:
        for session_id in ("live-1", "live-2"):
            _insert(connection, "sessions", {**row, "id": session_id, "legacy_source": None, "legacy_id": None})
        _insert(connection, "sessions", {**row, "id": "a", "legacy_source": "node-v1", "legacy_id": "x"})
        _insert(connection, "sessions", {**row, "id": "b", "legacy_source": "node-v2", "legacy_id": "x"})
        assert connection.execute(sa.text("SELECT count(*) FROM sessions WHERE NOT retained")).scalar() == 4
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as connection:
        _insert(connection, "sessions", {**row, "id": "c", "legacy_source": "node-v1", "legacy_id": "x"})
    # Partial, so the hot path's own rows (NULL) cost no write to it.
    for table in ("sessions", "requests", "responses"):
        (index,) = [index for index in sa.inspect(engine).get_indexes(table) if "legacy" in index["name"]]
        where = index["dialect_options"][f"{engine.dialect.name}_where"]
        assert index["unique"] and "legacy_id IS NOT NULL" in str(where)


def test_0006_copies_each_requests_model_onto_its_response_and_back_out(empty_url: str):
    migrate.upgrade(empty_url, "0005")
    engine = get_engine(empty_url)
    with engine.begin() as connection:
        _insert(connection, "sessions", SESSION)
        for number, model in ((1, "gpt-4o"), (2, "qwen-max")):
            request_id = _insert(connection, "requests", {**REQUEST, "request_id": f"r-{number}", "model": model})
            _insert(connection, "responses", {
                **RESPONSE, "request_id": request_id, "response_id": f"p-{number}", "status": "error",
            })

    migrate.upgrade(empty_url, "0006")
    with engine.connect() as connection:
        copied = connection.execute(sa.text(
            "SELECT responses.model, requests.model FROM responses JOIN requests ON requests.id = responses.request_id"
        )).all()
        assert sorted(copied) == [("gpt-4o", "gpt-4o"), ("qwen-max", "qwen-max")]

    migrate.downgrade(empty_url, "0005")
    with engine.connect() as connection:
        assert "model" not in {column["name"] for column in sa.inspect(connection).get_columns("responses")}
        assert connection.execute(sa.text("SELECT count(*) FROM responses")).scalar_one() == 2


def test_0007_drops_the_second_path_from_responses_to_sessions_but_keeps_rows_and_cascades(empty_url: str):
    migrate.upgrade(empty_url, "0006")
    engine = get_engine(empty_url)
    with engine.begin() as connection:
        _insert(connection, "sessions", SESSION)
        request_id = _insert(connection, "requests", REQUEST)
        _insert(connection, "responses", {**RESPONSE, "request_id": request_id, "model": "m"})

    migrate.upgrade(empty_url, "0007")
    with engine.begin() as connection:
        inspector = sa.inspect(connection)
        assert [fk["referred_table"] for fk in inspector.get_foreign_keys("responses")] == ["requests"]
        assert "ix_responses_session_id" not in {index["name"] for index in inspector.get_indexes("responses")}
        assert connection.execute(sa.text("SELECT session_id FROM responses")).scalar_one() == "s1"
        # The gateway's engines run SQLite with foreign keys on: the cascade goes through the request.
        connection.execute(sa.text("DELETE FROM sessions WHERE id = 's1'"))
        assert connection.execute(sa.text("SELECT count(*) FROM responses")).scalar_one() == 0

    migrate.downgrade(empty_url, "0006")
    with engine.connect() as connection:
        assert "ix_responses_session_id" in {index["name"] for index in sa.inspect(connection).get_indexes("responses")}


def _storage_of_responses(connection) -> Any:
    """Where the responses table's rows live: a rebuilt (copied) table gets a new place."""
    if connection.dialect.name == "sqlite":
        return connection.execute(sa.text("SELECT rootpage FROM sqlite_master WHERE name = 'responses'")).scalar_one()
    return connection.execute(sa.text("SELECT relfilenode FROM pg_class WHERE relname = 'responses'")).scalar_one()


def test_0008_lets_a_call_end_interrupted_without_copying_the_table_and_back(empty_url: str):
    migrate.upgrade(empty_url, "0007")
    engine = get_engine(empty_url)
    with engine.connect() as connection:
        storage = _storage_of_responses(connection)
    with engine.begin() as connection:
        _insert(connection, "sessions", SESSION)
        first = _insert(connection, "requests", REQUEST)
        kept = _insert(connection, "responses", {**RESPONSE, "request_id": first, "model": "m"})
        with pytest.raises(sa.exc.IntegrityError), connection.begin_nested():
            _insert(connection, "responses", {**RESPONSE, "request_id": first, "status": "interrupted"})

    migrate.upgrade(empty_url, "0008")
    with engine.begin() as connection:
        assert _storage_of_responses(connection) == storage  # widened in place: no copy of a big table
        assert connection.execute(sa.text("SELECT id FROM responses")).scalar_one() == kept
        second = _insert(connection, "requests", {**REQUEST, "request_id": "r-2", "worker_id": "w1"})
        _insert(connection, "responses", {**RESPONSE, "request_id": second, "response_id": "p-2",
                                          "status": "interrupted", "repaired": "response.error: NUL escaped"})
        with pytest.raises(sa.exc.IntegrityError), connection.begin_nested():
            _insert(connection, "responses", {**RESPONSE, "request_id": second, "response_id": "p-3",
                                              "status": "vanished"})
        assert _tables(empty_url) >= {"audit_workers"}

    migrate.downgrade(empty_url, "0007")
    with engine.connect() as connection:
        statuses = connection.execute(sa.text("SELECT status, error FROM responses ORDER BY id")).all()
        assert [status for status, _ in statuses] == ["ok", "incomplete"]
        assert statuses[1][1].startswith("interrupted")
        assert "worker_id" not in {column["name"] for column in sa.inspect(connection).get_columns("requests")}
    assert "audit_workers" not in _tables(empty_url)
    migrate.upgrade(empty_url, "head")


def test_0013_drops_the_empty_docs_of_non_chat_calls_and_reindex_writes_their_text(empty_url: str):
    migrate.upgrade(empty_url, "0012")
    engine = get_engine(empty_url)
    bodies = {
        "/v1/chat/completions": {"messages": [{"role": "user", "content": "chat words"}]},
        "/v1/completions": {"prompt": "complete this line"},
        "/v1/responses": {"instructions": "answer briefly", "input": "respond to this"},
        "/v1/embeddings": {"input": ["embed these words"]},
    }
    with engine.begin() as connection:
        _insert(connection, "sessions", SESSION)
        for number, (path, body) in enumerate(bodies.items()):
            request_id = _insert(connection, "requests", {
                **REQUEST, "request_id": f"r-{number}", "path": path, "openai_request": json.dumps(body)})
            _insert(connection, "responses", {**RESPONSE, "request_id": request_id, "response_id": f"p-{number}",
                                              "model": "m"})
            connection.execute(sa.text("INSERT INTO search_docs (request_id, body) VALUES (:id, :body)"),
                               {"id": request_id, "body": "chat words" if number == 0 else ""})

    migrate.upgrade(empty_url, "0013")
    assert index.reindex(engine) == 3
    with engine.connect() as connection:
        docs = connection.execute(sa.text(
            "SELECT requests.path, search_docs.body FROM search_docs "
            "JOIN requests ON requests.id = search_docs.request_id"
        )).all()
    assert dict(docs) == {"/v1/chat/completions": "chat words", "/v1/completions": "complete this line",
                          "/v1/responses": "answer briefly\nrespond to this", "/v1/embeddings": "embed these words"}

    migrate.downgrade(empty_url, "0012")
    with engine.connect() as connection:
        assert connection.execute(sa.text("SELECT count(*) FROM search_docs")).scalar_one() == 4
    migrate.upgrade(empty_url, "head")

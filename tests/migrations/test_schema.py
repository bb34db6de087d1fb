"""The schema: Alembic head equals the models; a new database is created, an old one is not touched."""

from __future__ import annotations

import subprocess
import sys

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from app import create_app, migrate
from app.config import PROJECT_ROOT
from app.db import dispose_engines, get_engine
from app.models import Base
from app.models.search import include_name


def test_head_matches_the_models(database_url):
    with get_engine(database_url).connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True, "include_name": include_name})
        assert compare_metadata(context, Base.metadata) == []


def test_fresh_sqlite_database_is_created_on_first_start(make_settings, tmp_path):
    path = tmp_path / "new" / "gateway.db"
    create_app(make_settings(database_url=f"sqlite:///{path}"))
    assert path.exists()
    assert migrate.current_revision(f"sqlite:///{path}") == migrate.head_revision(f"sqlite:///{path}")


def test_database_behind_head_is_never_changed_silently(make_settings, database_url):
    head = migrate.current_revision(database_url)
    with get_engine(database_url).begin() as connection:
        connection.execute(sa.text("UPDATE alembic_version SET version_num = '0000_older'"))
    try:
        with pytest.raises(migrate.SchemaOutdated, match="alembic upgrade head"):
            create_app(make_settings())
        assert migrate.current_revision(database_url) == "0000_older"
    finally:  # the PostgreSQL database is shared by the worker's later tests
        with get_engine(database_url).begin() as connection:
            connection.execute(sa.text("UPDATE alembic_version SET version_num = :head"), {"head": head})


UNREACHABLE_URL = "postgresql+psycopg://postgres@127.0.0.1:1/test"  # nothing listens on port 1: refused


def start_check(monkeypatch, tmp_path, url: str) -> int:
    """``python -m app check`` (gunicorn's on_starting) on ``url``."""
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("AUDIT_JOURNAL_DIR", str(tmp_path / "journal"))
    return migrate.main(["check"])


def test_the_start_check_lets_a_database_that_cannot_be_reached_pass_with_a_warning(monkeypatch, tmp_path, capsys):
    assert start_check(monkeypatch, tmp_path, UNREACHABLE_URL) == 0
    said = capsys.readouterr().err
    assert "the database cannot be reached" in said and "Connection refused" in said
    assert "starting without it" in said


def test_a_worker_starts_while_its_database_cannot_be_reached(make_settings):
    app = create_app(make_settings(database_url=UNREACHABLE_URL))
    gateway = app.extensions["gateway"]
    try:
        assert gateway.deferred is not None and gateway.chat.audit.healthy is False
        assert gateway.registry.snapshot().active_name == "lm-studio"
    finally:
        gateway.stop_background()


@pytest.mark.postgres
def test_a_database_that_refuses_the_gateway_still_stops_start_up(monkeypatch, tmp_path, capsys, pg_url, make_settings):
    missing = sa.make_url(pg_url).set(database="no_such_database").render_as_string(hide_password=False)
    assert start_check(monkeypatch, tmp_path, missing) == 1
    assert 'database "no_such_database" does not exist' in capsys.readouterr().err
    with pytest.raises(sa.exc.OperationalError):
        create_app(make_settings(database_url=missing))


@pytest.mark.postgres
def test_a_tls_setting_the_server_cannot_meet_still_stops_start_up(monkeypatch, tmp_path, capsys, pg_url):
    """Refused by the client's own TLS settings (no "FATAL:" from the server): a setting to fix, not an outage."""
    url = sa.make_url(pg_url)
    with get_engine(pg_url).connect() as connection:
        ssl = connection.exec_driver_sql("SHOW ssl").scalar()
    query = {"sslmode": "require"} if ssl == "off" else {
        "sslmode": "verify-full", "sslrootcert": str(tmp_path / "none")}
    strict = url.set(query=query).render_as_string(hide_password=False)
    assert start_check(monkeypatch, tmp_path, strict) == 1
    said = capsys.readouterr().err
    assert "SSL" in said or "certificate" in said


def test_the_start_check_stops_on_a_schema_behind_head(monkeypatch, tmp_path, capsys, database_url):
    head = migrate.current_revision(database_url)
    with get_engine(database_url).begin() as connection:
        connection.execute(sa.text("UPDATE alembic_version SET version_num = '0000_older'"))
    try:
        assert start_check(monkeypatch, tmp_path, database_url) == 1
        assert "alembic upgrade head" in capsys.readouterr().err
    finally:
        with get_engine(database_url).begin() as connection:
            connection.execute(sa.text("UPDATE alembic_version SET version_num = :head"), {"head": head})


def test_foreign_database_is_refused(make_settings, tmp_path):
    url = f"sqlite:///{tmp_path / 'other.db'}"
    with get_engine(url).begin() as connection:
        connection.execute(sa.text("CREATE TABLE request_logs (id INTEGER PRIMARY KEY)"))
    with pytest.raises(migrate.SchemaOutdated, match="provider-cli import"):
        create_app(make_settings(database_url=url))


def test_upgrade_and_downgrade_round_trip(tmp_path):
    url = f"sqlite:///{tmp_path / 'round.db'}"
    migrate.upgrade(url)
    migrate.downgrade(url, "base")
    assert set(sa.inspect(get_engine(url)).get_table_names()) == {"alembic_version"}
    migrate.upgrade(url)
    assert {"sessions", "requests", "responses", "settings"} <= set(sa.inspect(get_engine(url)).get_table_names())


def _shape(url: str) -> dict:
    inspector = sa.inspect(get_engine(url))
    shape = {}
    for table in sorted(inspector.get_table_names()):
        shape[table] = (
            [(c["name"], str(c["type"]), c["nullable"]) for c in inspector.get_columns(table)],
            sorted((i["name"], tuple(i["column_names"]), bool(i["unique"])) for i in inspector.get_indexes(table)),
            sorted(str(sorted(fk.items())) for fk in inspector.get_foreign_keys(table)),
            sorted(str(sorted(ck.items())) for ck in inspector.get_check_constraints(table)),
            sorted(tuple(u["column_names"]) for u in inspector.get_unique_constraints(table)),
        )
    return shape


def test_downgrade_from_0002_restores_0001_exactly(tmp_path):
    fresh, round_trip = (f"sqlite:///{tmp_path / name}" for name in ("fresh.db", "round.db"))
    migrate.upgrade(fresh, "0001")
    migrate.upgrade(round_trip)
    migrate.downgrade(round_trip, "0001")
    assert _shape(round_trip) == _shape(fresh)
    assert {"providers", "attempts"}.isdisjoint(_shape(round_trip))


@pytest.mark.postgres
def test_workers_creating_a_new_postgresql_schema_at_once_create_it_once(pg_url):
    """The workers of a gateway started during an outage all find the new database empty when it answers."""
    url = sa.make_url(pg_url)
    name = f"{url.database}_race"
    admin = sa.create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    fresh = url.set(database=name).render_as_string(hide_password=False)
    code = (
        "import logging, sys\n"
        "logging.basicConfig(level=logging.INFO, stream=sys.stderr, format='%(message)s')\n"
        "from app import migrate\n"
        "print(migrate.ensure_schema(sys.argv[1]))\n"
    )
    try:
        children = [subprocess.Popen([sys.executable, "-c", code, fresh], cwd=PROJECT_ROOT, text=True,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(4)]
        outputs = [child.communicate(timeout=120) for child in children]
        assert [child.returncode for child in children] == [0] * 4, outputs
        head = migrate.head_revision(fresh)
        assert [out.strip() for out, _ in outputs] == [head] * 4
        assert sum("new database: creating the schema" in err for _, err in outputs) == 1
        assert migrate.current_revision(fresh) == head
    finally:
        dispose_engines()
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

"""Alembic from code: the schema's revision, upgrades, and the start-up check."""

from __future__ import annotations

import fcntl
import logging
import os
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from alembic import command
from app.config import PROJECT_ROOT, ConfigError, Settings
from app.db import get_engine
from app.db.reach import cannot_reach
from app.db.read_only import force_read_only, is_read_only, read_only_for

log = logging.getLogger(__name__)
SCHEMA_LOCK_KEY = 0x70726F76  # pg_advisory_lock key (advisory locks are per database): one schema creation at a time
SCHEMA_LOCK_RETRY_S = 0.2


class SchemaOutdated(RuntimeError):
    """The database holds an older schema; upgrading it is an explicit step."""


def alembic_config(url: str) -> Config:
    """An Alembic config that works from any working directory."""
    config = Config(str(PROJECT_ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(PROJECT_ROOT / "alembic"))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    config.attributes["configure_logging"] = False
    return config


def head_revision(url: str) -> str | None:
    return ScriptDirectory.from_config(alembic_config(url)).get_current_head()


def current_revision(url: str) -> str | None:
    with get_engine(url).connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str = "base") -> None:
    command.downgrade(alembic_config(url), revision)


def ensure_schema(url: str) -> str:
    """Create a fresh database's schema; refuse to touch one that is behind head.

    Only a database without a revision takes the creation lock (and looks again under it): the
    usual start, of a database at head, holds no lock and one connection at a time.
    """
    head = head_revision(url)
    current = current_revision(url)
    if current is None:
        with _schema_lock(url):
            current = current_revision(url)
            if current is None:
                _create_schema(url, head)
                return head or ""
    if current != head:
        raise SchemaOutdated(
            f"the database schema is at revision {current}, the code needs {head}: "
            "run `alembic upgrade head` (or `make run`, which does it)"
            + (" on the primary" if is_read_only(get_engine(url)) else "")
        )
    return current


def _create_schema(url: str, head: str | None) -> None:
    if is_read_only(get_engine(url)):
        raise SchemaOutdated(
            "the database is read-only and holds no provider-router schema: start a gateway on the "
            "primary first (it creates the schema), then this one on its replica"
        )
    tables = set(sa.inspect(get_engine(url)).get_table_names())
    if tables - {"alembic_version"}:
        raise SchemaOutdated(
            f"the database holds tables ({', '.join(sorted(tables))}) but no Alembic "
            "revision: it is not a provider-router database, or it predates Alembic; "
            "use `provider-cli import` for an original gateway database"
        )
    log.info("new database: creating the schema (revision %s)", head)
    upgrade(url)


def ensure_schema_or_outage(url: str) -> sa.exc.OperationalError | None:
    """``ensure_schema``, or the error that says the database cannot be reached now (its work is then owed)."""
    try:
        ensure_schema(url)
    except sa.exc.OperationalError as exc:
        if not cannot_reach(exc):
            raise
        return exc
    return None


def outage_line(exc: BaseException) -> str:
    """The driver's error on one line, for start-up's warning."""
    return " ".join(str(getattr(exc, "orig", None) or exc).split())


@contextmanager
def _schema_lock(url: str):
    """Serialise first-start schema creation between workers sharing one SQLite file or PostgreSQL database.

    On PostgreSQL the workers of a gateway that started during an outage all create it once the server answers.
    """
    database = sa.make_url(url).database
    if url.startswith("postgresql"):
        with get_engine(url).connect() as connection:
            # Tried, not waited for: a waiter ends its transaction between tries, so that behind
            # PgBouncer (transaction pooling) it holds no server connection the creator may need.
            while not connection.exec_driver_sql(f"SELECT pg_try_advisory_lock({SCHEMA_LOCK_KEY})").scalar():
                connection.rollback()
                time.sleep(SCHEMA_LOCK_RETRY_S)
            try:
                yield
            finally:
                connection.exec_driver_sql(f"SELECT pg_advisory_unlock({SCHEMA_LOCK_KEY})")
                connection.commit()
        return
    if not url.startswith("sqlite") or not database:
        yield
        return
    lock_path = Path(database).with_name(Path(database).name + ".lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _say_connection_budget(settings: Settings, *, workers: int) -> None:
    """At start-up: how many PostgreSQL connections this instance may open, for max_connections' sake."""
    if settings.is_sqlite:
        return
    pool = settings.pool
    print(
        f"provider-router: this instance may open up to {workers * pool.per_worker} PostgreSQL connections "
        f"({workers} workers x (DB_POOL_SIZE {pool.size} + DB_MAX_OVERFLOW {pool.overflow})); keep instances x "
        f"that below max_connections minus headroom; server-side prepared statements "
        f"{'on' if pool.prepared_statements else 'off (DB_PREPARED_STATEMENTS=false)'}",
        file=sys.stderr,
    )


def main(argv: list[str] | None = None) -> int:
    """``python -m app check``: bring a new database to head or explain in one line.

    ``python -m app checkpointer [PARENT_PID]`` runs SQLite WAL checkpoints (gunicorn starts it).
    """
    args = sys.argv[1:] if argv is None else argv
    try:
        settings = Settings.from_env()
        if args[:1] == ["checkpointer"]:
            from app.db import checkpointer

            checkpointer.run(settings.database_url, parent_pid=int(args[1]) if len(args) > 1 else None)
        elif args[:1] == ["upgrade"]:
            upgrade(settings.database_url)
        else:
            if settings.read_only:
                force_read_only(settings.database_url)
            outage = ensure_schema_or_outage(settings.database_url)
            if outage is not None:
                print(f"provider-router: the database cannot be reached ({outage_line(outage)}): starting without "
                      "it; the workers record calls in the audit journal and check the schema once it answers",
                      file=sys.stderr)
            elif (reason := read_only_for(settings) if settings.enable_persistence else None) is not None:
                print(f"provider-router: read-only instance: the database is {reason}; it serves history and "
                      "dashboard reads and refuses model calls and changes", file=sys.stderr)
            _say_connection_budget(settings, workers=int(os.environ.get("WEB_CONCURRENCY", "2")))
    except (ConfigError, SchemaOutdated) as exc:
        print(f"provider-router: {exc}", file=sys.stderr)
        return 1
    except sa.exc.OperationalError as exc:
        print(f"provider-router: cannot open the database: {exc.orig}", file=sys.stderr)
        return 1
    return 0

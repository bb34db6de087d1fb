"""Engines and ORM sessions, one engine per process and URL, created after fork."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from app.config import PoolSettings
from app.db.checkpointer import worker_autocheckpoint_pages

SQLITE_BUSY_TIMEOUT_S = 30
CONNECT_TIMEOUT_S = 10

_lock = threading.Lock()
_engines: dict[tuple[str, float], Engine] = {}


_pool = PoolSettings()


def configure_pool(pool: PoolSettings) -> None:
    """How PostgreSQL engines made from now on size their pools (the app and the CLI call it first)."""
    global _pool
    _pool = pool


def get_engine(url: str, *, busy_timeout_s: float = SQLITE_BUSY_TIMEOUT_S) -> Engine:
    """The engine for ``url``, shared by this process.

    ``busy_timeout_s=0`` gives SQLite connections that fail at once on a lock
    instead of sleeping inside SQLite, which would block a whole gevent worker:
    the audit hot path waits for locks itself, cooperatively.
    """
    key = (url, busy_timeout_s)
    with _lock:
        engine = _engines.get(key)
        if engine is None:
            engine = _engines[key] = create_engine(url, busy_timeout_s=busy_timeout_s)
        return engine


def _after_fork_in_child() -> None:
    # A forked worker must never use connections it inherited: give every engine
    # a fresh pool, leaving the parent's connections to the parent.
    for engine in list(_engines.values()):
        engine.dispose(close=False)


os.register_at_fork(after_in_child=_after_fork_in_child)


def dispose_engines() -> None:
    """Close every pooled connection of this process (tests, shutdown)."""
    with _lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()


def create_engine(url: str, *, busy_timeout_s: float = SQLITE_BUSY_TIMEOUT_S) -> Engine:
    """A new engine with the pragmas and pool sizes a gateway needs."""
    sa_url = sa.make_url(url)
    if sa_url.get_backend_name() != "sqlite":
        # Sized for many workers x instances (DB_POOL_SIZE, DB_MAX_OVERFLOW): a worker holds few
        # connections, each only for a tiny transaction.
        # A server that does not answer fails a new connection instead of hanging it.
        connect_args: dict = {"connect_timeout": CONNECT_TIMEOUT_S}
        if not _pool.prepared_statements:
            connect_args["prepare_threshold"] = None
        return sa.create_engine(
            sa_url, pool_size=_pool.size, max_overflow=_pool.overflow, pool_pre_ping=True, pool_recycle=1800,
            connect_args=connect_args,
        )
    if sa_url.database and sa_url.database != ":memory:":
        Path(sa_url.database).parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(
        sa_url,
        # Named parameters let the hot path run compiled statements with plain dicts.
        paramstyle="named",
        connect_args={"timeout": busy_timeout_s, "check_same_thread": False},
        pool_size=5,
        max_overflow=20,
    )

    @event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_connection, _record) -> None:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")
            cursor.execute(f"PRAGMA wal_autocheckpoint={worker_autocheckpoint_pages()}")
            cursor.execute("PRAGMA cache_size=-16000")  # 16 MB: keeps the hot index pages
        finally:
            cursor.close()

    return engine


@contextmanager
def session_scope(url: str) -> Iterator[Session]:
    """An ORM session that commits once at the end, or rolls back on error."""
    factory = sessionmaker(get_engine(url), expire_on_commit=False)
    with factory() as session, session.begin():
        yield session

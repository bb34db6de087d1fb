"""Which databases this process must not write to: a PostgreSQL hot standby, a read-only one, READ_ONLY=true.

The answer is the server's own (``SHOW transaction_read_only``: on for a standby in recovery and
for a database or role with ``default_transaction_read_only``), asked once per process and URL,
so the services that would write on a read (the usage rollups) can ask it without a round trip.
A standby promoted later stays read-only here until the instance restarts: refusing a write too
many is safe, attempting one on a standby is a 500.
"""

from __future__ import annotations

import logging
import threading

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine

from app.config import Settings
from app.db import get_engine
from app.db.limits import DatabaseTimeout, time_limit

ASK_TIMEOUT_S = 2.0  # a stalled server must not hold a worker's boot (gunicorn kills slow boots)
log = logging.getLogger(__name__)
_lock = threading.Lock()
_forced: set[URL] = set()
_found: dict[URL, str | None] = {}  # URL -> why it is read-only, or None


def read_only_for(settings: Settings) -> str | None:
    """Why the gateway's database is read-only (READ_ONLY=true, a standby, a read-only database); None: writable."""
    if settings.read_only:
        force_read_only(settings.database_url)
    return read_only_reason(get_engine(settings.database_url))


def force_read_only(url: str) -> None:
    """READ_ONLY=true: never write to ``url`` from this process, whatever the server allows."""
    with _lock:
        _forced.add(sa.make_url(url))


def is_read_only(engine: Engine) -> bool:
    """True when this process must only read through ``engine`` (asked of the server once)."""
    return read_only_reason(engine) is not None


def read_only_reason(engine: Engine) -> str | None:
    """Why ``engine``'s database is read-only for this process, for the start-up log; None: it is not."""
    url = engine.url
    with _lock:
        if url in _forced:
            return "READ_ONLY=true"
        if url in _found:
            return _found[url]
    try:
        found = _ask(engine)
    except (sa.exc.SQLAlchemyError, DatabaseTimeout) as exc:
        # The database is down or stalled: start writable (the audit journal keeps the calls until
        # it is back), and ask again next time. A worker must boot while its database is away.
        log.warning("could not ask the database whether it takes writes (%s): taken as writable for now",
                    exc.__class__.__name__)
        return None
    with _lock:
        _found[url] = found
    return found


def forget() -> None:
    """Ask the servers again (tests that turn a database read-only and back)."""
    with _lock:
        _forced.clear()
        _found.clear()


def _ask(engine: Engine) -> str | None:
    if engine.dialect.name != "postgresql":
        return None  # an SQLite file the process cannot write fails at start-up, as it always did
    with time_limit(ASK_TIMEOUT_S), engine.connect() as connection:
        standby, read_only = connection.exec_driver_sql(
            "SELECT pg_is_in_recovery(), current_setting('transaction_read_only')"
        ).one()
    if standby:
        return "a hot standby (pg_is_in_recovery())"
    return "read-only (transaction_read_only is on)" if read_only == "on" else None

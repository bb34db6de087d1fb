"""Short audit transactions on one kept DBAPI connection, never waiting long for a sick database.

SQLite: ``BEGIN IMMEDIATE`` takes the write lock up front, waiting for it
cooperatively and only up to a bound (the hot path's connections have
busy_timeout=0: SQLite's own busy handler sleeps inside C and would stall every
stream a gevent worker holds). PostgreSQL: under gevent the whole transaction
runs under a time limit, so a stalled server (packets dropped, a hung proxy)
costs a call that bound once, not a hang.
"""

from __future__ import annotations

import os
import random
import sqlite3
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext, suppress
from typing import Any

from sqlalchemy.engine import Engine

from app.db.limits import time_limit
from app.services.audit.repair import lost_a_race, refused_for_content

PROGRESS_CHECK_S = 0.005
# Waiting for the lock while other writers commit, at most this long.
PROGRESS_WAIT_S = 2.0


class Transactions:
    """Transactions on one kept connection, for one writer at a time (the group-commit leader, the drainer)."""

    def __init__(self, engine: Engine, *, wait_s: float) -> None:
        self.engine = engine
        self.wait_s = wait_s
        self.sqlite = engine.dialect.name == "sqlite"
        self._connection = None
        self._pid = 0

    def time_limit(self) -> AbstractContextManager:
        """Raises DatabaseTimeout in a transaction that outlasts the bound (under gevent; SQLite waits itself)."""
        return nullcontext() if self.sqlite else time_limit(self.wait_s)

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        """A cursor in one transaction, committed at the end; any error rolls it back and drops the connection."""
        connection = self._connection
        if connection is None or self._pid != os.getpid():  # never a connection inherited by fork
            connection = self._connection = self.engine.raw_connection()
            self._pid = os.getpid()
        try:
            cursor = connection.cursor()
            if self.sqlite:
                begin_immediate(cursor, wait_s=self.wait_s)
            yield cursor
            connection.commit()
        except BaseException as exc:
            self._connection = None
            if refused_for_content(exc):  # the row's fault: the connection is fine, back to the pool
                try:
                    connection.rollback()
                    connection.close()
                except Exception:  # noqa: BLE001 - already failing; the original error matters
                    connection.invalidate()
            else:
                # The database's fault: drop the connection (a PostgreSQL server may be gone or stalled:
                # no round trip; an SQLite file may have been remounted or replaced), and the idle ones
                # pooled beside it, so the next try opens afresh.
                if self.sqlite:
                    with suppress(Exception):
                        connection.rollback()
                connection.invalidate()
                if self.sqlite:
                    self.engine.pool.dispose()
            raise

    def run(self, work, *, retries: int = 2) -> None:
        """``work(cursor)`` in one bounded transaction; again when it lost a race (a deadlock)."""
        for attempt in range(retries + 1):
            try:
                with self.time_limit(), self.transaction() as cursor:
                    work(cursor)
                return
            except Exception as exc:
                if attempt == retries or not lost_a_race(exc):
                    raise

    def release(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None and self._pid == os.getpid():
            connection.close()


def begin_immediate(cursor: Any, *, wait_s: float) -> None:
    """Take SQLite's write lock, waiting cooperatively (time.sleep yields under gevent).

    Gives up once the lock has been held ``wait_s`` with nobody committing: an outside
    holder (a backup, a ``sqlite3`` shell) or a stuck one. While other writers commit
    (the gateway's own workers taking turns under load) it keeps waiting, up to
    ``PROGRESS_WAIT_S``: the database is busy, not sick.
    """
    delay = 0.0001
    start = last_progress = checked = time.monotonic()
    version = None
    while True:
        try:
            cursor.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            now = time.monotonic()
            if now - checked >= PROGRESS_CHECK_S or version is None:
                checked = now
                # Moves whenever another connection commits; reading it needs no lock in WAL mode.
                current = cursor.execute("PRAGMA data_version").fetchone()[0]
                if current != version:
                    version, last_progress = current, now
            if now - last_progress > wait_s or now - start > max(PROGRESS_WAIT_S, wait_s):
                raise
        time.sleep(delay * (0.5 + random.random()))
        delay = min(delay * 1.5, 0.002)  # the lock is usually held for well under a millisecond

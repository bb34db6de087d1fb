"""The audit trail's SQL: statements compiled once from the models, run on raw DBAPI cursors.

An ORM unit of work per row costs as much CPU as the whole proxy hop, so the hot
path binds plain dicts to SQL text compiled for the database's own dialect.
"""

from __future__ import annotations

import random
import sqlite3
import time
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from app.models import Attempt, ChatSession, Request, Response
from app.providers.base import Conversation

_sessions = ChatSession.__table__
_requests = Request.__table__
_responses = Response.__table__
_attempts = Attempt.__table__
# How long a write waits for another process's SQLite write lock before giving up.
LOCK_WAIT_S = 30.0

# Written only by the importer: the hot path leaves them to their server defaults
# (NULL, false) instead of binding three more parameters on every call.
_IMPORT_ONLY_COLUMNS = frozenset({"legacy_source", "legacy_id", "retained"})


class AuditStatements:
    """The five statements that record a call, for one dialect."""

    def __init__(self, dialect: sa.Dialect) -> None:
        insert = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}.get(dialect.name)
        if insert is None:
            raise RuntimeError(f"unsupported database {dialect.name!r}: use SQLite or PostgreSQL")
        upsert = insert(_sessions)
        upsert = upsert.on_conflict_do_update(
            index_elements=[_sessions.c.id],
            set_={
                "message_count": _sessions.c.message_count + sa.literal_column("1"),
                "last_accessed": upsert.excluded.last_accessed,
                "expires_at": upsert.excluded.expires_at,
                # An expired session starts a new conversation upstream; its history stays.
                "chat_id": sa.case(
                    (_sessions.c.expires_at < upsert.excluded.last_accessed, sa.null()),
                    else_=_sessions.c.chat_id,
                ),
                "parent_id": sa.case(
                    (_sessions.c.expires_at < upsert.excluded.last_accessed, sa.null()),
                    else_=_sessions.c.parent_id,
                ),
            },
        ).returning(_sessions.c.chat_id, _sessions.c.parent_id)
        self.touch_session_sql = _compile(upsert, dialect, _sessions)
        self.insert_request_sql = _compile(sa.insert(_requests).returning(_requests.c.id), dialect, _requests)
        self.insert_response_sql = _compile(sa.insert(_responses), dialect, _responses)
        self.insert_attempt_sql = _compile(sa.insert(_attempts), dialect, _attempts)
        self.continue_session_sql = _compile(
            sa.update(_sessions)
            .where(_sessions.c.id == sa.bindparam("session_id"))
            .values(chat_id=sa.bindparam("chat_id"), parent_id=sa.bindparam("parent_id")),
            dialect,
        )

    def touch_session(self, cursor: Any, session_row: dict[str, Any]) -> Conversation:
        """Create or bump the session; its continuity state as it now stands."""
        cursor.execute(self.touch_session_sql, session_row)
        row = cursor.fetchone()
        return Conversation(session_id=session_row["id"], chat_id=row[0], parent_id=row[1])

    def insert_request(self, cursor: Any, request_row: dict[str, Any]) -> int:
        """Insert a request row; its database id."""
        cursor.execute(self.insert_request_sql, request_row)
        return cursor.fetchone()[0]

    def insert_response(
        self, cursor: Any, request_db_id: int, row: dict[str, Any], attempts: list[dict[str, Any]],
        continuation: dict[str, Any] | None,
    ) -> None:
        """Insert a response row, its attempts, and move the session's continuity state on."""
        cursor.execute(self.insert_response_sql, {**row, "request_id": request_db_id})
        if attempts:
            cursor.executemany(self.insert_attempt_sql, [{**a, "request_id": request_db_id} for a in attempts])
        if continuation is not None:
            cursor.execute(self.continue_session_sql, continuation)


def begin_immediate(cursor: Any, *, wait_s: float = LOCK_WAIT_S) -> None:
    """Take SQLite's write lock, waiting cooperatively (time.sleep yields under gevent).

    The hot path's connections have busy_timeout=0: SQLite's own busy handler
    sleeps inside C and would stall every stream a gevent worker holds.
    """
    delay = 0.0001
    deadline = time.monotonic() + wait_s
    while True:
        try:
            cursor.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc) or time.monotonic() > deadline:
                raise
        time.sleep(delay * (0.5 + random.random()))
        delay = min(delay * 1.5, 0.002)  # the lock is held for well under a millisecond


def _compile(statement, dialect, table: sa.Table | None = None) -> str:
    """SQL text for the dialect's own named parameter style, compiled once."""
    keys = None
    if table is not None:
        # The database numbers autoincrement ids; a natural key (sessions.id) is bound.
        keys = [
            column.key for column in table.columns
            if column.autoincrement is not True and column.key not in _IMPORT_ONLY_COLUMNS
        ]
    return str(statement.compile(dialect=dialect, column_keys=keys))

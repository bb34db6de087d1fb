"""The audit trail's hot path: one request row before the upstream call, one response row after.

Rows are written with statements compiled once from the models and run on a raw
DBAPI connection from the pool: an ORM unit of work per row costs as much CPU as
the whole proxy hop. Writes go through a group-commit writer, so concurrent
requests share transactions; each transaction stays tiny (under gevent a SQLite
call blocks the whole worker), and a database failure never fails the call.
"""

from __future__ import annotations

import json
import logging
import os
import random
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine

from app.db import get_engine
from app.errors import GatewayError
from app.models import Attempt, ChatSession, Request, Response, now_ms
from app.models.base import uuid7
from app.providers.base import Conversation
from app.services.fallback import AttemptRecord
from app.services.group_commit import GroupCommitWriter, WorkItem

log = logging.getLogger(__name__)

_sessions = ChatSession.__table__
_requests = Request.__table__
_responses = Response.__table__
_attempts = Attempt.__table__
# How long a write waits for another process's SQLite write lock before giving up.
LOCK_WAIT_S = 30.0

# Written only by the importer: the hot path leaves them to their server defaults
# (NULL, false) instead of binding three more parameters on every call.
_IMPORT_ONLY_COLUMNS = frozenset({"legacy_source", "legacy_id", "retained"})


def dumps(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


@dataclass(slots=True, kw_only=True)
class Outcome:
    """How a call ended, as the response row records it."""

    status: str
    status_code: int | None
    openai_response: dict[str, Any] | None = None
    provider_response: dict[str, Any] | None = None
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    total_tokens: int | None = None
    usage_estimated: bool = False
    error: str | None = None
    ttft_ms: int | None = None
    client_disconnected: bool = False
    parent_id: str | None = None
    chat_id: str | None = None
    provider: str | None = None  # the one that answered (or failed last)
    attempts: list[AttemptRecord] = field(default_factory=list)


@dataclass(slots=True, kw_only=True)
class RequestRecord:
    """A request as written (or still to be written) to the audit trail."""

    request_id: str
    session_id: str
    conversation: Conversation
    started_ms: int
    started: float
    session_row: dict[str, Any] = field(default_factory=dict)
    request_row: dict[str, Any] = field(default_factory=dict)
    db_id: int | None = None
    closed: bool = False

    def elapsed_ms(self) -> int:
        return int((time.perf_counter() - self.started) * 1000)


class AuditLog:
    """Writes the audit trail of chat calls to one database."""

    @classmethod
    def for_url(cls, url: str, *, session_timeout_ms: int) -> AuditLog:
        sqlite_url = sa.make_url(url).get_backend_name() == "sqlite"
        engine = get_engine(url, busy_timeout_s=0) if sqlite_url else get_engine(url)
        return cls(engine, session_timeout_ms=session_timeout_ms)

    def __init__(self, engine: Engine, *, session_timeout_ms: int) -> None:
        self.engine = engine
        self.session_timeout_ms = session_timeout_ms
        dialect = engine.dialect
        self._sqlite = dialect.name == "sqlite"
        self._connection = None  # the writer's own; see _transaction
        self._connection_pid = 0
        self._open_calls = 0  # calls opened and not yet closed in this process (a hint, not a count to trust)
        self._writer = GroupCommitWriter(
            self._transaction, name="audit-writer", release=self._release_connection,
            calls_in_flight=lambda: self._open_calls,
        )
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
        self._touch_session_sql = _compile(upsert, dialect, _sessions)
        self._insert_request_sql = _compile(
            sa.insert(_requests).returning(_requests.c.id), dialect, _requests
        )
        self._insert_response_sql = _compile(sa.insert(_responses), dialect, _responses)
        self._insert_attempt_sql = _compile(sa.insert(_attempts), dialect, _attempts)
        self._continue_session_sql = _compile(
            sa.update(_sessions)
            .where(_sessions.c.id == sa.bindparam("session_id"))
            .values(chat_id=sa.bindparam("chat_id"), parent_id=sa.bindparam("parent_id")),
            dialect,
        )

    def open(
        self,
        *,
        session_id: str,
        first_user_message: str | None,
        openai_request: str,
        provider: str,
        model: str,
        stream: bool,
        method: str,
        path: str,
        build: Callable[[Conversation], dict[str, Any]],
    ) -> tuple[RequestRecord, dict[str, Any]]:
        """Record a request before the upstream call; ``build`` makes the provider's request.

        Returns once the request row is committed. ``build`` runs inside that
        transaction because some providers need the session's continuity state.
        """
        now = now_ms()
        record = RequestRecord(
            request_id=uuid7(),
            session_id=session_id,
            conversation=Conversation(session_id=session_id),
            started_ms=now,
            started=time.perf_counter(),
        )
        record.session_row = {
            "id": session_id, "chat_id": None, "parent_id": None,
            "first_user_message": first_user_message, "message_count": 1,
            "created_at": now, "last_accessed": now, "expires_at": now + self.session_timeout_ms,
        }
        record.request_row = {
            "session_id": session_id, "request_id": record.request_id, "timestamp": now,
            "method": method, "path": path, "openai_request": openai_request,
            "provider_request": None, "provider": provider, "model": model,
            "stream": stream, "created_at": now,
        }
        item = _OpenRequest(self, record, build)
        self._open_calls += 1
        self._writer.submit(item, wait=True)
        if item.build_error is not None:
            error = item.build_error
            self.close(record, Outcome(status="error", status_code=error.status, error=error.message,
                                       openai_response=error.body()))
            raise error
        if item.payload is None:  # the write failed: the response's write will retry it
            item.payload = build(record.conversation)
            record.request_row["provider_request"] = dumps(item.payload)
        return record, item.payload

    def close(self, record: RequestRecord, outcome: Outcome) -> None:
        """Record how the request ended: exactly once, whatever happened.

        Queued, not waited for: the client has its answer; the row follows
        within milliseconds and is flushed at exit.
        """
        if record.closed:
            return
        record.closed = True
        self._open_calls -= 1
        now = now_ms()
        row = {
            "request_id": None, "session_id": record.session_id,
            "response_id": uuid7(), "model": record.request_row["model"], "timestamp": now,
            "provider_response": dumps(outcome.provider_response),
            "openai_response": dumps(outcome.openai_response),
            "parent_id": outcome.parent_id,
            "prompt_tokens": outcome.prompt_tokens,
            "completion_tokens": outcome.completion_tokens,
            "total_tokens": outcome.total_tokens,
            "usage_estimated": outcome.usage_estimated,
            "finish_reason": outcome.finish_reason,
            "status": outcome.status, "status_code": outcome.status_code,
            "error": outcome.error, "provider": outcome.provider, "duration_ms": record.elapsed_ms(),
            "ttft_ms": outcome.ttft_ms, "client_disconnected": outcome.client_disconnected,
            "created_at": now,
        }
        continuation = None
        if outcome.parent_id is not None or outcome.chat_id is not None:
            continuation = {
                "session_id": record.session_id,
                "chat_id": outcome.chat_id or record.conversation.chat_id,
                "parent_id": outcome.parent_id,
            }
        # One call says it all in the request and response rows: attempts only when there were more.
        attempts = [
            {
                "request_id": None, "attempt": a.number, "provider": a.provider, "model": a.model,
                "status_code": a.status_code, "error": a.error, "duration_ms": a.duration_ms,
                "started_at": a.started_at,
            }
            for a in outcome.attempts
        ] if len(outcome.attempts) > 1 else []
        self._writer.submit(_CloseRequest(self, record, row, continuation, attempts), wait=False)

    def flush(self) -> None:
        """Return once every queued row is written (tests, shutdown)."""
        self._writer.flush()

    def stop(self) -> None:
        """Write what is queued and end the writer."""
        self._writer.stop()

    @contextmanager
    def _transaction(self) -> Iterator[Any]:
        """One short transaction, rolled back on any error.

        Only the group-commit leader runs it, one at a time, so the writer keeps
        one DBAPI connection instead of checking one out of the pool each time.
        """
        connection = self._connection
        if connection is None or self._connection_pid != os.getpid():  # never one inherited by fork
            connection = self._connection = self.engine.raw_connection()
            self._connection_pid = os.getpid()
        try:
            cursor = connection.cursor()
            if self._sqlite:
                _begin_immediate(cursor)
            yield cursor
            connection.commit()
        except BaseException:
            self._connection = None  # a fresh connection next time: this one may be broken
            try:
                connection.rollback()
                connection.close()
            except Exception:  # noqa: BLE001 - already failing; the original error matters
                connection.invalidate()
            raise

    def _release_connection(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None and self._connection_pid == os.getpid():
            connection.close()

    def _touch_session(self, cursor, record: RequestRecord) -> Conversation:
        cursor.execute(self._touch_session_sql, record.session_row)
        row = cursor.fetchone()
        return Conversation(session_id=record.session_id, chat_id=row[0], parent_id=row[1])

    def _insert_request(self, cursor, record: RequestRecord) -> int:
        cursor.execute(self._insert_request_sql, record.request_row)
        return cursor.fetchone()[0]


def _begin_immediate(cursor) -> None:
    """Take SQLite's write lock, waiting cooperatively (time.sleep yields under gevent).

    The hot path's connections have busy_timeout=0: SQLite's own busy handler
    sleeps inside C and would stall every stream a gevent worker holds.
    """
    delay = 0.0001
    deadline = time.monotonic() + LOCK_WAIT_S
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


class _OpenRequest(WorkItem):
    """Touch the session, build the provider request, insert the request row."""

    __slots__ = ("audit", "record", "build", "payload", "build_error")

    def __init__(self, audit: AuditLog, record: RequestRecord, build: Callable) -> None:
        super().__init__()
        self.audit, self.record, self.build = audit, record, build
        self.payload: dict[str, Any] | None = None
        self.build_error: GatewayError | None = None

    def apply(self, cursor: Any) -> None:
        record = self.record
        record.conversation = self.audit._touch_session(cursor, record)
        try:
            self.payload = self.build(record.conversation)
        except GatewayError as exc:  # still recorded: as a request that failed before upstream
            self.build_error = exc
        record.request_row["provider_request"] = dumps(self.payload)
        record.db_id = self.audit._insert_request(cursor, record)

    def failed(self, error: BaseException) -> None:
        super().failed(error)
        self.record.db_id = None
        self.payload = None
        self.build_error = None


class _CloseRequest(WorkItem):
    """Insert the response row and any attempt rows (and the request row, if its own write failed)."""

    __slots__ = ("audit", "record", "row", "continuation", "attempts")

    def __init__(
        self, audit: AuditLog, record: RequestRecord, row: dict, continuation: dict | None, attempts: list[dict]
    ) -> None:
        super().__init__()
        self.audit, self.record, self.row, self.continuation = audit, record, row, continuation
        self.attempts = attempts

    def apply(self, cursor: Any) -> None:
        record = self.record
        db_id = record.db_id
        if db_id is None:
            self.audit._touch_session(cursor, record)
            db_id = self.audit._insert_request(cursor, record)
        cursor.execute(self.audit._insert_response_sql, {**self.row, "request_id": db_id})
        if self.attempts:
            cursor.executemany(self.audit._insert_attempt_sql, [{**a, "request_id": db_id} for a in self.attempts])
        if self.continuation is not None:
            cursor.execute(self.audit._continue_session_sql, self.continuation)

    def failed(self, error: BaseException) -> None:
        super().failed(error)
        log.error(
            "AUDIT WRITE FAILED: request %s (session %s, status %s) was not recorded",
            self.record.request_id, self.record.session_id, self.row["status"],
        )

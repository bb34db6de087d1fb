"""The audit trail's hot path: one request row before the upstream call, one response row after.

Rows are written with statements compiled once from the models and run on a raw
DBAPI connection from the pool: an ORM unit of work per row costs as much CPU as
the whole proxy hop. Each write is one tiny transaction (under gevent a SQLite
call blocks the whole worker), and a database failure never fails the call.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine

from app.models import ChatSession, Request, Response, now_ms
from app.providers.base import Conversation

log = logging.getLogger(__name__)

_sessions = ChatSession.__table__
_requests = Request.__table__
_responses = Response.__table__

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

    def __init__(self, engine: Engine, *, session_timeout_ms: int) -> None:
        self.engine = engine
        self.session_timeout_ms = session_timeout_ms
        dialect = engine.dialect
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
        """Record a request before the upstream call; ``build`` makes the provider's request."""
        now = now_ms()
        record = RequestRecord(
            request_id=str(uuid.uuid4()),
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
        payload: dict[str, Any] | None = None
        try:
            connection = self.engine.raw_connection()
            try:
                cursor = connection.cursor()
                record.conversation = self._touch_session(cursor, record)
                payload = build(record.conversation)
                record.request_row["provider_request"] = dumps(payload)
                record.db_id = self._insert_request(cursor, record)
                connection.commit()
            finally:
                connection.close()
        except Exception:
            log.exception(
                "AUDIT WRITE FAILED: request %s not recorded yet; will retry when it ends",
                record.request_id,
            )
            record.db_id = None
        if payload is None:
            payload = build(record.conversation)
            record.request_row["provider_request"] = dumps(payload)
        return record, payload

    def close(self, record: RequestRecord, outcome: Outcome) -> None:
        """Record how the request ended: exactly once, whatever happened."""
        if record.closed:
            return
        record.closed = True
        now = now_ms()
        row = {
            "request_id": None, "session_id": record.session_id,
            "response_id": str(uuid.uuid4()), "timestamp": now,
            "provider_response": dumps(outcome.provider_response),
            "openai_response": dumps(outcome.openai_response),
            "parent_id": outcome.parent_id,
            "prompt_tokens": outcome.prompt_tokens,
            "completion_tokens": outcome.completion_tokens,
            "total_tokens": outcome.total_tokens,
            "usage_estimated": outcome.usage_estimated,
            "finish_reason": outcome.finish_reason,
            "status": outcome.status, "status_code": outcome.status_code,
            "error": outcome.error, "duration_ms": record.elapsed_ms(),
            "ttft_ms": outcome.ttft_ms, "client_disconnected": outcome.client_disconnected,
            "created_at": now,
        }
        try:
            connection = self.engine.raw_connection()
            try:
                cursor = connection.cursor()
                if record.db_id is None:
                    # The opening write failed: write the request now, with its response.
                    self._touch_session(cursor, record)
                    record.db_id = self._insert_request(cursor, record)
                row["request_id"] = record.db_id
                cursor.execute(self._insert_response_sql, row)
                if outcome.parent_id is not None or outcome.chat_id is not None:
                    cursor.execute(
                        self._continue_session_sql,
                        {
                            "session_id": record.session_id,
                            "chat_id": outcome.chat_id or record.conversation.chat_id,
                            "parent_id": outcome.parent_id,
                        },
                    )
                connection.commit()
            finally:
                connection.close()
        except Exception:
            log.exception(
                "AUDIT WRITE FAILED: request %s (session %s, status %s) was not recorded",
                record.request_id, record.session_id, outcome.status,
            )

    def _touch_session(self, cursor, record: RequestRecord) -> Conversation:
        cursor.execute(self._touch_session_sql, record.session_row)
        row = cursor.fetchone()
        return Conversation(session_id=record.session_id, chat_id=row[0], parent_id=row[1])

    def _insert_request(self, cursor, record: RequestRecord) -> int:
        cursor.execute(self._insert_request_sql, record.request_row)
        return cursor.fetchone()[0]


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

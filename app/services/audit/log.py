"""The audit trail's hot path: one request row before the upstream call, one response row after.

Rows are written with compiled statements (``statements``) on one raw DBAPI
connection the writer keeps. Writes go through a group-commit writer, so concurrent
requests share transactions; each transaction stays tiny (under gevent a SQLite
call blocks the whole worker), and a database failure never fails the call.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from app.db import get_engine
from app.errors import GatewayError
from app.models import now_ms
from app.models.base import uuid7
from app.providers.base import Conversation
from app.services.audit.group_commit import GroupCommitWriter, WorkItem
from app.services.audit.records import Outcome, RequestRecord, dumps
from app.services.audit.statements import AuditStatements, begin_immediate

log = logging.getLogger(__name__)


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
        self.sql = AuditStatements(dialect)

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
                begin_immediate(cursor)
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
        record.conversation = self.audit.sql.touch_session(cursor, record.session_row)
        try:
            self.payload = self.build(record.conversation)
        except GatewayError as exc:  # still recorded: as a request that failed before upstream
            self.build_error = exc
        record.request_row["provider_request"] = dumps(self.payload)
        record.db_id = self.audit.sql.insert_request(cursor, record.request_row)

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
            self.audit.sql.touch_session(cursor, record.session_row)
            db_id = self.audit.sql.insert_request(cursor, record.request_row)
        self.audit.sql.insert_response(cursor, db_id, self.row, self.attempts, self.continuation)

    def failed(self, error: BaseException) -> None:
        super().failed(error)
        log.error(
            "AUDIT WRITE FAILED: request %s (session %s, status %s) was not recorded",
            self.record.request_id, self.record.session_id, self.row["status"],
        )

"""The audit trail's hot path: one request row before the upstream call, one response row after.

Rows are written with compiled statements (``statements``) through a group-commit
writer (``group_commit``) on one kept connection (``connection``). When the
database cannot take them promptly (down, full, read-only, locked past the bound)
they go to the journal on local disk (``journal``) and the call goes on; a row the
database refuses for its content is repaired (``repair``) and, failing that, kept
as a dead letter. The drainer (``drainer``) replays the journal later.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from app.config import Settings
from app.db import get_engine
from app.errors import AuditUnavailable, GatewayError
from app.models import now_ms
from app.models.base import uuid7
from app.providers.base import Conversation
from app.services.audit.connection import Transactions
from app.services.audit.group_commit import GroupCommitWriter
from app.services.audit.items import CloseRequest, OpenRequest, describe
from app.services.audit.journal import Journal
from app.services.audit.records import (
    STORED_DB,
    STORED_DEAD,
    STORED_JOURNAL,
    Outcome,
    RequestRecord,
    WorkerIdentity,
    dumps,
)
from app.services.audit.repair import lost_a_race, refused_for_content
from app.services.audit.segments import CachedStatus
from app.services.audit.statements import AuditStatements
from app.services.telemetry.calls import Telemetry

log = logging.getLogger(__name__)

# The longest a call waits for its audit write, by engine: SQLite's write lock, PostgreSQL's round trips.
WRITE_TIMEOUT_S = {"sqlite": 0.1, "postgresql": 1.0}


class AuditLog:
    """Writes the audit trail of calls to one database, or to the journal while it cannot take them."""

    @classmethod
    def for_settings(cls, settings: Settings, *, telemetry: Telemetry | None = None, healthy: bool = True) -> AuditLog:
        return cls.for_url(
            settings.database_url, session_timeout_ms=settings.session_timeout_ms, telemetry=telemetry, healthy=healthy,
            journal_dir=settings.audit_journal_dir, journal_max_bytes=settings.audit_journal_max_bytes,
            failure_mode=settings.audit_failure_mode, write_timeout_s=settings.audit_write_timeout_s,
        )

    @classmethod
    def for_url(cls, url: str, *, session_timeout_ms: int, journal_dir: Path, **options: Any) -> AuditLog:
        sqlite_url = sa.make_url(url).get_backend_name() == "sqlite"
        engine = get_engine(url, busy_timeout_s=0) if sqlite_url else get_engine(url)
        return cls(engine, session_timeout_ms=session_timeout_ms, journal_dir=journal_dir, **options)

    def __init__(
        self, engine: Engine, *, session_timeout_ms: int, journal_dir: Path, journal_max_bytes: int = 1 << 30,
        failure_mode: str = "open", write_timeout_s: float | None = None, telemetry: Telemetry | None = None,
        healthy: bool = True,
    ) -> None:
        self.engine = engine
        self.telemetry = telemetry or Telemetry.off()
        self.metrics = self.telemetry.sink
        self.session_timeout_ms = session_timeout_ms
        self.failure_mode = failure_mode
        self.sql = AuditStatements(engine.dialect)
        self.worker = WorkerIdentity.new()
        self.write_timeout_s = write_timeout_s or WRITE_TIMEOUT_S.get(engine.dialect.name, 1.0)
        self.journal = Journal(
            journal_dir, worker_id=self.worker.id, max_bytes=journal_max_bytes,
            target=engine.url.render_as_string(hide_password=True),
        )
        self.journal.open()
        # False while the database is unusable (from boot, when it could not be reached then): records go
        # straight to the journal until the drainer finds it writable again (no call waits for a doomed write).
        self.healthy = healthy
        self.counts = {"journaled": 0, "dead_letters": 0, "unrecorded": 0}
        self.open_calls: dict[str, int] = {}  # request id -> when it started, for this process's calls
        self._status = CachedStatus(self.journal.directory)
        self.tx = Transactions(engine, wait_s=self.write_timeout_s)
        self._writer = GroupCommitWriter(
            self.tx.transaction, name="audit-writer", release=self.tx.release,
            calls_in_flight=lambda: len(self.open_calls),
            refused_for_content=refused_for_content, lost_a_race=lost_a_race, time_limit=self.tx.time_limit,
            committed=self.metrics.audit_committed,
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
        key_id: int | None = None,
        tags: dict[str, str] | None = None,
        key_use: Any = None,
        trace_id: str | None = None,
    ) -> tuple[RequestRecord, dict[str, Any]]:
        """Record a request before the upstream call; ``build`` makes the provider's request.

        Returns once the request is durable: committed, or in the journal. ``build``
        runs inside the transaction because some providers need the session's
        continuity state. AUDIT_FAILURE_MODE=closed raises AuditUnavailable when the
        request can be kept nowhere. ``key_use`` (a keyed call, admitted) is settled with its ending.
        """
        now = now_ms()
        record = RequestRecord(
            request_id=uuid7(),
            session_id=session_id,
            conversation=Conversation(session_id=session_id),
            started_ms=now,
            started=time.perf_counter(),
            key_use=key_use,
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
            "stream": stream, "created_at": now, "worker_id": self.worker.id, "trace_id": trace_id,
            "key_id": key_id, "tags": dumps(tags),
        }
        self.open_calls[record.request_id] = now
        self.telemetry.started(path)
        try:
            payload = self._record_request(record, build)
        except AuditUnavailable as exc:
            self.open_calls.pop(record.request_id, None)
            self._told(record, Outcome(status="error", status_code=exc.status, error=exc.message))
            raise
        return record, payload

    def close(self, record: RequestRecord, outcome: Outcome) -> None:
        """Record how the request ended: exactly once, whatever happened.

        Queued, not waited for: the client has its answer; the row follows
        within milliseconds and is flushed at exit. An ending that moves the
        conversation on upstream (Qwen's chat and parent ids) is committed before
        this returns, so the next turn finds it wherever it lands; so is an answer a
        later call may name (a stored response, for ``previous_response_id``).
        """
        if record.closed:
            return
        record.closed = True
        self.open_calls.pop(record.request_id, None)
        now = now_ms()
        row = {
            "request_id": None, "session_id": record.session_id,
            "response_id": outcome.response_id or uuid7(), "model": record.request_row["model"], "timestamp": now,
            "provider_response": dumps(outcome.provider_response),
            "openai_response": dumps(outcome.openai_response),
            "parent_id": outcome.parent_id,
            "prompt_tokens": outcome.prompt_tokens, "completion_tokens": outcome.completion_tokens,
            "total_tokens": outcome.total_tokens, "usage_estimated": outcome.usage_estimated,
            "finish_reason": outcome.finish_reason,
            "status": outcome.status, "status_code": outcome.status_code,
            "error": outcome.error, "provider": outcome.provider, "duration_ms": record.elapsed_ms(),
            "ttft_ms": outcome.ttft_ms, "client_disconnected": outcome.client_disconnected,
            "created_at": now, "cost_usd": outcome.cost_usd,
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
        use = record.key_use
        settle = None if use is None or use.reservation is None else use.reservation.settle_params(
            cost=outcome.cost_usd or 0.0, tokens=outcome.total_tokens or 0)
        item = CloseRequest(self, record, row, continuation, attempts, settle)
        if record.stored in (STORED_DB, None) and self.healthy:
            self._writer.submit(item, wait=continuation is not None or outcome.referable)
        else:
            self.close_elsewhere(item, None)
        self._told(record, outcome)

    def _kept(self, where: str, stored: bool = True) -> bool:
        if stored:
            self.counts[where] += 1
            (self.metrics.audit_journaled if where == "journaled" else self.metrics.audit_dead_letter)()
        return stored

    def _told(self, record: RequestRecord, outcome: Outcome) -> None:
        """The metrics and the call log hear of every ending, wherever its row went."""
        request = record.request_row
        self.telemetry.ended(
            request_id=record.request_id, session_id=record.session_id, path=request["path"],
            provider=request["provider"], model=request["model"], outcome=outcome, stream=request["stream"],
            duration_s=time.perf_counter() - record.started,
        )

    def flush(self) -> None:
        """Return once every queued row is written (tests, shutdown)."""
        self._writer.flush()

    def stop(self) -> None:
        """Write what is queued (to the journal, if need be) and end the writer."""
        self._writer.stop()

    def status(self) -> dict[str, Any]:
        """The database's state for /health (ok, degraded: a backlog waits in the journal, down) and the journal's."""
        return self._status.read(healthy=self.healthy)

    def database_unusable(self, error: BaseException) -> None:
        """A write failed for the database's sake: send records to the journal until it recovers."""
        if self.healthy:
            log.error(
                "AUDIT DATABASE UNUSABLE (%s): calls are recorded in the journal at %s until it recovers",
                describe(error), self.journal.directory,
            )
        self.healthy = False

    def database_recovered(self) -> None:
        if not self.healthy:
            log.warning("audit database writable again: new calls go to it, the journal is replayed")
        self.healthy = True

    def _record_request(self, record: RequestRecord, build: Callable) -> dict[str, Any]:
        error = None
        if self.healthy:
            item = OpenRequest(self, record, build)
            self._writer.submit(item, wait=True)
            if item.error is None:
                record.stored = STORED_DB
                if item.build_error is not None:  # still recorded: as a request that failed before upstream
                    self._refuse(record, item.build_error)
                return item.payload
            error = item.error
        if record.key_use is not None and record.key_use.reservation is None:
            record.key_use.unchecked()  # its counters could not be asked: its cost is counted on replay
        try:
            payload, build_error = build(record.conversation), None
        except GatewayError as exc:
            payload, build_error = None, exc
        record.request_row["provider_request"] = dumps(payload)
        self._open_elsewhere(record, error)
        if build_error is not None:
            self._refuse(record, build_error)
        return payload

    def _refuse(self, record: RequestRecord, error: GatewayError) -> None:
        self.close(record, Outcome(status="error", status_code=error.status, error=error.message,
                                   openai_response=error.body()))
        raise error

    def _open_elsewhere(self, record: RequestRecord, error: BaseException | None) -> None:
        """The database did not take the request: the journal (or its dead letters) must, before upstream."""
        entry = {"kind": "open", "session": record.session_row, "request": record.request_row}
        if error is not None and refused_for_content(error):
            if self.journal.dead_letter(entry, describe(error)):
                record.stored = STORED_DEAD
                self._kept("dead_letters")
                return
        elif self.journal.append(entry, admit=True, durable=True):
            record.stored = STORED_JOURNAL
            self._kept("journaled")
            return
        if self.failure_mode == "closed":
            raise AuditUnavailable("The gateway cannot record this call (its database and its journal are "
                                   "unusable), so it was not made. Try again shortly.")
        log.error("AUDIT: request %s could not be recorded before the upstream call; its ending will try again",
                  record.request_id)

    def close_elsewhere(self, item: CloseRequest, error: BaseException | None) -> None:
        """The database did not (or must not first) take the ending: the journal keeps it, in order."""
        record = item.record
        # The request goes along: kept nowhere yet, or committed to a database that may lose it
        # (SQLite syncs commits at its checkpoints: a failing disk can take the last ones back).
        entry = {
            "kind": "close", "request_id": record.request_id, "response": item.row,
            "attempts": item.attempts, "continuation": item.continuation,
            "session": record.session_row, "request": record.request_row,
        }
        if item.settle is not None:
            entry["settle"] = item.settle
        if record.stored == STORED_DEAD or (error is not None and refused_for_content(error)):
            stored = self._kept("dead_letters", self.journal.dead_letter(
                entry, describe(error) if error else "its request was refused"))
        else:
            stored = self._kept("journaled", self.journal.append(entry, admit=record.stored is None, durable=False))
        if not stored:
            self.counts["unrecorded"] = self.journal.count_unrecorded()
            self.metrics.audit_unrecorded()
            log.error(
                "AUDIT UNRECORDED: request %s (session %s, status %s) is recorded nowhere: "
                "the database and the journal are unusable", record.request_id, record.session_id, item.row["status"],
            )

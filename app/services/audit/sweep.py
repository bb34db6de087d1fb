"""Every call gets an ending: the calls of a gateway process that died are ended as ``interrupted``.

Each worker keeps a row in ``audit_workers`` (``seen_at``, and the start of its
oldest open call), rewritten every few seconds. A worker is dead when its
``.alive`` lock on this host can be taken (killed, crashed: the kernel let go of
it), or, for a worker of another host, when its row has not moved for the grace
(``AUDIT_SWEEP_GRACE``). A live worker's calls are never touched, however long
its streams run. Claiming a dead worker deletes its row in the same transaction
as its calls are ended, so two sweepers (other workers, other instances) never
both do it; an ending that turns up later from the journal replaces
``interrupted``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from app.models import AuditWorker, Request, Response, now_ms
from app.models.base import uuid7
from app.services.audit.connection import Transactions
from app.services.audit.records import WorkerIdentity
from app.services.audit.segments import alive_markers, forget_worker, segments, worker_gone
from app.services.audit.statements import AuditStatements, compile_sql

log = logging.getLogger(__name__)

INTERRUPTED = "The gateway process handling this call stopped (killed or crashed) before the call ended."
_workers = AuditWorker.__table__
_requests = Request.__table__
_responses = Response.__table__


def worker_started_at(worker_id: str) -> int:
    """When a worker started, from its id (a UUIDv7's first 48 bits are its ms timestamp)."""
    return int(worker_id[:12], 16)


class Sweeper:
    """This worker's heartbeat, and the ending of dead workers' open calls."""

    def __init__(
        self, tx: Transactions, sql: AuditStatements, *, worker: WorkerIdentity, journal_dir: Path, grace_ms: int,
        interrupted: Callable[..., None] | None = None,
    ) -> None:
        self.tx, self.sql, self.worker = tx, sql, worker
        self.interrupted = interrupted  # told (path, provider, model) of each call it ends: the metrics
        self.journal_dir = journal_dir
        self.grace_ms = grace_ms
        dialect = tx.engine.dialect
        insert = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}[dialect.name]
        beat = insert(_workers)
        self._beat_sql = compile_sql(
            beat.on_conflict_do_update(
                index_elements=[_workers.c.id],
                set_={"seen_at": beat.excluded.seen_at, "oldest_open_at": beat.excluded.oldest_open_at},
            ), dialect, _workers,
        )
        self._retire_sql = compile_sql(sa.delete(_workers).where(_workers.c.id == sa.bindparam("id")), dialect)
        self._list_sql = compile_sql(sa.select(_workers.c.id, _workers.c.seen_at, _workers.c.oldest_open_at), dialect)
        self._claim_sql = compile_sql(
            sa.delete(_workers).where(_workers.c.id == sa.bindparam("id"), _workers.c.seen_at == sa.bindparam("seen")),
            dialect,
        )
        self._open_calls_sql = compile_sql(
            sa.select(_requests.c.id, _requests.c.session_id, _requests.c.model, _requests.c.provider,
                      _requests.c.timestamp, _requests.c.path)
            .where(
                _requests.c.timestamp >= sa.bindparam("since"),
                _requests.c.worker_id == sa.bindparam("worker"),
                ~sa.exists().where(_responses.c.request_id == _requests.c.id),
            ),
            dialect,
        )

    def heartbeat(self, *, oldest_open_at: int | None) -> None:
        """Say this worker is alive (a write: it doubles as the probe of a database that failed)."""
        now = now_ms()
        row = {**_identity(self.worker), "seen_at": now, "oldest_open_at": oldest_open_at or now}
        with self.tx.time_limit(), self.tx.transaction() as cursor:
            cursor.execute(self._beat_sql, row)

    def retire(self) -> None:
        """This worker is leaving cleanly, its calls ended: nothing to sweep after it."""
        with self.tx.time_limit(), self.tx.transaction() as cursor:
            cursor.execute(self._retire_sql, {"id": self.worker.id})

    def sweep(self) -> int:
        """End the open calls of every dead worker; how many calls were ended."""
        now = now_ms()
        with self.tx.time_limit(), self.tx.transaction() as cursor:
            cursor.execute(self._list_sql)
            rows = cursor.fetchall()
        ended = 0
        waiting = {worker for worker, _, _ in segments(self.journal_dir)}
        for worker_id, seen_at, oldest_open_at in rows:
            if worker_id == self.worker.id or worker_id in waiting:
                continue  # its own journal is still being replayed here: its endings may be in it
            gone = worker_gone(self.journal_dir, worker_id)
            if gone is False or (gone is None and now - seen_at <= self.grace_ms):
                continue
            ended += self._end(worker_id, since=oldest_open_at, claim=seen_at)
            if gone:
                forget_worker(self.journal_dir, worker_id)
        # Workers of this host that died before they were ever seen in the database (or whose
        # row another instance claimed first): their journal may have brought calls since.
        known = {worker_id for worker_id, _, _ in rows}
        for worker_id in alive_markers(self.journal_dir):
            if worker_id in known or worker_id in waiting or worker_id == self.worker.id:
                continue
            if worker_gone(self.journal_dir, worker_id):
                ended += self._end(worker_id, since=worker_started_at(worker_id), claim=None)
                forget_worker(self.journal_dir, worker_id)
        return ended

    def _end(self, worker_id: str, *, since: int, claim: int | None) -> int:
        now = now_ms()
        with self.tx.time_limit(), self.tx.transaction() as cursor:
            if claim is not None:
                cursor.execute(self._claim_sql, {"id": worker_id, "seen": claim})
                if cursor.rowcount != 1:
                    return 0  # another sweeper has it, or the worker came back
            cursor.execute(self._open_calls_sql, {"since": since, "worker": worker_id})
            calls = cursor.fetchall()
            for db_id, session_id, model, provider, _timestamp, _path in calls:
                cursor.execute(self.sql.end_call_sql, _interrupted(db_id, session_id, model, provider, now))
        for _db_id, _session_id, model, provider, _timestamp, path in calls:
            if self.interrupted is not None:
                self.interrupted(path=path, provider=provider, model=model)
        if calls:
            log.warning("gateway worker %s is gone: %d of its calls ended as interrupted", worker_id, len(calls))
        return len(calls)


def _identity(worker: WorkerIdentity) -> dict[str, Any]:
    return {"id": worker.id, "host": worker.host, "pid": worker.pid, "started_at": worker.started_at}


def _interrupted(db_id: int, session_id: str, model: str, provider: str, now: int) -> dict[str, Any]:
    return {
        "request_id": db_id, "session_id": session_id, "response_id": uuid7(), "model": model,
        "timestamp": now, "provider_response": None, "openai_response": None, "parent_id": None,
        "prompt_tokens": None, "completion_tokens": None, "total_tokens": None, "usage_estimated": False,
        "finish_reason": None, "status": "interrupted", "status_code": None, "error": INTERRUPTED,
        "provider": provider, "duration_ms": None, "ttft_ms": None, "client_disconnected": False,
        "created_at": now, "cost_usd": None,
    }

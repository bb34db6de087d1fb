"""Replaying journal records into the database: in order, idempotently, in short transactions.

Each record is keyed by the request UUID minted at ingress: a request already
recorded is not recorded again, and a request has one response (unique), which a
replay never duplicates. So replaying a segment twice (a drainer killed halfway,
two processes racing) writes nothing twice.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.services.audit.connection import Transactions
from app.services.audit.items import describe, note_repairs
from app.services.audit.journal import Journal, read_frames
from app.services.audit.repair import make_storable, refused_for_content
from app.services.audit.segments import mark_replayed, replayed_to
from app.services.audit.statements import AuditStatements

log = logging.getLogger(__name__)

# A batch is one short transaction: it holds SQLite's write lock for a few milliseconds.
BATCH_RECORDS = 32
BATCH_BYTES = 1 << 20


class MissingRequest(ValueError):
    """An ending whose request is recorded nowhere in the database (its own record was refused)."""


class DatabaseUnusable(Exception):
    """The database failed for its own sake while replaying: try again later."""


@dataclass(slots=True)
class Progress:
    records: int = 0
    dead_letters: int = 0
    done: bool = False


def apply(sql: AuditStatements, cursor: Any, record: dict[str, Any]) -> None:
    """Write one journal record, unless it is already there."""
    if record["kind"] == "open":
        _request(sql, cursor, record["session"], record["request"])
        return
    if "request" in record:  # written along with its ending: recorded here unless it already is
        db_id = _request(sql, cursor, record["session"], record["request"])
    else:
        db_id = sql.find_request(cursor, record["request_id"])
        if db_id is None:
            raise MissingRequest(f"request {record['request_id']} is not recorded")
    response = record["response"]
    cursor.execute(sql.replay_response_sql, {"cost_usd": None, **response, "request_id": db_id,
                                             "repaired": response.get("repaired")})
    if record.get("settle") and cursor.rowcount:  # the ending was not there: its cost was not counted either
        sql.limits.settle(cursor, record["settle"])
    if record["attempts"]:
        cursor.executemany(sql.replay_attempt_sql, [{**a, "request_id": db_id} for a in record["attempts"]])
    if record["continuation"] is not None:
        cursor.execute(sql.continue_session_sql, record["continuation"])


def _request(sql: AuditStatements, cursor: Any, session: dict[str, Any], request: dict[str, Any]) -> int:
    db_id = sql.find_request(cursor, request["request_id"])
    if db_id is not None:
        return db_id
    cursor.execute(sql.replay_session_sql, session)
    # Records journaled by an older version lack the newer columns.
    cursor.execute(sql.replay_request_sql, {"worker_id": None, "repaired": None, "key_id": None, "tags": None,
                                            "trace_id": None, **request})
    return cursor.fetchone()[0]


def repair(record: dict[str, Any]) -> bool:
    """Make a refused record storable (noting what changed); True when anything did."""
    changed = False
    if "request" in record:
        notes = make_storable("session", record["session"]) + make_storable("request", record["request"])
        changed |= note_repairs(record["request"], notes)
    if "response" in record:
        notes = make_storable("response", record["response"])
        for attempt in record["attempts"]:
            notes += make_storable("attempt", attempt)
        if record["continuation"] is not None:
            notes += make_storable("session", record["continuation"])
        changed |= note_repairs(record["response"], notes)
    return changed


class Replayer:
    """Writes journal records into the database through one connection; refused ones become dead letters."""

    def __init__(self, tx: Transactions, sql: AuditStatements, journal: Journal) -> None:
        self.tx, self.sql, self.journal = tx, sql, journal

    def segment(self, path: Path, *, deadline: float) -> Progress:
        """Replay a claimed segment from where it was left, until its end or ``deadline`` (time.monotonic)."""
        progress = Progress()
        batch: list[dict[str, Any]] = []
        position = end = replayed_to(path)
        for end, record in read_frames(path, position):
            batch.append(record)
            if len(batch) >= BATCH_RECORDS or end - position >= BATCH_BYTES:
                self._write(batch, progress)
                mark_replayed(path, end)
                batch, position = [], end
                if time.monotonic() > deadline:
                    return progress
                time.sleep(0)  # let the hot path take the write lock between batches
        if batch:
            self._write(batch, progress)
            position = end
        size = path.stat().st_size
        if position < size:
            log.warning("journal segment %s: %d bytes after offset %d are a torn or damaged record, left out "
                        "(the process writing it died before it was stored)", path.name, size - position, position)
        progress.done = True
        return progress

    def records(self, records: Iterable[dict[str, Any]], *, keep: Callable[[dict, str], None]) -> Progress:
        """Replay records one by one (dead letters); ``keep(record, error)`` gets those refused again."""
        progress = Progress()
        for record in records:
            error = self._one(record)
            if error is None:
                progress.records += 1
            else:
                keep(record, error)
                progress.dead_letters += 1
        progress.done = True
        return progress

    def _write(self, batch: list[dict[str, Any]], progress: Progress) -> None:
        def write_all(cursor: Any) -> None:
            # The sessions' locks in one order, as the hot path takes them (stable: a call keeps its order).
            for record in sorted(batch, key=_session_of):
                apply(self.sql, cursor, record)

        try:
            self.tx.run(write_all)
            progress.records += len(batch)
            return
        except Exception as exc:
            if not refused_for_content(exc):
                raise DatabaseUnusable(describe(exc)) from exc
        for record in batch:  # one bad record must not take the others with it
            error = self._one(record)
            if error is None:
                progress.records += 1
            elif self.journal.dead_letter(record, error):
                log.error("AUDIT REPLAY REFUSED: %s record of request %s kept as a dead letter: %s",
                          record["kind"], _request_id(record), error)
                progress.dead_letters += 1
            else:
                raise DatabaseUnusable(f"cannot keep a dead letter: {error}")

    def _one(self, record: dict[str, Any]) -> str | None:
        """Write one record (repairing it once if refused); the error when it is refused still."""
        for attempt in range(2):
            try:
                self.tx.run(lambda cursor: apply(self.sql, cursor, record))
                return None
            except Exception as exc:
                if not refused_for_content(exc):
                    raise DatabaseUnusable(describe(exc)) from exc
                if attempt or not repair(record):
                    return describe(exc)
        return None


def _session_of(record: dict[str, Any]) -> str:
    return (record.get("session") or {}).get("id") or (record.get("response") or {}).get("session_id") or ""


def _request_id(record: dict[str, Any]) -> str:
    return record.get("request_id") or record.get("request", {}).get("request_id", "?")

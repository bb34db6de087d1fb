"""The journal by hand (``provider-cli audit``): its status, replaying it, and its dead letters."""

from __future__ import annotations

import fcntl
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from app.config import Settings
from app.db import get_engine
from app.services.audit.connection import Transactions
from app.services.audit.journal import DEAD_DIR, Journal, frame, read_frames
from app.services.audit.records import WorkerIdentity
from app.services.audit.replay import Replayer
from app.services.audit.segments import claimed, dead_letters, remove_segment, segments
from app.services.audit.statements import AuditStatements
from app.services.audit.sweep import Sweeper


@dataclass(slots=True)
class ReplayReport:
    records: int = 0
    dead_letters: int = 0
    busy_segments: list[str] = field(default_factory=list)  # held by a running gateway, which replays them
    interrupted: int = 0


@dataclass(slots=True)
class _Tools:
    replayer: Replayer
    sweeper: Sweeper
    tx: Transactions


def _tools(settings: Settings) -> _Tools:
    url = settings.database_url
    engine = get_engine(url, busy_timeout_s=0) if sa.make_url(url).get_backend_name() == "sqlite" else get_engine(url)
    me = WorkerIdentity.new()
    journal = Journal(
        settings.audit_journal_dir, worker_id=me.id, max_bytes=settings.audit_journal_max_bytes,
        target=engine.url.render_as_string(hide_password=True),
    )
    sql = AuditStatements(engine.dialect)
    tx = Transactions(engine, wait_s=5.0)  # a person waits: ride out a busy database
    sweeper = Sweeper(
        tx, sql, worker=me, journal_dir=settings.audit_journal_dir, grace_ms=settings.audit_sweep_grace_ms
    )
    return _Tools(replayer=Replayer(tx, sql, journal), sweeper=sweeper, tx=tx)


def replay_journal(settings: Settings) -> ReplayReport:
    """Replay every segment no running process holds, then end the calls of dead workers."""
    tools, report = _tools(settings), ReplayReport()
    blocked: set[str] = set()
    try:
        for worker_id, _seq, path in segments(settings.audit_journal_dir):
            if worker_id in blocked:
                report.busy_segments.append(path.name)
                continue
            with claimed(path) as fd:
                if fd is None:
                    blocked.add(worker_id)
                    report.busy_segments.append(path.name)
                    continue
                progress = tools.replayer.segment(path, deadline=float("inf"))
                report.records += progress.records
                report.dead_letters += progress.dead_letters
                remove_segment(path)
        report.interrupted = tools.sweeper.sweep()
    finally:
        tools.tx.release()
    return report


def replay_dead_letters(settings: Settings) -> ReplayReport:
    """Try every dead letter again (the database may take it now, or a fix shipped); keep those still refused."""
    tools, report = _tools(settings), ReplayReport()
    try:
        for path in sorted((settings.audit_journal_dir / DEAD_DIR).glob("*.dead")):
            fd = os.open(path, os.O_RDWR)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                if not os.fstat(fd).st_nlink:
                    continue
                kept: list[bytes] = []
                letters = [letter for _, letter in read_frames(path)]
                progress = tools.replayer.records(
                    (letter["record"] for letter in letters),
                    keep=lambda record, error, kept=kept: kept.append(frame({"record": record, "error": error})),
                )
                report.records += progress.records
                report.dead_letters += progress.dead_letters
                _replace(path, kept)
            finally:
                os.close(fd)
    finally:
        tools.tx.release()
    return report


def list_dead_letters(directory: Path) -> list[dict[str, Any]]:
    """Each dead letter: which call, what kind of record, why it was refused."""
    listed = []
    for path, _offset, letter in dead_letters(directory):
        record = letter["record"]
        request = record.get("request") or {}
        listed.append({
            "file": path.name, "kind": record["kind"],
            "request_id": record.get("request_id") or request.get("request_id"),
            "session_id": request.get("session_id") or (record.get("response") or {}).get("session_id"),
            "error": letter["error"],
        })
    return listed


def _replace(path: Path, frames: list[bytes]) -> None:
    """Swap in the letters still refused (or remove the file); appenders wait on our lock, then reopen."""
    if not frames:
        path.unlink()
        return
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{time.monotonic_ns()}.tmp")
    with open(tmp, "wb") as handle:
        handle.write(b"".join(frames))
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)

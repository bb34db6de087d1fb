"""The audit drainer: one loop per worker that replays the journal once the database is writable.

Each tick it writes this worker's heartbeat (which doubles as the probe of a
database that failed), replays what waits in the journal (its own sealed
segments and those of dead processes on this host, oldest first, in short
transactions), and every few seconds ends the calls of workers that died. While
the database fails it backs off, up to ``MAX_BACKOFF_S`` between probes. A
worker that booted without its database passes ``ready``: the start-up work it
owes, tried each tick until it is done, before anything is written or replayed.
Started by gunicorn's ``post_worker_init`` hook, stopped at the worker's exit.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from app.services.audit.connection import Transactions
from app.services.audit.items import describe
from app.services.audit.repair import refused_for_content
from app.services.audit.replay import DatabaseUnusable, Replayer
from app.services.audit.segments import claimed, remove_segment, segments, total_bytes
from app.services.audit.sweep import Sweeper

if TYPE_CHECKING:
    from app.services.audit.log import AuditLog

log = logging.getLogger(__name__)

TICK_S = 1.0
BUSY_TICK_S = 0.05  # while a backlog is being replayed
HEARTBEAT_S = 5.0
SWEEP_S = 5.0
MAX_BACKOFF_S = 5.0
DRAIN_SLICE_S = 0.25  # replaying at most this long a tick, so the hot path keeps the lock most of the time


class AuditDrainer:
    """Heartbeat, replay and sweep for one AuditLog, on a thread (a greenlet under gevent)."""

    def __init__(self, audit: AuditLog, *, grace_ms: int, ready: Callable[[], bool] | None = None) -> None:
        self.audit = audit
        self.ready = ready
        self.tx = Transactions(audit.engine, wait_s=audit.write_timeout_s)
        self.replayer = Replayer(self.tx, audit.sql, audit.journal)
        self.sweeper = Sweeper(
            self.tx, audit.sql, worker=audit.worker, journal_dir=audit.journal.directory, grace_ms=grace_ms,
            interrupted=audit.telemetry.interrupted,
        )
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._next_beat = self._next_sweep = 0.0
        self._backoff = TICK_S
        self._failing = False

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="audit-drainer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """End the loop; replay what this worker journaled if the database takes it, and leave cleanly."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        try:
            self.tick()
            self.sweeper.retire()
        except Exception as exc:  # noqa: BLE001 - leaving anyway: the journal keeps what was not written
            log.warning("audit drainer stopping with the database unusable (%s): the journal keeps the rest",
                        describe(exc))
        self.tx.release()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                busy = self.tick()
            except Exception:  # noqa: BLE001 - the loop must outlive any one failure
                log.exception("the audit drainer failed; retrying")
                busy = False
            self._stop.wait(BUSY_TICK_S if busy else self._backoff if self._failing else TICK_S)

    def tick(self) -> bool:
        """One pass; True when a backlog is left to replay at once."""
        now = time.monotonic()
        # Every process's share of the journal, for the size cap (counted even while the database is away).
        self.audit.journal.recount(total_bytes(self.audit.journal.directory))
        self.audit.metrics.audit_state(database_up=self.audit.healthy, journal_bytes=self.audit.journal.total_bytes)
        if self.ready is not None:
            if not self.ready():
                self._failing = True
                self._backoff = min(self._backoff * 2, MAX_BACKOFF_S)
                return False
            self.ready = None
        if not self.audit.healthy or now >= self._next_beat:
            if not self._beat(now):
                return False
        try:
            busy = self._drain(deadline=now + DRAIN_SLICE_S)
        except DatabaseUnusable as exc:
            self._failed(exc)
            return False
        if now >= self._next_sweep:
            self._next_sweep = now + SWEEP_S
            self.sweeper.sweep()
        return busy

    def _beat(self, now: float) -> bool:
        try:
            oldest = min(self.audit.open_calls.values(), default=None)
            self.sweeper.heartbeat(oldest_open_at=oldest)
        except Exception as exc:  # noqa: BLE001 - the database is unusable: back off, try again
            if refused_for_content(exc):
                raise
            self._failed(exc)
            return False
        self._next_beat = now + HEARTBEAT_S
        self._backoff = TICK_S
        if self._failing:
            log.warning("audit database reachable again")
        self._failing = False
        self.audit.database_recovered()
        return True

    def _failed(self, exc: BaseException) -> None:
        if not self._failing:
            log.warning("audit database unusable (%s): retrying with backoff", describe(exc))
        self._failing = True
        self._backoff = min(self._backoff * 2, MAX_BACKOFF_S)
        self.audit.database_unusable(exc)

    def _drain(self, *, deadline: float) -> bool:
        """Replay what can be claimed, oldest first per writer; True when time ran out with more to do."""
        journal = self.audit.journal
        journal.seal()  # our own records: replayable now that the database takes writes
        blocked: set[str] = set()
        for worker_id, _seq, path in segments(journal.directory):
            if worker_id in blocked:
                continue  # an older segment of this writer is not replayed yet: keep its order
            with claimed(path) as fd:
                if fd is None:
                    blocked.add(worker_id)
                    continue
                progress = self.replayer.segment(path, deadline=deadline)
                self.audit.metrics.audit_replayed(progress.records)
                if progress.records or progress.dead_letters:
                    log.info("replayed %d journal records from %s (%d kept as dead letters)",
                             progress.records, path.name, progress.dead_letters)
                if not progress.done:
                    return True
                remove_segment(path)
            if time.monotonic() > deadline:
                return True
        return False

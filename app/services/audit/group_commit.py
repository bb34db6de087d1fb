"""Group commit: many small writes share few transactions, with no writer thread in the way.

A caller that must wait for its write (the request row, which must exist before
the upstream call) commits it itself when no commit is running, taking along
everything queued: at low load that costs no hand-off between threads or
greenlets at all. When a commit is running, it waits; the leader that commits
its item wakes it, or hands it the lead if its item came too late for that
commit. Writes nobody waits for (the response row) queue up and linger up to
20 ms to share the next request row's commit, while other calls are in flight;
a small flusher commits them if no request comes, and at once when nothing
else is in flight (the CPU is idle while the client reads its answer). The
queue is bounded (past it, a write is made synchronous), and everything queued
is written when the process exits. When a batch fails because of its content,
its items are retried one by one (and repaired, if they can be); when the
database itself failed, every item fails at once and goes where its
``failed`` sends it.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any

log = logging.getLogger(__name__)

MAX_QUEUED = 10_000
RACE_RETRIES = 2
MAX_BATCH = 256
# A queued response row waits up to this long for the next request row, so that
# one commit carries both.
LINGER_S = 0.02
_writers: weakref.WeakSet[GroupCommitWriter] = weakref.WeakSet()


class WorkItem:
    """One unit of work; ``apply`` runs inside the leader's transaction."""

    __slots__ = ("done", "error", "finished", "promoted")

    def __init__(self) -> None:
        self.done: threading.Event | None = None  # set when finished, or when handed the lead
        self.error: BaseException | None = None
        self.finished = False
        self.promoted = False

    @property
    def lock_key(self) -> str:
        """What the item locks (a session's row): a batch takes its locks in this order."""
        return ""

    @property
    def last_key(self) -> str:
        """What ``apply_last`` locks (a gateway key's counters): taken in this order; "" for nothing."""
        return ""

    def apply_last(self, cursor: Any) -> None:
        """Work after every item's ``apply``, in the same transaction (a key's counters, after every session)."""

    def apply(self, cursor: Any) -> None:
        raise NotImplementedError

    def failed(self, error: BaseException) -> None:
        """Called when the item could not be written: the database is unusable, or it refused the item alone."""
        self.error = error

    def repair(self, error: BaseException) -> bool:
        """Make an item the database refused storable; True when anything changed (it is tried once more)."""
        return False


class _Barrier(WorkItem):
    """Finishes once everything queued before it has been written (flush)."""

    __slots__ = ()

    def apply(self, cursor: Any) -> None:
        pass


class GroupCommitWriter:
    """A queue of work items, committed in batches by whichever caller leads."""

    def __init__(
        self, transaction: Callable[[], Any], *, name: str, release: Callable[[], None] | None = None,
        calls_in_flight: Callable[[], int] | None = None,
        refused_for_content: Callable[[BaseException], bool] = lambda exc: True,
        lost_a_race: Callable[[BaseException], bool] = lambda exc: False,
        time_limit: Callable[[], AbstractContextManager] = nullcontext,
        committed: Callable[[int, float], None] | None = None,
    ) -> None:
        self._transaction = transaction
        self._committed = committed  # told (items, seconds) after each commit: the metrics
        self._release = release
        # Whether a failure was the items' fault (retry them alone) or the database's (fail them all).
        self._refused_for_content = refused_for_content
        self._lost_a_race = lost_a_race  # a deadlock or serialization failure: the batch is simply retried
        self._time_limit = time_limit
        # How many calls this process has open (a hint): shapes when a commit is taken.
        self._calls_in_flight = calls_in_flight
        self._name = name
        self._reset()
        _writers.add(self)

    def _reset(self) -> None:
        self._mutex = threading.Lock()
        self._pending: list[WorkItem] = []
        self._leading = False
        self._flusher: threading.Thread | None = None
        self._flush_wanted = threading.Event()
        self._flush_now = False
        self._pid = os.getpid()

    def submit(self, item: WorkItem, *, wait: bool) -> None:
        """Queue ``item``; with ``wait``, return once it is committed (or has failed)."""
        if self._pid != os.getpid():  # a forked child starts with an empty queue of its own
            self._reset()
        with self._mutex:
            wait = wait or len(self._pending) >= MAX_QUEUED  # back-pressure, never an unbounded buffer
            self._pending.append(item)
            lead = wait and not self._leading
            if wait:
                item.done = threading.Event()
                self._leading = True
        if not wait:
            # Nothing else in flight: no request row is coming to share a commit with, and the
            # CPU is idle while the client reads its answer, so write now instead of lingering.
            self._want_flush(now=self._calls_in_flight is not None and self._calls_in_flight() <= 0)
            return
        if not lead:
            try:
                item.done.wait()
            except BaseException:  # killed while waiting: the item is still written, by others
                with self._mutex:
                    item.done = None  # never hand the lead to a caller that is gone
                    if item.promoted and not item.finished:
                        self._hand_over_locked()
                raise
            if item.finished:
                return
        self._lead(item)  # the lead is ours: either nobody had it, or it was handed to us

    def flush(self) -> None:
        """Return once everything queued so far is written."""
        if self._pid == os.getpid() and (self._pending or self._leading):
            self.submit(_Barrier(), wait=True)

    def stop(self) -> None:
        """Write what is queued and give back the connection (at exit; the writer stays usable)."""
        if self._pid != os.getpid():
            return
        self.flush()
        if self._release is not None:
            with self._mutex:
                if self._leading:
                    return  # someone is writing right now: they keep the connection
                self._leading = True
            try:
                self._release()
            finally:
                with self._mutex:
                    self._leading = False

    def _lead(self, own: WorkItem | None) -> None:
        """Commit batches until ``own`` is written, then hand the lead on (or give it up)."""
        batch: list[WorkItem] = []
        try:
            if self._calls_in_flight is not None and self._calls_in_flight() > 1:
                # Calls other than the leader's own are in flight: let those ready to run queue
                # their rows first, so that they share this commit (under gevent, each would
                # otherwise commit alone).
                time.sleep(0)
            while True:
                with self._mutex:
                    batch = self._pending[:MAX_BATCH]
                    del self._pending[:MAX_BATCH]
                if batch:
                    self._write(batch)
                    for item in batch:
                        item.finished = True
                        if item.done is not None and item is not own:
                            item.done.set()
                    batch = []
                with self._mutex:
                    if own is None and self._pending and all(item.done is None for item in self._pending):
                        continue  # the flusher writes everything nobody waits for
                    if own is None or own.finished:
                        self._hand_over_locked()
                        return
        except BaseException:
            # Killed mid-write (a greenlet timeout, an exit): the batch was rolled back.
            with self._mutex:
                self._pending[:0] = [item for item in batch if not item.finished]
                if own is not None:
                    own.done = None
                self._hand_over_locked()
            raise

    def _hand_over_locked(self) -> None:
        """Give the lead to the first caller still waiting, or give it up (mutex held)."""
        successor = next((item for item in self._pending if item.done is not None), None)
        if successor is None:
            self._leading = False
        else:
            successor.promoted = True
            successor.done.set()

    def _want_flush(self, *, now: bool = False) -> None:
        if self._flusher is None:
            with self._mutex:
                if self._flusher is None:
                    self._flusher = threading.Thread(target=self._flush_lingering, name=self._name, daemon=True)
                    self._flusher.start()
        if now:
            self._flush_now = True
        if not self._flush_wanted.is_set():
            self._flush_wanted.set()

    def _flush_lingering(self) -> None:
        """Commit rows nobody waits for once they have lingered, if no request took them along."""
        while True:
            self._flush_wanted.wait()
            self._flush_wanted.clear()
            if not self._flush_now:
                time.sleep(LINGER_S)
            self._flush_now = False
            with self._mutex:
                lead = bool(self._pending) and not self._leading
                if lead:
                    self._leading = True
            if lead:
                try:
                    self._lead(None)
                except Exception:  # noqa: BLE001 - _write logs its own failures; keep flushing
                    log.exception("the audit flusher failed")
            elif self._pending:
                self._flush_wanted.set()  # a leader is busy: look again after the next linger

    def _write(self, items: list[WorkItem]) -> None:
        items = [item for item in items if not isinstance(item, _Barrier)]
        if not items:
            return
        try:
            self._commit(items)
            return
        except Exception as exc:
            if not self._refused_for_content(exc):
                self._fail_all(items, exc)
                return
            if len(items) > 1:
                log.warning("a batch of %d audit writes failed (%s); writing them one by one", len(items), exc)
        for index, item in enumerate(items):  # one bad row must not take the others with it
            try:
                self._commit([item])
                continue
            except Exception as exc:
                error = exc
            if self._refused_for_content(error) and item.repair(error):
                try:
                    self._commit([item])
                    continue
                except Exception as exc:
                    error = exc
            if not self._refused_for_content(error):
                self._fail_all(items[index:], error)
                return
            log.error("AUDIT WRITE FAILED: the database refused the row (%s)", error)
            item.failed(error)

    def _commit(self, items: list[WorkItem]) -> None:
        if len(items) > 1:
            # Every batch locks its sessions in one order, so two writers (other workers, other
            # instances) never wait on each other in a cycle; stable, so one session keeps its order.
            items = sorted(items, key=lambda item: item.lock_key)
        for attempt in range(RACE_RETRIES + 1):
            started = time.perf_counter()
            try:
                with self._time_limit(), self._transaction() as cursor:
                    for item in items:
                        item.apply(cursor)
                    # Last, in one order: a hot row (a key's counters) is locked only until the commit.
                    for item in sorted((item for item in items if item.last_key), key=lambda item: item.last_key):
                        item.apply_last(cursor)
                if self._committed is not None:
                    self._committed(len(items), time.perf_counter() - started)
                return
            except Exception as exc:
                if attempt == RACE_RETRIES or not self._lost_a_race(exc):
                    raise
                log.info("audit batch lost a race (%s); retrying", type(exc).__name__)

    def _fail_all(self, items: list[WorkItem], error: BaseException) -> None:
        log.warning("audit database unusable (%s: %s): %d writes go elsewhere", type(error).__name__, error, len(items))
        for item in items:
            item.failed(error)


def stop_all() -> None:
    """Flush every writer of this process and give back its connection (worker_exit, atexit)."""
    for writer in list(_writers):
        try:
            writer.stop()
        except Exception:  # noqa: BLE001 - exiting anyway; say so loudly
            log.exception("flushing audit writes at exit failed")


atexit.register(stop_all)

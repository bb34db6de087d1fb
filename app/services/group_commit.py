"""Group commit: one writer per process turns many small writes into few transactions.

Callers hand over work items; the writer drains whatever has queued up and
applies it in one transaction, so a commit (the expensive part of a SQLite or
PostgreSQL write) is shared by many requests. A caller may wait for its item
(the request row, which must exist before the upstream call) or not (the
response row, which lingers up to 20 ms to share the next request row's commit).
The queue is bounded, a failed batch is retried item by item, and everything
queued is flushed when the process exits.
"""

from __future__ import annotations

import atexit
import logging
import os
import queue
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

MAX_QUEUED = 10_000
MAX_BATCH = 256
# A queued response row waits up to this long for the next request row, so that
# one commit carries both; a waited-for item ends the wait at once.
LINGER_S = 0.02
_STOP = object()
_writers: weakref.WeakSet[GroupCommitWriter] = weakref.WeakSet()


class WorkItem:
    """One unit of work; ``apply`` runs inside the writer's transaction."""

    __slots__ = ("done", "error")

    def __init__(self) -> None:
        self.done: threading.Event | None = None
        self.error: BaseException | None = None

    def apply(self, cursor: Any) -> None:
        raise NotImplementedError

    def failed(self, error: BaseException) -> None:
        """Called when the item could not be written even alone."""
        self.error = error


class GroupCommitWriter:
    """A queue and the thread (a greenlet under gevent) that writes it in batches."""

    def __init__(self, transaction: Callable[[], Any], *, name: str) -> None:
        self._transaction = transaction
        self._name = name
        self._queue: queue.Queue = queue.Queue(MAX_QUEUED)
        self._thread: threading.Thread | None = None
        self._pid: int | None = None
        self._lock = threading.Lock()
        _writers.add(self)

    def submit(self, item: WorkItem, *, wait: bool) -> None:
        """Queue ``item``; with ``wait``, return once it is committed (or has failed)."""
        self._ensure_running()
        if wait:
            item.done = threading.Event()
        self._queue.put(item)  # blocks when full: back-pressure, never an unbounded buffer
        if wait:
            item.done.wait()

    def flush(self) -> None:
        """Return once everything queued so far is written."""
        if self._thread is not None and self._pid == os.getpid():
            self._queue.join()

    def stop(self) -> None:
        """Write what is queued, then end the writer (at process exit)."""
        if self._thread is None or self._pid != os.getpid() or not self._thread.is_alive():
            return
        self._queue.put(_STOP)
        self._thread.join(timeout=30)

    def _ensure_running(self) -> None:
        if self._thread is not None and self._pid == os.getpid():
            return
        with self._lock:
            if self._thread is not None and self._pid == os.getpid():
                return
            if self._pid != os.getpid():  # a forked child starts with an empty queue of its own
                self._queue = queue.Queue(MAX_QUEUED)
            self._pid = os.getpid()
            self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            batch = self._next_batch()
            stop = _STOP in batch
            items = [item for item in batch if item is not _STOP]
            try:
                if items:
                    self._write(items)
            finally:
                for item in items:
                    if item.done is not None:
                        item.done.set()
                for _ in batch:
                    self._queue.task_done()
            if stop:
                return

    def _next_batch(self) -> list[Any]:
        """Everything queued; items nobody waits for linger briefly to share the next commit."""
        batch = [self._queue.get()]
        linger_until = time.monotonic() + LINGER_S
        while len(batch) < MAX_BATCH:
            waiting = any(item is _STOP or item.done is not None for item in batch)
            try:
                if waiting:
                    batch.append(self._queue.get_nowait())
                else:
                    timeout = linger_until - time.monotonic()
                    if timeout <= 0:
                        break
                    batch.append(self._queue.get(timeout=timeout))
            except queue.Empty:
                break
        return batch

    def _write(self, items: list[WorkItem]) -> None:
        try:
            with self._transaction() as cursor:
                for item in items:
                    item.apply(cursor)
            return
        except Exception as exc:
            if len(items) == 1:
                log.exception("AUDIT WRITE FAILED")
                items[0].failed(exc)
                return
            log.warning("a batch of %d audit writes failed; writing them one by one", len(items))
        for item in items:  # one bad row must not take the others with it
            try:
                with self._transaction() as cursor:
                    item.apply(cursor)
            except Exception as exc:
                log.exception("AUDIT WRITE FAILED")
                item.failed(exc)


def stop_all() -> None:
    """Flush and stop every writer of this process (gunicorn's worker_exit, atexit)."""
    for writer in list(_writers):
        try:
            writer.stop()
        except Exception:  # noqa: BLE001 - exiting anyway; say so loudly
            log.exception("flushing audit writes at exit failed")


atexit.register(stop_all)

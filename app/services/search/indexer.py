"""The background indexer: one loop that indexes newly answered calls, started with the worker's other loops."""

from __future__ import annotations

import logging
import threading
import time

import sqlalchemy as sa

from app.db import get_engine
from app.services.search import index

log = logging.getLogger(__name__)

INTERVAL_S = 1.0  # a new call is searchable within about this long, plus its batch


class SearchIndexer:
    """Indexes calls as their responses are recorded, off the request path.

    Under gevent the thread is a greenlet: each batch reads and writes a few dozen rows, then
    the loop rests at least as long as the batch took, so a backlog never takes more than
    half of a worker. Several workers may run one each: a lock lets one work at a time.
    """

    def __init__(self, database_url: str, *, interval_s: float = INTERVAL_S) -> None:
        # busy_timeout 0: a locked SQLite fails at once and the loop retries, rather than
        # sleeping inside SQLite, which would stall a whole gevent worker.
        self.engine = get_engine(database_url, busy_timeout_s=0)
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._mark: int | None = None

    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name="search-indexer", daemon=True)
            self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

    def run_once(self) -> int:
        """Index one batch of new calls; how many were indexed (0: none new, or another indexer's turn)."""
        if self._mark is None:
            self._mark = index.start_mark(self.engine)
        done = index.index_batch(self.engine, after=self._mark)
        if done is None:
            return 0
        count, self._mark = done
        return count

    def _loop(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            full = False
            try:
                full = self.run_once() >= index.BATCH
            except sa.exc.OperationalError as exc:  # SQLite busy, PostgreSQL restarting: next tick
                log.debug("search indexer: %s", exc.orig)
            except Exception:  # noqa: BLE001 - the loop must outlive one bad batch
                log.exception("search indexer: a batch failed")
            spent = time.monotonic() - started
            self._stop.wait(max(spent, 0.01) if full else self.interval_s)

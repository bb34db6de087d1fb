"""SQLite WAL checkpoints, run beside the workers instead of inside their requests.

By default the connection whose commit crosses 1,000 WAL pages copies them into
the database file and fsyncs it, stalling that request for milliseconds (and,
under gevent, every stream its worker holds). Under gunicorn a small process of
its own checkpoints every half second instead, and the workers' hot-path
connections only checkpoint as a fallback far past that size.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time

import sqlalchemy as sa

log = logging.getLogger(__name__)

ENV_FLAG = "PROVIDER_ROUTER_EXTERNAL_CHECKPOINTS"
INTERVAL_S = 0.5
# Fallback when the checkpointer is away: about 40 MB of WAL.
WORKER_AUTOCHECKPOINT_PAGES = 10_000


def worker_autocheckpoint_pages() -> int:
    """What the hot path's connections set as wal_autocheckpoint."""
    return WORKER_AUTOCHECKPOINT_PAGES if os.environ.get(ENV_FLAG) == "1" else 1000


def run(url: str, *, interval_s: float = INTERVAL_S, parent_pid: int | None = None) -> None:
    """Checkpoint the SQLite database at ``url`` until the parent process goes away."""
    database = sa.make_url(url).database
    if not url.startswith("sqlite") or not database:
        return
    connection = None
    failing = False
    try:
        while parent_pid is None or os.getppid() == parent_pid:
            try:
                connection = connection or sqlite3.connect(database, timeout=5)
                connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                failing = False
            except sqlite3.Error as exc:
                if not failing:
                    log.warning("WAL checkpoint failed (%s): retrying on a new connection", exc)
                failing = True
                if connection is not None:
                    connection.close()  # the file may have been replaced or remounted: open it afresh
                    connection = None
            time.sleep(interval_s)
    finally:
        if connection is not None:
            connection.close()

"""Disk syncs that never stall a gevent worker: under gevent, fsync runs on a thread of the hub's pool.

A plain ``os.fsync`` blocks the whole worker (every stream it holds) for as long
as the disk takes; on the hub's thread pool only the greenlet that asked waits.
"""

from __future__ import annotations

import os

from app.db.limits import gevent_active


def fsync(fd: int, *, close: bool = False) -> None:
    """``os.fsync(fd)``, cooperatively under gevent; ``close`` closes ``fd`` afterwards."""
    try:
        if gevent_active():
            from gevent import get_hub

            get_hub().threadpool.apply(os.fsync, (fd,))
        else:
            os.fsync(fd)
    finally:
        if close:
            os.close(fd)

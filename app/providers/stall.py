"""Mid-stream read timeouts under gevent without a timer per read: one watchdog per worker.

A gevent socket with a timeout starts and cancels a timer (a ``Timeout`` object and a libev
watcher) every time it waits: ~10 us per relayed event measured on a minimal relay
(``bench/relay_bench.py --floor-timeout``). A stream's upstream socket is instead read without a
timeout while a watchdog greenlet, waking every ``CHECK_S``, throws ``TimeoutError`` into a reader
that has waited longer than its timeout. Readers arm before each read and disarm after, so the
error can only land in a read. In plain threads (tests, the CLI) this is not used: the socket
keeps its own timeout.
"""

from __future__ import annotations

import time
from typing import Any

CHECK_S = 0.25


class StallWatch:
    """Readers waiting on an upstream, and when each gives up."""

    def __init__(self) -> None:
        self._waiting: dict[int, tuple[float, Any]] = {}  # key -> (deadline, greenlet)
        self._runner: Any = None

    def __len__(self) -> int:
        return len(self._waiting)

    def arm(self, key: int, timeout_s: float, greenlet: Any) -> None:
        self._waiting[key] = (time.monotonic() + timeout_s, greenlet)
        if self._runner is None:
            import gevent

            self._runner = gevent.spawn(self._run)

    def disarm(self, key: int) -> None:
        self._waiting.pop(key, None)

    def _run(self) -> None:
        import gevent

        try:
            while self._waiting:
                gevent.sleep(CHECK_S)
                self.expire(time.monotonic())
        finally:
            self._runner = None

    def expire(self, now: float) -> int:
        """Throw TimeoutError into every reader past its deadline; how many."""
        late = [(key, entry) for key, entry in self._waiting.items() if entry[0] <= now]
        for key, entry in late:
            entry[1].parent.loop.run_callback(self._throw, key, entry)
        return len(late)

    def _throw(self, key: int, entry: tuple[float, Any]) -> None:
        # Still the same read: the reader has not had its data (it disarms the moment it does).
        if self._waiting.get(key) is entry:
            del self._waiting[key]
            entry[1].throw(TimeoutError("the upstream sent nothing within the read timeout"))


def watched_greenlet() -> Any:
    """The gevent greenlet running this code, when the socket module is gevent's; else None."""
    try:
        from gevent import getcurrent, monkey
        from gevent.greenlet import Greenlet
    except ImportError:  # pragma: no cover - gevent is a dependency
        return None
    if not monkey.is_module_patched("socket"):
        return None
    current = getcurrent()
    return current if isinstance(current, Greenlet) else None


stall_watch = StallWatch()

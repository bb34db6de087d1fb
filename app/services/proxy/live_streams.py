"""The streams a worker is relaying, so that a shutdown can end them properly (gunicorn.conf.py)."""

from __future__ import annotations

from typing import Any

from app.errors import StreamEnded


class LiveStreams:
    """The streams this process is relaying, so that a shutdown can end them properly.

    Ending one raises StreamEnded where its greenlet waits for the upstream: the
    client gets an error event and ``[DONE]``, and the call is recorded
    ``incomplete`` with what had been relayed, before the worker exits.
    """

    def __init__(self) -> None:
        self._streams: dict[int, Any] = {}

    def __len__(self) -> int:
        return len(self._streams)

    def add(self, key: int) -> None:
        self._streams[key] = _current_greenlet()

    def discard(self, key: int) -> None:
        self._streams.pop(key, None)

    def end_all(self, reason: str) -> int:
        """End every stream still running (under gevent; a thread cannot be interrupted); how many."""
        ended = 0
        for key, runner in list(self._streams.items()):
            if runner is not None and self._streams.pop(key, None) is not None:
                runner.kill(StreamEnded(reason), block=False)
                ended += 1
        return ended


def _current_greenlet() -> Any:
    """The greenlet relaying this stream, under gevent; None in a plain thread."""
    try:
        from gevent import getcurrent
        from gevent.hub import Hub
    except ImportError:  # pragma: no cover - gevent is a dependency
        return None
    current = getcurrent()
    return None if isinstance(current, Hub) or not hasattr(current, "kill") else current


live_streams = LiveStreams()

"""Bounded waits on a database under gevent: a stalled server costs a bounded wait, never a hang.

psycopg cooperates with gevent (its waits go through the patched selectors), so a
gevent timeout can interrupt a query that gets no answer. Outside gevent (tests,
the CLI) nothing is bounded here: there only the driver's own timeouts apply.
"""

from __future__ import annotations

import sys
from contextlib import AbstractContextManager, nullcontext


class DatabaseTimeout(Exception):
    """The database did not answer within the bound."""


def gevent_active() -> bool:
    """Whether this process runs under gevent's monkey patching (a gunicorn gevent worker)."""
    monkey = sys.modules.get("gevent.monkey")
    return monkey is not None and monkey.is_module_patched("socket")


def time_limit(seconds: float) -> AbstractContextManager:
    """Raises DatabaseTimeout in the block once ``seconds`` have passed (under gevent)."""
    if not gevent_active():
        return nullcontext()
    import gevent

    return gevent.Timeout(seconds, DatabaseTimeout(f"no answer from the database within {seconds:g} s"))

"""A database that cannot be reached right now, told apart from one that refuses us for a reason.

Refused, reset or timed-out connections, a host name that does not resolve (a compose service
that is down), and a server starting up, shutting down or out of connection slots pass: a gateway
starts without its database then and catches up once it answers. A wrong password, a role or a
database that does not exist, or an SQLite file that cannot be opened are the operator's to fix:
start-up still stops on them.
"""

from __future__ import annotations

import sqlalchemy as sa

from app.db.limits import DatabaseTimeout

# libpq gives no SQLSTATE for a failed connection: a server's own refusal is a "FATAL:" line,
# and these are the ones that pass with time (57P01-57P03, 53300).
TRANSIENT_FATALS = (
    "the database system is starting up", "the database system is shutting down",
    "the database system is in recovery mode", "the database system is not yet accepting connections",
    "terminating connection due to administrator command", "too many clients already",
    "remaining connection slots are reserved",
)

# Refusals that come before any "FATAL:" line, from the client's side of TLS: settings to fix, not an outage.
PERMANENT = ("SSL", "certificate", "sslmode")


def cannot_reach(exc: BaseException) -> bool:
    """True when ``exc`` says the server cannot be reached now (as opposed to refusing us for good)."""
    if isinstance(exc, DatabaseTimeout):
        return True
    if not isinstance(exc, sa.exc.OperationalError) or exc.orig is None:
        return False
    if type(exc.orig).__module__.startswith("sqlite3"):
        return False  # a local file: nothing to wait for
    message = str(exc.orig)
    if any(text in message for text in PERMANENT):
        return False
    return "FATAL:" not in message or any(text in message for text in TRANSIENT_FATALS)

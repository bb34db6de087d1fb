"""Why an audit write failed (the database, or the row?), and making a refused row storable.

A database that is down, full, read-only or locked refuses every row: those go to
the journal and wait. A row the database refuses for its content (PostgreSQL
cannot hold NUL in text, neither engine takes lone surrogates, a value too long
for its column, a number out of range) would fail again: it is repaired, the
repair noted in its ``repaired`` column, and tried once more.
"""

from __future__ import annotations

import re
import sqlite3
from typing import Any

import sqlalchemy as sa

from app.db.limits import DatabaseTimeout
from app.models import Attempt, ChatSession, Request, Response

_JSON_COLUMNS = frozenset({"openai_request", "provider_request", "openai_response", "provider_response"})
_SURROGATE = re.compile("[\ud800-\udfff]")
_INT32 = 2**31 - 1
_INT64 = 2**63 - 1
_TABLES = {
    "session": ChatSession.__table__, "request": Request.__table__, "response": Response.__table__,
    "attempt": Attempt.__table__,
}


def refused_for_content(exc: BaseException) -> bool:
    """True when the row itself was refused (repair and retry it); False when the database is unusable."""
    if isinstance(exc, sa.exc.DBAPIError):
        if exc.connection_invalidated:
            return False
        exc = exc.orig or exc
    if isinstance(exc, DatabaseTimeout) or lost_a_race(exc):
        return False
    if isinstance(exc, UnicodeError | ValueError | OverflowError | TypeError):
        return True  # raised by the driver before anything reached the database
    if isinstance(exc, sqlite3.Error):
        return isinstance(exc, sqlite3.IntegrityError | sqlite3.DataError | sqlite3.InterfaceError)
    try:
        import psycopg
    except ImportError:  # pragma: no cover - psycopg is a dependency
        return False
    return isinstance(exc, psycopg.DataError | psycopg.IntegrityError | psycopg.ProgrammingError)


def lost_a_race(exc: BaseException) -> bool:
    """A deadlock or serialization failure: nothing wrong with the rows or the database; try again."""
    exc = getattr(exc, "orig", None) or exc
    try:
        import psycopg
    except ImportError:  # pragma: no cover - psycopg is a dependency
        return False
    return isinstance(exc, psycopg.errors.DeadlockDetected | psycopg.errors.SerializationFailure)


def conflict(exc: BaseException) -> bool:
    """A unique key refused the row: for an ending, an ``interrupted`` one is in its place."""
    exc = getattr(exc, "orig", None) or exc
    if isinstance(exc, sqlite3.IntegrityError):
        return "UNIQUE" in str(exc)
    try:
        import psycopg
    except ImportError:  # pragma: no cover - psycopg is a dependency
        return False
    return isinstance(exc, psycopg.errors.UniqueViolation)


def make_storable(kind: str, row: dict[str, Any]) -> list[str]:
    """Change ``row`` (of ``kind``: session, request, response) so a database takes it; what was done."""
    table = _TABLES[kind]
    notes = []
    for key, value in row.items():
        column = table.c.get(key)
        if isinstance(value, str):
            fixed, what = _text(value, json=key in _JSON_COLUMNS)
            length = getattr(column.type, "length", None) if column is not None else None
            if length is not None and len(fixed) > length:
                fixed, what = fixed[:length], [*what, f"cut to {length} characters"]
            if what:
                row[key] = fixed
                notes.append(f"{kind}.{key}: {', '.join(what)}")
        elif isinstance(value, int) and not isinstance(value, bool) and column is not None:
            limit = _INT64 if isinstance(column.type, sa.BigInteger) else _INT32
            if abs(value) > limit:
                row[key] = None
                notes.append(f"{kind}.{key}: {value} out of range, left empty")
    return notes


def _text(value: str, *, json: bool) -> tuple[str, list[str]]:
    what = []
    if "\x00" in value:
        # Escaped as JSON writes it: inside a JSON document the text means the same.
        value = value.replace("\x00", "\\u0000")
        what.append("NUL escaped")
    if _SURROGATE.search(value):
        if json:
            value = _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", value)
            what.append("lone surrogates escaped")
        else:
            value = _SURROGATE.sub("\ufffd", value)
            what.append("lone surrogates replaced")
    return value, what

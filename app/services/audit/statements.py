"""The audit trail's SQL: statements compiled once from the models, run on raw DBAPI cursors.

An ORM unit of work per row costs as much CPU as the whole proxy hop, so the hot
path binds plain dicts to SQL text compiled for the database's own dialect.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from app.models import Attempt, AuditWorker, ChatSession, Request, Response
from app.providers.base import Conversation
from app.services.keys.limits import LimitStatements

_sessions = ChatSession.__table__
_requests = Request.__table__
_responses = Response.__table__
_attempts = Attempt.__table__
_workers = AuditWorker.__table__
# Written only by the importer: the hot path leaves them to their server defaults
# (NULL, false) instead of binding three more parameters on every call.
_IMPORT_ONLY_COLUMNS = frozenset({"legacy_source", "legacy_id", "retained"})
# Written only for a row that had to be repaired (repair.py) or is replayed from the journal.
_REPAIR_COLUMNS = _IMPORT_ONLY_COLUMNS | {"repaired"}


class AuditStatements:
    """The statements that record a call, and replay it from the journal, for one dialect."""

    def __init__(self, dialect: sa.Dialect) -> None:
        insert = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}.get(dialect.name)
        if insert is None:
            raise RuntimeError(f"unsupported database {dialect.name!r}: use SQLite or PostgreSQL")
        self.dialect_name = dialect.name
        self.limits = LimitStatements(dialect)  # gateway keys' counters, changed in the same transactions
        upsert = insert(_sessions)
        upsert = upsert.on_conflict_do_update(
            index_elements=[_sessions.c.id],
            set_={
                "message_count": _sessions.c.message_count + sa.literal_column("1"),
                "last_accessed": upsert.excluded.last_accessed,
                "expires_at": upsert.excluded.expires_at,
                # An expired session starts a new conversation upstream; its history stays.
                "chat_id": sa.case(
                    (_sessions.c.expires_at < upsert.excluded.last_accessed, sa.null()),
                    else_=_sessions.c.chat_id,
                ),
                "parent_id": sa.case(
                    (_sessions.c.expires_at < upsert.excluded.last_accessed, sa.null()),
                    else_=_sessions.c.parent_id,
                ),
            },
        ).returning(_sessions.c.chat_id, _sessions.c.parent_id)
        self.touch_session_sql = compile_sql(upsert, dialect, _sessions)
        self.insert_request_sql = compile_sql(sa.insert(_requests).returning(_requests.c.id), dialect, _requests)
        self.insert_response_sql = compile_sql(sa.insert(_responses), dialect, _responses)
        self.insert_attempt_sql = compile_sql(sa.insert(_attempts), dialect, _attempts)
        self.continue_session_sql = compile_sql(
            sa.update(_sessions)
            .where(_sessions.c.id == sa.bindparam("session_id"))
            .values(chat_id=sa.bindparam("chat_id"), parent_id=sa.bindparam("parent_id")),
            dialect,
        )
        # Replaying the journal (and rows that had to be repaired): idempotent, with ``repaired``.
        self.find_request_sql = compile_sql(
            sa.select(_requests.c.id).where(_requests.c.request_id == sa.bindparam("request_id")), dialect
        )
        replayed = insert(_sessions)
        later = sa.func.max if dialect.name == "sqlite" else sa.func.greatest
        replayed = replayed.on_conflict_do_update(
            index_elements=[_sessions.c.id],
            set_={
                "message_count": _sessions.c.message_count + sa.literal_column("1"),
                # A replayed call may be older than what the session has seen since.
                "last_accessed": later(_sessions.c.last_accessed, replayed.excluded.last_accessed),
                "expires_at": later(_sessions.c.expires_at, replayed.excluded.expires_at),
            },
        )
        self.replay_session_sql = compile_sql(replayed, dialect, _sessions)
        self.replay_request_sql = compile_sql(
            sa.insert(_requests).returning(_requests.c.id), dialect, _requests, skip=_IMPORT_ONLY_COLUMNS
        )
        self.replay_response_sql = compile_sql(
            _response_upsert(insert, _IMPORT_ONLY_COLUMNS), dialect, _responses, skip=_IMPORT_ONLY_COLUMNS
        )
        # The sweep's ``interrupted`` ending: never in place of one that exists.
        self.end_call_sql = compile_sql(
            insert(_responses).on_conflict_do_nothing(index_elements=[_responses.c.request_id]), dialect, _responses
        )
        self.replay_attempt_sql = compile_sql(
            insert(_attempts).on_conflict_do_nothing(index_elements=[_attempts.c.request_id, _attempts.c.attempt]),
            dialect, _attempts,
        )

    def find_request(self, cursor: Any, request_id: str) -> int | None:
        """The database id of the request with this UUID, if it is recorded."""
        cursor.execute(self.find_request_sql, {"request_id": request_id})
        row = cursor.fetchone()
        return None if row is None else row[0]

    def touch_session(self, cursor: Any, session_row: dict[str, Any]) -> Conversation:
        """Create or bump the session; its continuity state as it now stands."""
        cursor.execute(self.touch_session_sql, session_row)
        row = cursor.fetchone()
        return Conversation(session_id=session_row["id"], chat_id=row[0], parent_id=row[1])

    def insert_request(self, cursor: Any, request_row: dict[str, Any]) -> int:
        """Insert a request row; its database id."""
        cursor.execute(self.insert_request_sql, request_row)
        return cursor.fetchone()[0]

    def insert_response(
        self, cursor: Any, request_db_id: int, row: dict[str, Any], attempts: list[dict[str, Any]],
        continuation: dict[str, Any] | None,
    ) -> None:
        """Insert a response row, its attempts, and move the session's continuity state on."""
        cursor.execute(self.insert_response_sql, {**row, "request_id": request_db_id})
        if attempts:
            cursor.executemany(self.insert_attempt_sql, [{**a, "request_id": request_db_id} for a in attempts])
        if continuation is not None:
            cursor.execute(self.continue_session_sql, continuation)


def _response_upsert(insert, skip: frozenset[str]):
    """A response row, or nothing when its request has one; an ``interrupted`` ending gives way.

    ``interrupted`` is what the sweep writes for a call whose process died: when the
    call's own ending turns up later (from the journal), it takes that place.
    """
    statement = insert(_responses)
    excluded = statement.excluded
    columns = [c for c in _responses.columns if c.autoincrement is not True and c.key not in skip]
    return statement.on_conflict_do_update(
        index_elements=[_responses.c.request_id],
        set_={c.key: excluded[c.key] for c in columns if c.key != "request_id"},
        where=_responses.c.status == sa.literal_column("'interrupted'"),
    )


def compile_sql(statement, dialect, table: sa.Table | None = None, *, skip: frozenset[str] = _REPAIR_COLUMNS) -> str:
    """SQL text for the dialect's own named parameter style, compiled once."""
    keys = None
    if table is not None:
        # The database numbers autoincrement ids; a natural key (sessions.id) is bound.
        keys = [column.key for column in table.columns if column.autoincrement is not True and column.key not in skip]
    return str(statement.compile(dialect=dialect, column_keys=keys))

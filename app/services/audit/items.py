"""The audit writer's two kinds of work: open a call (session + request row), close it (response row)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from app.errors import GatewayError
from app.services.audit.group_commit import WorkItem
from app.services.audit.records import RequestRecord, dumps
from app.services.audit.repair import conflict, make_storable, refused_for_content

if TYPE_CHECKING:
    from app.services.audit.log import AuditLog


def describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"[:2000]


def note_repairs(row: dict[str, Any], notes: list[str]) -> bool:
    """Add what was changed to the row's ``repaired`` note; True when anything was."""
    if not notes:
        return False
    row["repaired"] = "; ".join(filter(None, [row.get("repaired"), *notes]))
    return True


class OpenRequest(WorkItem):
    """Touch the session, build the provider request, insert the request row."""

    __slots__ = ("audit", "record", "build", "payload", "build_error")

    def __init__(self, audit: AuditLog, record: RequestRecord, build: Callable) -> None:
        super().__init__()
        self.audit, self.record, self.build = audit, record, build
        self.payload: dict[str, Any] | None = None
        self.build_error: GatewayError | None = None

    @property
    def lock_key(self) -> str:
        return self.record.session_id

    def apply(self, cursor: Any) -> None:
        record, sql = self.record, self.audit.sql
        record.conversation = sql.touch_session(cursor, record.session_row)
        try:
            if record.key_use is not None and record.key_use.with_request:
                record.key_use.admit_with_request(cursor)
            self.payload = self.build(record.conversation)
        except GatewayError as exc:  # still recorded: as a request that failed before upstream
            self.build_error = exc
        record.request_row["provider_request"] = dumps(self.payload)
        if "repaired" in record.request_row:  # tried before and refused: the new body is made storable too
            note_repairs(record.request_row, make_storable("request", record.request_row))
            cursor.execute(sql.replay_request_sql, record.request_row)
            record.db_id = cursor.fetchone()[0]
        else:
            record.db_id = sql.insert_request(cursor, record.request_row)

    def repair(self, error: BaseException) -> bool:
        record = self.record
        notes = make_storable("session", record.session_row) + make_storable("request", record.request_row)
        record.request_row.setdefault("repaired", None)
        return note_repairs(record.request_row, notes)

    def failed(self, error: BaseException) -> None:
        super().failed(error)
        self.record.db_id = None
        self.payload = None
        self.build_error = None
        if self.record.key_use is not None and self.record.key_use.with_request:
            self.record.key_use.reservation = None  # rolled back with the request
        if not refused_for_content(error):
            self.audit.database_unusable(error)


class CloseRequest(WorkItem):
    """Insert the response row and any attempt rows (and the request row, if its own write failed)."""

    __slots__ = ("audit", "record", "row", "continuation", "attempts", "settle")

    def __init__(
        self, audit: AuditLog, record: RequestRecord, row: dict, continuation: dict | None, attempts: list[dict],
        settle: dict | None = None,
    ) -> None:
        super().__init__()
        self.audit, self.record, self.row, self.continuation = audit, record, row, continuation
        self.attempts = attempts
        self.settle = settle  # a keyed call's cost, added to its key's spend in the same transaction

    @property
    def lock_key(self) -> str:
        return self.record.session_id

    @property
    def last_key(self) -> str:
        return "" if self.settle is None else f"{self.settle['kid']:020d}"

    def apply_last(self, cursor: Any) -> None:
        if self.settle is not None:
            self.audit.sql.limits.settle(cursor, self.settle)

    def apply(self, cursor: Any) -> None:
        record, sql = self.record, self.audit.sql
        db_id = record.db_id
        if db_id is None:
            sql.touch_session(cursor, record.session_row)
            statement = sql.replay_request_sql if "repaired" in record.request_row else sql.insert_request_sql
            cursor.execute(statement, record.request_row)
            db_id = cursor.fetchone()[0]
        if "repaired" in self.row:  # tried before and refused: the statement that also replaces 'interrupted'
            cursor.execute(sql.replay_response_sql, {**self.row, "request_id": db_id})
            if self.attempts:
                cursor.executemany(sql.insert_attempt_sql, [{**a, "request_id": db_id} for a in self.attempts])
            if self.continuation is not None:
                cursor.execute(sql.continue_session_sql, self.continuation)
        else:
            sql.insert_response(cursor, db_id, self.row, self.attempts, self.continuation)

    def repair(self, error: BaseException) -> bool:
        notes = make_storable("response", self.row)
        for attempt in self.attempts:
            notes += make_storable("attempt", attempt)
        if self.continuation is not None:
            notes += make_storable("session", self.continuation)
        if self.record.db_id is None:
            self.record.request_row.setdefault("repaired", None)
            note_repairs(self.record.request_row, make_storable("session", self.record.session_row)
                         + make_storable("request", self.record.request_row))
        self.row.setdefault("repaired", None)
        # The sweep ended this call 'interrupted' (its heartbeat went stale while the database was
        # away): the ending that turns up takes that place.
        return note_repairs(self.row, notes) or bool(self.record.request_row.get("repaired")) or conflict(error)

    def failed(self, error: BaseException) -> None:
        super().failed(error)
        if not refused_for_content(error):
            self.audit.database_unusable(error)
        self.audit.close_elsewhere(self, error)

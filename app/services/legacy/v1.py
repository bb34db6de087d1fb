"""Schema v1: each request_logs row becomes a session, a request and a response."""

from __future__ import annotations

from sqlalchemy.engine import Connection

from app.services.legacy.report import ImportSummary, Progress
from app.services.legacy.rows import SOURCE_V1, V1Call, v1_call
from app.services.legacy.source import LegacySource
from app.services.legacy.target import (
    REQUESTS,
    RESPONSES,
    SESSIONS,
    Target,
    free_id,
    minted_session_id,
    minted_uuid,
    public_id,
)

TABLE = "request_logs"


def import_v1(
    *, source: LegacySource, target: Target, summary: ImportSummary, batch_size: int, progress: Progress
) -> None:
    """Import every request_logs row not imported before, one transaction per batch."""
    counts = summary.table(TABLE)
    for page in source.pages(TABLE, size=batch_size):
        calls = [v1_call(row) for row in page]
        counts.read += len(calls)
        with target.batch() as connection:
            legacy_ids = [call.request["legacy_id"] for call in calls]
            done = target.existing(connection, REQUESTS, source=SOURCE_V1, legacy_ids=legacy_ids)
            fresh = [call for call in calls if call.request["legacy_id"] not in done]
            counts.duplicates += len(calls) - len(fresh)
            _write(connection, target=target, calls=fresh)
        for call in fresh:
            summary.imported(TABLE, legacy_id=call.request["legacy_id"], problems=call.problems)
        progress.advance(len(page))


def _write(connection: Connection | None, *, target: Target, calls: list[V1Call]) -> None:
    if not calls:
        return
    readable = {call.request["legacy_id"]: f"{SOURCE_V1}-{call.request['legacy_id']}" for call in calls}
    sessions_taken = target.taken(connection, SESSIONS.c.id, readable.values())
    requests_taken = target.taken(connection, REQUESTS.c.request_id, readable.keys())
    for call in calls:
        legacy_id = call.request["legacy_id"]
        session_id, _ = free_id(
            readable[legacy_id], size=128, taken=sessions_taken,
            fallback=minted_session_id(source=SOURCE_V1, legacy_id=legacy_id),
        )
        request_id = public_id(
            legacy_id, source=SOURCE_V1, table="requests", column="request_id", taken=requests_taken,
            problems=call.problems,
        )
        call.session["id"] = session_id
        call.request.update(session_id=session_id, request_id=request_id)
        call.response.update(
            session_id=session_id,
            response_id=minted_uuid(source=SOURCE_V1, table="responses", legacy_id=legacy_id),
        )
    target.insert(connection, SESSIONS, [call.session for call in calls])
    ids = target.insert_ids(connection, REQUESTS, [call.request for call in calls])
    for call in calls:
        call.response["request_id"] = ids[call.request["legacy_id"]]
    target.insert(connection, RESPONSES, [call.response for call in calls])

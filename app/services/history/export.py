"""Every matching request with its response, or a session's whole conversation, in keyset batches:
constant memory however many rows."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from app.models import Request, Response
from app.services.history.matching import matching_requests
from app.services.history.paging import MAX_LIMIT, Cursor, Page, PageRequest
from app.services.history.records import Filters
from app.services.history.sessions import session_requests

BATCH_SIZE = 2000
FLAT = (
    "id", "request_id", "session_id", "timestamp", "provider", "model", "stream", "status", "status_code",
    "finish_reason", "prompt_tokens", "completion_tokens", "total_tokens", "usage_estimated", "duration_ms",
    "ttft_ms", "answered_by", "error",
)
_FLAT_COLUMNS = (
    Request.id, Request.request_id, Request.session_id, Request.timestamp, Request.provider, Request.model,
    Request.stream, Response.status, Response.status_code, Response.finish_reason, Response.prompt_tokens,
    Response.completion_tokens, Response.total_tokens, Response.usage_estimated, Response.duration_ms,
    Response.ttft_ms, Response.provider.label("answered_by"), Response.error,
)
_BODIES = (Request.openai_request.label("request"), Response.openai_response.label("response"))


def export_rows(
    engine: Engine, *, filters: Filters, bodies: bool, batch_size: int = BATCH_SIZE
) -> Iterator[dict[str, Any]]:
    """Matching requests, oldest first, as flat dicts (plus ``request``/``response`` bodies if asked).

    Each batch is its own short query after the last id seen (keyset), so neither this process
    nor the database holds more than one batch, and writers are never blocked for long.
    """
    columns = (*_FLAT_COLUMNS, *_BODIES) if bodies else _FLAT_COLUMNS
    query = (
        sa.select(*columns).select_from(Request).outerjoin(Response, Response.request_id == Request.id)
        .where(*matching_requests(filters)).order_by(Request.id).limit(batch_size)
    )
    last = 0
    while True:
        with engine.connect() as connection:
            rows = connection.execute(query.where(Request.id > last)).mappings().all()
        for row in rows:
            yield dict(row)
        if len(rows) < batch_size:
            return
        last = rows[-1]["id"]


def conversation(engine: Engine, session_id: str, *, batch_size: int = MAX_LIMIT) -> Iterator[Request]:
    """A session's every call with its response, oldest first: the pages of ``session_requests`` in turn.

    As ``export_rows`` reads its batches, each page is its own short session (keyset, after the
    last call of the page before), closed before its calls are handed out. The first page is read
    at once, so a session that does not exist raises ``NotFound`` before anything is sent.
    """
    page = _conversation_page(engine, session_id, after=None, batch_size=batch_size)
    return _conversation_from(engine, session_id, page, batch_size=batch_size)


def _conversation_page(engine: Engine, session_id: str, *, after: Cursor | None, batch_size: int) -> Page[Request]:
    with Session(engine) as db:
        return session_requests(db, session_id, page=PageRequest(limit=batch_size, after=after, descending=False))


def _conversation_from(engine: Engine, session_id: str, page: Page[Request], *, batch_size: int) -> Iterator[Request]:
    while True:
        yield from page.items
        if page.next_cursor is None:
            return
        page = _conversation_page(engine, session_id, after=page.next_cursor, batch_size=batch_size)


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def jsonl_lines(rows: Iterable[dict[str, Any]]) -> Iterator[str]:
    """One JSON object a line (with ``time`` in ISO 8601), as the CLI and the dashboard export them."""
    for row in rows:
        row["time"] = _iso(row["timestamp"])
        row["stream"] = bool(row["stream"])
        yield json.dumps(row, separators=(",", ":"), default=str) + "\n"


def csv_lines(rows: Iterable[dict[str, Any]]) -> Iterator[str]:
    """A header, then one line a request: ``time`` and the FLAT columns."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)

    def line(values: list[Any]) -> str:
        buffer.seek(0)
        buffer.truncate()
        writer.writerow(values)
        return buffer.getvalue()

    yield line(["time", *FLAT])
    for row in rows:
        yield line([_iso(row["timestamp"]), *(row[name] for name in FLAT)])


def json_list(items: Iterable[dict[str, Any]]) -> Iterator[str]:
    """``items`` in the history API's list envelope, as one page holding them all, written as they come."""
    yield '{"object":"list","data":['
    count = 0
    for item in items:
        yield ("," if count else "") + json.dumps(item, separators=(",", ":"), default=str)
        count += 1
    yield f'],"total":{count},"limit":{count},"offset":0,"has_more":false,"next_cursor":null}}'

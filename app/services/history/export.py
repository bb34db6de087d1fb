"""Every matching request with its response, in batches by id: constant memory however many rows."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from app.models import Request, Response
from app.services.history.records import Filters, matching_requests

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

"""/ui/calls: the audit trail filtered (every filter of the history API, in the URL), searched and paged.

The same query arguments as ``GET /v1/requests`` (``RequestListArgs``), read by the same service;
a live tail polls for the newest calls (a few seconds behind the newest shown, for late commits)
and for the calls it shows pending; export streams exactly the filtered set.
"""

from __future__ import annotations

import re
from typing import Any

from flask import Response, render_template, request, stream_with_context
from marshmallow import ValidationError

from app.api.rest import db
from app.api.ui.blueprint import bp
from app.db import get_engine
from app.errors import InvalidRequest
from app.extensions import gateway
from app.schemas.history import RequestListArgs
from app.services.history import calls as call_views
from app.services.history import export, records
from app.services.history.calls import TAIL_LIMIT
from app.services.history.matching import SEARCH_COUNT_CAP

FILTERS = (
    "q", "model", "provider", "status", "stream", "session_id", "finish_reason", "min_duration_ms",
    "start_date", "end_date", "endpoint", "key", "tag",
)
UI_ONLY = ("live",)
_ID = re.compile(r"[0-9]{1,18}")
_SINCE = re.compile(r"([0-9]{1,18})\.([0-9]{1,18})")


def filter_args() -> dict[str, str]:
    """The filters of the URL that hold a value (an empty form field is no filter)."""
    return {name: value for name in FILTERS if (value := request.args.get(name, "").strip())}


def _load(args: dict[str, str]) -> dict[str, Any]:
    try:
        return RequestListArgs().load(args)
    except ValidationError as exc:
        param, problems = next(iter(exc.messages.items()))
        problem = problems[0] if isinstance(problems, list) else problems
        raise InvalidRequest(f"Invalid '{param}': {problem}", param=str(param)) from None


def _rows(page_items: list) -> list[dict[str, Any]]:
    shown = call_views.previews(db(), [item.id for item in page_items])
    return [{"call": item, "preview": shown.get(item.id)} for item in page_items]


@bp.get("/calls")
def calls():
    args = filter_args()
    paging = {name: request.args[name] for name in ("after", "limit") if request.args.get(name)}
    loaded = _load({**args, **paging})
    page = records.list_requests(db(), filters=loaded["filters"], page=loaded["page"])
    return render_template(
        "ui/calls.html", rows=_rows(page.items), page=page, args=args, live=request.args.get("live") == "1",
        next_cursor=page.next_cursor.encode() if page.next_cursor else None, paged="after" in paging,
        count_cap=SEARCH_COUNT_CAP,
    )


@bp.get("/calls/tail")
def calls_tail():
    """The newest rows from TAIL_OVERLAP_MS before ``since`` on, and the ``pending`` rows that have ended.

    ``since`` is ``<timestamp>.<id>`` of the newest row shown, ``pending`` the ids of the rows shown
    without a response. Rows come newest first; the page puts each in its place by time, or in
    place of its row shown with the same id.
    """
    since = _since(request.args.get("since", ""))
    polled = call_views.tail(db(), _load(filter_args())["filters"], since=since,
                             pending=_pending(request.args.get("pending", "")))
    oldest, gap = polled.unshown_before, None
    if oldest is not None:  # a row in place of the calls left out, linking to exactly them
        gap = {"since": f"{oldest.timestamp}.{oldest.id}", "id": oldest.id,
               "args": {**filter_args(), "start_date": since[0], "end_date": oldest.timestamp}}
    return render_template("ui/call_rows.html", rows=_rows(polled.calls), gap=gap)


def _since(text: str) -> tuple[int, int]:
    """``(timestamp, id)`` of ``<timestamp>.<id>``."""
    if not (found := _SINCE.fullmatch(text)):
        raise InvalidRequest("Invalid 'since': the timestamp and id of the newest row shown.", param="since")
    return int(found[1]), int(found[2])


def _pending(text: str) -> tuple[int, ...]:
    parts = text.split(",") if text else []
    if len(parts) > TAIL_LIMIT or not all(_ID.fullmatch(part) for part in parts):
        raise InvalidRequest(f"Invalid 'pending': up to {TAIL_LIMIT} call ids, separated by commas.", param="pending")
    return tuple(int(part) for part in parts)


@bp.get("/calls/export.<fmt>")
def calls_export(fmt: str):
    """Every call of the filtered set, oldest first, streamed: JSON lines (with bodies) or CSV."""
    if fmt not in ("jsonl", "csv"):
        raise InvalidRequest("Export as jsonl or csv.", param="format")
    filters = _load(filter_args())["filters"]
    engine = get_engine(gateway().settings.database_url)
    rows = export.export_rows(engine, filters=filters, bodies=fmt == "jsonl")
    lines = export.csv_lines(rows) if fmt == "csv" else export.jsonl_lines(rows)
    mimetype = "text/csv" if fmt == "csv" else "application/x-ndjson"
    return Response(
        stream_with_context(lines), mimetype=mimetype,
        headers={"Content-Disposition": f'attachment; filename="calls.{fmt}"'},
    )

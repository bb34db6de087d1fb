"""The Responses API's stored answers, read from the audit trail: GET/DELETE /v1/responses/{resp_id},
its input items, and the earlier turns a ``previous_response_id`` continues.

A response the gateway answered keeps its public id (``resp_...``) as the response row's own id,
so each lookup is one step on a unique index.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from app.errors import NotFound
from app.models import Request, Response
from app.services.history.records import delete_request
from app.services.proxy.translate_responses import input_items, item_messages_back

# A conversation longer than this many turns is cut at its oldest (a cycle would be, too).
MAX_TURNS = 1000


def _call(db: Session, response_id: str) -> Any:
    return db.execute(
        sa.select(Request.request_id, Request.openai_request, Response.openai_response)
        .join(Response, Response.request_id == Request.id)
        .where(Response.response_id == response_id, Request.path == "/v1/responses")
    ).first()


def _missing(response_id: str, *, param: str = "response_id") -> NotFound:
    return NotFound(f"No response with id {response_id!r}.", param=param, code="response_not_found")


def get_response(db: Session, response_id: str) -> dict[str, Any]:
    """The Response object as the client got it."""
    row = _call(db, response_id)
    if row is None or not isinstance(row.openai_response, dict):
        raise _missing(response_id)
    return row.openai_response


def list_input_items(db: Session, response_id: str) -> dict[str, Any]:
    """The input items of one response (its own, not the earlier turns), as OpenAI lists them."""
    row = _call(db, response_id)
    if row is None:
        raise _missing(response_id)
    items = []
    for index, item in enumerate(input_items(row.openai_request if isinstance(row.openai_request, dict) else {})):
        items.append({"id": item.get("id") or f"msg_{response_id[5:]}{index:04d}", "type": "message", **item})
    return {"object": "list", "data": items, "first_id": items[0]["id"] if items else None,
            "last_id": items[-1]["id"] if items else None, "has_more": False}


def delete_response(db: Session, response_id: str) -> dict[str, Any]:
    """Delete the call (request and response rows) behind a response."""
    row = _call(db, response_id)
    if row is None:
        raise _missing(response_id)
    delete_request(db, row.request_id)
    return {"id": response_id, "object": "response.deleted", "deleted": True}


def previous_items(engine: Engine, response_id: str) -> list[dict[str, Any]]:
    """Every turn before (and including) ``response_id`` as input items: its inputs, then its output."""
    turns: list[list[dict[str, Any]]] = []
    current: str | None = response_id
    with Session(engine) as db:
        while current and len(turns) < MAX_TURNS:
            row = _call(db, current)
            if row is None:
                if current == response_id:
                    raise NotFound(f"Previous response with id {response_id!r} not found.",
                                   param="previous_response_id", code="previous_response_not_found")
                break  # an earlier turn was deleted: the conversation starts after it
            request = row.openai_request if isinstance(row.openai_request, dict) else {}
            answer = row.openai_response if isinstance(row.openai_response, dict) else {}
            turns.append(input_items(request) + list(item_messages_back(answer.get("output") or [])))
            current = request.get("previous_response_id")
    return [item for turn in reversed(turns) for item in turn]

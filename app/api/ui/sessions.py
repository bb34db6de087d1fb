"""/ui/sessions/<id>: a session read as one chat thread, with idle markers and totals; its JSON."""

from __future__ import annotations

from typing import Any

from flask import Response, render_template, stream_with_context

from app.api.rest import db
from app.api.sessions import session_key
from app.api.ui.blueprint import bp
from app.api.ui.call import card
from app.db import get_engine
from app.extensions import gateway
from app.models import Request
from app.schemas.history import ConversationItemSchema
from app.services.history import calls as call_views
from app.services.history import export, stats
from app.services.history import sessions as session_history
from app.services.search.text import answer_of, vectors_note

IDLE_MS = 5 * 60_000  # a pause this long between two calls is marked
THREAD_LIMIT = 1000


def _turns(calls: list[Request]) -> list[dict[str, Any]]:
    turns, last_at = [], None
    for request, messages in zip(calls, call_views.added_messages(calls), strict=True):
        answered = request.response.openai_response if request.response is not None else None
        answer = answer_of(answered)
        idle = None if last_at is None else request.timestamp - last_at
        turns.append({
            "call": request, "idle_ms": idle if idle is not None and idle >= IDLE_MS else None,
            "messages": [card(m) for m in messages], "answer": None if answer is None else card(answer),
            "vectors": vectors_note(answered),
        })
        last_at = request.timestamp
    return turns


@bp.get("/sessions/<path:session_id>")
def session(session_id: str):
    key = session_key(session_id)
    detail = session_history.get_session(db(), key)
    calls = call_views.thread(db(), key, limit=THREAD_LIMIT)
    return render_template(
        "ui/session.html", detail=detail, turns=_turns(calls), usage=stats.session_stats(db(), key)["usage"],
        cut=detail.request_count > len(calls),
    )


@bp.get("/session-json/<path:session_id>")
def session_json(session_id: str):
    """The whole conversation, oldest first, streamed as one page of ``GET /v1/sessions/<id>/requests``."""
    calls = export.conversation(get_engine(gateway().settings.database_url), session_key(session_id))
    schema = ConversationItemSchema()
    return Response(
        stream_with_context(export.json_list(schema.dump(call) for call in calls)), mimetype="application/json",
        headers={"Content-Disposition": 'attachment; filename="session.json"'},
    )

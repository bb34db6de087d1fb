"""/v1/sessions: conversations, their requests, and purging expired ones."""

from __future__ import annotations

import re

from app.api.rest import HistoryBlueprint, db
from app.errors import InvalidRequest
from app.models import now_ms
from app.schemas.history import (
    ConversationArgs,
    ConversationSchema,
    SessionDeletedSchema,
    SessionDetailSchema,
    SessionListArgs,
    SessionListSchema,
    SessionsPurgedSchema,
)
from app.services.history import sessions as session_history
from app.services.proxy.sessions import MAX_SESSION_ID

CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")
blp = HistoryBlueprint("sessions", __name__, url_prefix="/v1", description="Conversations.")


def session_key(session_id: str) -> str:
    """The session id of a path, checked before it goes near the database."""
    if not 1 <= len(session_id) <= MAX_SESSION_ID or CONTROL_CHARACTERS.search(session_id):
        raise InvalidRequest(
            f"A session id is 1 to {MAX_SESSION_ID} characters, none of them control characters.",
            param="id", code="invalid_id",
        )
    return session_id


@blp.route("/sessions", methods=["GET"])
@blp.query(SessionListArgs)
@blp.response(200, SessionListSchema)
def list_sessions(args):
    """List sessions, newest first."""
    return session_history.list_sessions(db(), page=args["page"])


@blp.route("/sessions", methods=["DELETE"])
@blp.response(200, SessionsPurgedSchema)
def purge_sessions():
    """End expired sessions; their history is kept.

    Expired sessions without requests are deleted; those with history only lose their
    upstream continuity (chat_id and parent_id).
    """
    result = session_history.purge_expired_sessions(db(), now_ms=now_ms())
    db().commit()
    return result


@blp.route("/sessions/<session_id:session_id>", methods=["GET"], errors=(400, 404))
@blp.response(200, SessionDetailSchema)
def get_session(session_id: str):
    """A session, with how many requests it holds."""
    return session_history.get_session(db(), session_key(session_id))


@blp.route("/sessions/<session_id:session_id>", methods=["DELETE"], errors=(400, 404))
@blp.response(200, SessionDeletedSchema)
def delete_session(session_id: str):
    """Delete a session and all its requests and responses."""
    session_history.delete_session(db(), session_key(session_id))
    db().commit()
    return {"deleted": True, "session_id": session_id}


@blp.route("/sessions/<session_id:session_id>/requests", methods=["GET"], errors=(400, 404))
@blp.query(ConversationArgs)
@blp.response(200, ConversationSchema)
def get_conversation(args, session_id: str):
    """The conversation: each request with its response, oldest first."""
    return session_history.session_requests(db(), session_key(session_id), page=args["page"])

"""Which session a chat request belongs to."""

from __future__ import annotations

import hashlib
from typing import Any

from app.errors import InvalidRequest
from app.providers.tokens import message_text

SESSION_HEADER = "X-Session-Id"
MAX_SESSION_ID = 128
FIRST_MESSAGE_KEPT = 2000


def session_key(*, header: str | None, body: dict[str, Any], opening: str | None = None) -> str:
    """The X-Session-Id header, else the OpenAI ``user`` field, else the MD5 of the first user message
    (``opening``: that text for an endpoint without ``messages``).

    The last is the original gateway's rule; two people who both open with
    "Hello" share a session under it, so clients should send one of the others.
    """
    if header is not None:
        key = header.strip()
        if not key or len(key) > MAX_SESSION_ID or not key.isprintable():
            raise InvalidRequest(
                f"{SESSION_HEADER} must be 1 to {MAX_SESSION_ID} printable characters.",
                param=SESSION_HEADER, code="invalid_session_id",
            )
        return key
    user = body.get("user")
    if isinstance(user, str) and user.strip():
        user = user.strip()
        if len(user) <= MAX_SESSION_ID and user.isprintable():
            return user
        return _md5(user)
    return _md5((opening if opening is not None else _first_user_text(body)) or "default")


def _md5(text: str) -> str:
    # surrogatepass: a lone surrogate (sent as a \ud800 escape) still gets a stable key.
    return hashlib.md5(text.encode("utf-8", "surrogatepass")).hexdigest()


def first_user_message(body: dict[str, Any]) -> str | None:
    """The session's opening message, as stored (cut to a readable length)."""
    text = _first_user_text(body)
    return None if text is None else text[:FIRST_MESSAGE_KEPT]


def _first_user_text(body: dict[str, Any]) -> str | None:
    for message in body.get("messages") or []:
        if isinstance(message, dict) and message.get("role") == "user":
            return message_text(message.get("content"))
    return None

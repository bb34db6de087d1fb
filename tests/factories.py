"""Rows for tests: sessions and calls (a request with its response), through the ORM."""

from __future__ import annotations

import itertools
import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from app.models import ChatSession, Request, Response, now_ms

DAY_MS = 86_400_000
_ids = itertools.count(1)


def make_session(
    db: Session, session_id: str | None = None, *, created_at: int | None = None,
    expires_at: int | None = None, **fields: Any,
) -> ChatSession:
    created_at = now_ms() if created_at is None else created_at
    session = ChatSession(
        id=session_id or f"session-{next(_ids)}", created_at=created_at, last_accessed=created_at,
        expires_at=created_at + 1_800_000 if expires_at is None else expires_at,
        message_count=fields.pop("message_count", 1),
        first_user_message=fields.pop("first_user_message", "hi"),
        **fields,
    )
    db.add(session)
    db.flush()
    return session


def make_call(
    db: Session,
    session: ChatSession,
    *,
    timestamp: int,
    model: str = "gpt-4o",
    provider: str = "openai",
    stream: bool = False,
    status: str | None = "ok",
    **answer: Any,
) -> Request:
    """A request and, unless ``status`` is None (still in flight), its response (``answer``: ``answer_call``'s
    other arguments)."""
    request = Request(**_request_row(session, timestamp=timestamp, model=model, provider=provider, stream=stream))
    db.add(request)
    db.flush()
    if status is not None:
        answer_call(db, request, status=status, **answer)
    return request


def answer_call(
    db: Session,
    request: Request,
    *,
    status: str = "ok",
    finish_reason: str | None = "stop",
    prompt_tokens: int | None = 10,
    completion_tokens: int | None = 5,
    duration_ms: int | None = 100,
    ttft_ms: int | None = None,
    error: str | None = None,
    usage_estimated: bool = False,
) -> Response:
    """The response of a call in flight (one ``make_call`` made with ``status=None``): the call has ended."""
    response = Response(**_response_row(
        request.id, request.session_id, timestamp=request.timestamp, model=request.model, stream=request.stream,
        status=status, finish_reason=finish_reason, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
        duration_ms=duration_ms, ttft_ms=ttft_ms, error=error, usage_estimated=usage_estimated,
    ))
    db.add(response)
    db.flush()
    return response


def make_calls(db: Session, session: ChatSession, *, timestamps: list[int], model: str = "gpt-4o") -> list[int]:
    """Answered calls as ``make_call`` makes them, one at each of ``timestamps``, in two bulk inserts.

    Their ids, in the order of ``timestamps``.
    """
    rows = [_request_row(session, timestamp=at, model=model, provider="openai", stream=False) for at in timestamps]
    ids = list(db.scalars(sa.insert(Request).returning(Request.id, sort_by_parameter_order=True), rows))
    db.execute(sa.insert(Response), [
        _response_row(
            request_id, session.id, timestamp=at, model=model, stream=False, status="ok", finish_reason="stop",
            prompt_tokens=10, completion_tokens=5, duration_ms=100, ttft_ms=None, error=None, usage_estimated=False,
        )
        for request_id, at in zip(ids, timestamps, strict=True)
    ])
    return ids


def _request_row(session: ChatSession, *, timestamp: int, model: str, provider: str, stream: bool) -> dict[str, Any]:
    body = {"model": model, "stream": stream, "messages": [{"role": "user", "content": "hello"}]}
    return {
        "session_id": session.id, "request_id": str(uuid.uuid4()), "timestamp": timestamp, "method": "POST",
        "path": "/v1/chat/completions", "openai_request": body, "provider_request": {**body, "model": model},
        "provider": provider, "model": model, "stream": stream, "created_at": timestamp,
    }


def _response_row(
    request_id: int, session_id: str, *, timestamp: int, model: str, stream: bool, status: str,
    finish_reason: str | None, prompt_tokens: int | None, completion_tokens: int | None,
    duration_ms: int | None, ttft_ms: int | None, error: str | None, usage_estimated: bool,
) -> dict[str, Any]:
    known = prompt_tokens is not None and completion_tokens is not None
    answered = timestamp + (duration_ms or 0)
    return {
        "request_id": request_id, "session_id": session_id, "response_id": str(uuid.uuid4()), "model": model,
        "timestamp": answered, "openai_response": {"choices": [{"message": {"content": "hi"}}]},
        "provider_response": None if stream else {"raw": True}, "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens, "total_tokens": prompt_tokens + completion_tokens if known else None,
        "usage_estimated": usage_estimated, "finish_reason": finish_reason, "status": status,
        "status_code": 200 if status == "ok" else 502, "error": error, "duration_ms": duration_ms,
        "ttft_ms": ttft_ms, "client_disconnected": False, "created_at": answered,
    }

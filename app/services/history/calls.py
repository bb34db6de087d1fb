"""Calls as people read them: previews for a list, a call's neighbours, its attempts, a session's thread."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import Session, selectinload

from app.models import Attempt, Request, Response
from app.services.history.records import RecordId, get_request
from app.services.search.text import last_user_text, reply_text

PREVIEW_CHARS = 160


@dataclass(frozen=True, slots=True)
class Preview:
    """The last user message and the answer of a call, cut short, and its time to first token."""

    user: str | None
    answer: str | None
    ttft_ms: int | None
    prompt_tokens: int | None
    completion_tokens: int | None


def _cut(text: str | None) -> str | None:
    if text is None:
        return None
    text = " ".join(text.split())
    return text if len(text) <= PREVIEW_CHARS else text[: PREVIEW_CHARS - 1] + "…"


def previews(db: Session, request_ids: Iterable[int]) -> dict[int, Preview]:
    """Previews of a page of calls, in one query."""
    ids = list(request_ids)
    if not ids:
        return {}
    rows = db.execute(
        sa.select(
            Request.id, Request.openai_request, Response.openai_response, Response.ttft_ms,
            Response.prompt_tokens, Response.completion_tokens,
        ).outerjoin(Response, Response.request_id == Request.id).where(Request.id.in_(ids))
    ).all()
    return {
        row.id: Preview(
            user=_cut(last_user_text(row.openai_request)), answer=_cut(reply_text(row.openai_response)),
            ttft_ms=row.ttft_ms, prompt_tokens=row.prompt_tokens, completion_tokens=row.completion_tokens,
        )
        for row in rows
    }


@dataclass(frozen=True, slots=True)
class Neighbours:
    previous: int | None  # the call made just before (older)
    next: int | None  # the call made just after (newer)


def neighbours(db: Session, request: Request) -> Neighbours:
    """The calls on either side of ``request`` in time (by timestamp, then id), from the timestamp index."""
    position = sa.tuple_(Request.timestamp, Request.id)
    here = sa.tuple_(sa.literal(request.timestamp), sa.literal(request.id))
    older = db.scalar(
        sa.select(Request.id).where(position < here).order_by(Request.timestamp.desc(), Request.id.desc()).limit(1)
    )
    newer = db.scalar(
        sa.select(Request.id).where(position > here).order_by(Request.timestamp.asc(), Request.id.asc()).limit(1)
    )
    return Neighbours(previous=older, next=newer)


def call_with_attempts(db: Session, record_id: RecordId) -> tuple[Request, list[Attempt]]:
    """One call with its response, and its upstream attempts (retries and fallbacks) oldest first."""
    request = get_request(db, record_id)
    attempts = db.scalars(sa.select(Attempt).where(Attempt.request_id == request.id).order_by(Attempt.attempt))
    return request, list(attempts)


def thread(db: Session, session_id: str, *, limit: int) -> list[Request]:
    """A session's calls, oldest first, with responses, at most ``limit`` (its newest are kept)."""
    newest = (
        sa.select(Request).where(Request.session_id == session_id)
        .order_by(Request.timestamp.desc(), Request.id.desc()).limit(limit)
        .options(selectinload(Request.response))
    )
    return list(reversed(db.scalars(newest).all()))

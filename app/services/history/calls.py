"""Calls as people read them: previews for a list, a call's neighbours, its attempts, a session's thread,
a live tail's poll."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, selectinload

from app.models import Attempt, Request, Response
from app.providers.base import CLIENT_PATHS
from app.services.history.paging import Cursor, PageRequest
from app.services.history.records import Filters, RecordId, get_request, list_requests
from app.services.search.text import last_user_text, messages_of, reply_text

PREVIEW_CHARS = 160
TAIL_LIMIT = 50  # calls a poll of the live tail shows at most
# Each poll reads again this far behind the newest row shown, so that a call committed after that
# row with an earlier timestamp (by another worker, in a later group commit) still appears.
TAIL_OVERLAP_MS = 10_000
_STANDALONE = frozenset({CLIENT_PATHS["completions"], CLIENT_PATHS["embeddings"]})  # calls that carry no history


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


def added_messages(calls: Sequence[Request]) -> list[list[dict[str, Any]]]:
    """For each call of a thread (oldest first), the messages it added to the conversation.

    A chat client sends the whole history each time: its new messages are those after the
    previous call's (and that call's answer). Completions and embeddings carry no history; a
    Responses call continued by ``previous_response_id`` sent only its new turns; a call of
    another endpoint than the one before starts afresh.
    """
    added, before, path = [], 0, None
    for request in calls:
        if request.path != path:
            before, path = 0, request.path
        messages = messages_of(request.openai_request)
        added.append(_new_messages(request, messages, before))
        before = len(messages)
    return added


def _new_messages(request: Request, messages: list[dict[str, Any]], before: int) -> list[dict[str, Any]]:
    if request.path in _STANDALONE:
        return messages
    if isinstance(request.openai_request, dict) and request.openai_request.get("previous_response_id"):
        return [m for m in messages if m.get("role") != "system"]
    fresh = messages if not before else messages[before + 1:]
    if not fresh:  # the client sent less than before (it trimmed its history): its last user turn
        fresh = [m for m in messages if m.get("role") == "user"][-1:]
    return fresh


@dataclass(frozen=True, slots=True)
class TailPoll:
    """One poll of the live tail: the calls to show, newest first; ``unshown_before``: the oldest of
    them when newer calls than the newest shown before lie beyond it, left out (more than a poll holds)."""

    calls: list[Request]
    unshown_before: Request | None


def tail(db: Session, filters: Filters, *, since: tuple[int, int], pending: Sequence[int]) -> TailPoll:
    """The newest calls from TAIL_OVERLAP_MS before ``since`` (the newest shown: timestamp, id) on,
    and those of ``pending`` (shown without a response) that have ended."""
    recent = list_requests(
        db, filters=replace(filters, start_ms=max(since[0] - TAIL_OVERLAP_MS, filters.start_ms or 0)),
        page=PageRequest(limit=TAIL_LIMIT),
    ).items
    ended = []
    if pending:  # by id: a long stream may have started well before the overlap
        asked = list_requests(db, filters=Filters(ids=tuple(pending)), page=PageRequest(limit=len(pending)))
        ended = [call for call in asked.items if call.response is not None]
    rows = {call.id: call for call in [*recent, *ended]}.values()
    newest_first = sorted(rows, key=lambda call: (call.timestamp, call.id), reverse=True)
    return TailPoll(calls=newest_first, unshown_before=_unshown_before(db, filters, since, recent))


def _unshown_before(db: Session, filters: Filters, since: tuple[int, int], recent: list[Request]) -> Request | None:
    if len(recent) < TAIL_LIMIT or (recent[-1].timestamp, recent[-1].id) <= since:
        return None
    oldest = recent[-1]
    before_it = list_requests(
        db, filters=replace(filters, start_ms=max(since[0], filters.start_ms or 0)),
        page=PageRequest(limit=1, after=Cursor(kind="requests", sort_value=oldest.timestamp, tiebreak=oldest.id)),
    ).items
    if not before_it or (before_it[0].timestamp, before_it[0].id) <= since:
        return None
    return oldest

"""Reading and pruning the audit trail: sessions, their requests, and the responses.

Plain functions on an ORM session, shared by the REST API and the CLI. They raise
``NotFound`` for a missing record and only flush: the caller commits.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import Session, contains_eager, defer, joinedload

from app.errors import NotFound
from app.models import ChatSession, Request, Response
from app.services import usage_rollups
from app.services.paging import Page, PageRequest, fetch_page
from app.services.usage_sql import DAY_MS, const

RecordId = int | str  # the integer id, or the record's UUID
RECORD_ID_PATTERN = r"([1-9][0-9]{0,17}|[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12})"
_RECORD_ID = re.compile(RECORD_ID_PATTERN)
_SUMMARY = (
    Response.id, Response.request_id, Response.response_id, Response.status, Response.finish_reason,
    Response.total_tokens, Response.duration_ms, Response.error,
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Filters:
    """What to keep; every filter given must match. Dates are ms since the epoch, inclusive."""

    session_id: str | None = None
    model: str | None = None
    provider: str | None = None
    stream: bool | None = None
    status: str | None = None
    finish_reason: str | None = None
    start_ms: int | None = None
    end_ms: int | None = None
    min_duration_ms: int | None = None
    # Only for responses: the request they answer, and the original's has_error (status != ok).
    request_id: RecordId | None = None
    has_error: bool | None = None


@dataclass(frozen=True, slots=True)
class SessionDetail:
    session: ChatSession
    request_count: int


@dataclass(frozen=True, slots=True)
class DeletedRequest:
    id: int
    request_id: str
    deleted: bool = True


@dataclass(frozen=True, slots=True)
class PurgeResult:
    deleted: int  # expired sessions without history, removed
    cleared: int  # expired sessions with history, whose upstream continuity was cleared


def parse_record_id(text: str) -> RecordId:
    """An integer id (1 to 18 digits) or a UUID in its usual form (lower-cased); ValueError otherwise."""
    if not _RECORD_ID.fullmatch(text):
        raise ValueError("not an integer id or a UUID")
    return int(text) if text.isdigit() else text.lower()


# Sessions

def list_sessions(db: Session, *, page: PageRequest) -> Page[ChatSession]:
    """Sessions, newest first (by creation)."""
    return fetch_page(
        db, sa.select(ChatSession), count=sa.select(sa.func.count()).select_from(ChatSession),
        kind="sessions", sort=(ChatSession.created_at, ChatSession.id),
        key=lambda s: (s.created_at, s.id), page=page,
    )


def get_session(db: Session, session_id: str) -> SessionDetail:
    session = _session(db, session_id)
    count = db.scalar(sa.select(sa.func.count()).where(Request.session_id == session_id))
    return SessionDetail(session=session, request_count=count or 0)


def session_requests(db: Session, session_id: str, *, page: PageRequest) -> Page[Request]:
    """The conversation: each request with its full response, oldest first unless asked."""
    _session(db, session_id)
    query = (
        sa.select(Request).outerjoin(Request.response)
        .options(contains_eager(Request.response)).where(Request.session_id == session_id)
    )
    count = sa.select(sa.func.count()).select_from(Request).where(Request.session_id == session_id)
    return fetch_page(
        db, query, count=count, kind="conversation", sort=(Request.timestamp, Request.id),
        key=lambda r: (r.timestamp, r.id), page=page,
    )


def delete_session(db: Session, session_id: str) -> None:
    """Delete a session with all its history (the database cascades to requests and responses)."""
    day = (Response.timestamp // const(DAY_MS)) * const(DAY_MS)
    days = db.scalars(sa.select(day).where(Response.session_id == session_id).distinct()).all()
    result = db.execute(sa.delete(ChatSession).where(ChatSession.id == session_id))
    if result.rowcount == 0:
        raise _session_not_found(session_id)
    usage_rollups.invalidate(db, days)


def purge_expired_sessions(db: Session, *, now_ms: int) -> PurgeResult:
    """End expired sessions without losing history.

    Expired sessions that hold no requests are deleted; those with history keep it and
    only lose their upstream continuity (chat_id, parent_id).
    """
    expired = ChatSession.expires_at < now_ms
    has_history = sa.exists().where(Request.session_id == ChatSession.id)
    deleted = db.execute(
        sa.delete(ChatSession).where(expired, ~has_history).execution_options(synchronize_session=False)
    ).rowcount
    cleared = db.execute(
        sa.update(ChatSession)
        .where(expired, sa.or_(ChatSession.chat_id.is_not(None), ChatSession.parent_id.is_not(None)))
        .values(chat_id=None, parent_id=None)
        .execution_options(synchronize_session=False)
    ).rowcount
    return PurgeResult(deleted=deleted, cleared=cleared)


def _session(db: Session, session_id: str) -> ChatSession:
    session = db.get(ChatSession, session_id)
    if session is None:
        raise _session_not_found(session_id)
    return session


def _session_not_found(session_id: str) -> NotFound:
    return NotFound(f"No session with id {session_id!r}.", param="id", code="session_not_found")


# Requests

def list_requests(
    db: Session, *, filters: Filters, page: PageRequest, bodies: bool = False
) -> Page[Request]:
    """Requests, newest first, each with a summary of its response."""
    request_where = _request_conditions(filters, dated=Request.timestamp)
    response_where = _response_conditions(filters)
    query = sa.select(Request).join(Request.response, isouter=not response_where)
    query = query.options(contains_eager(Request.response).load_only(*_SUMMARY))
    if not bodies:
        query = query.options(defer(Request.openai_request), defer(Request.provider_request))
    query = query.where(*request_where, *response_where)
    if request_where or not response_where:
        count = sa.select(sa.func.count()).select_from(Request)
        if response_where:
            count = count.join(Response, Response.request_id == Request.id)
    else:  # one response per request: counting responses alone is the same and cheaper
        count = sa.select(sa.func.count()).select_from(Response)
    count = count.where(*request_where, *response_where)
    return fetch_page(
        db, query, count=count, kind="requests", sort=(Request.timestamp, Request.id),
        key=lambda r: (r.timestamp, r.id), page=page,
    )


def get_request(db: Session, record_id: RecordId) -> Request:
    """One request with its bodies and its response."""
    query = sa.select(Request).options(joinedload(Request.response)).where(_by_id(Request, record_id))
    request = db.scalar(query)
    if request is None:
        raise NotFound(f"No request with id {record_id!r}.", param="id", code="request_not_found")
    return request


def get_request_response(db: Session, record_id: RecordId) -> Response:
    request = get_request(db, record_id)
    if request.response is None:
        raise NotFound(
            f"Request {record_id!r} has no response yet.", param="id", code="response_not_found"
        )
    return request.response


def delete_request(db: Session, record_id: RecordId) -> DeletedRequest:
    """Delete a request and its response."""
    row = db.execute(
        sa.select(Request.id, Request.request_id, Response.timestamp)
        .outerjoin(Response, Response.request_id == Request.id).where(_by_id(Request, record_id))
    ).first()
    if row is None:
        raise NotFound(f"No request with id {record_id!r}.", param="id", code="request_not_found")
    db.execute(sa.delete(Request).where(Request.id == row.id))
    if row.timestamp is not None:
        usage_rollups.invalidate(db, [usage_rollups.day_of(row.timestamp)])
    return DeletedRequest(id=row.id, request_id=row.request_id)


# Responses

def list_responses(
    db: Session, *, filters: Filters, page: PageRequest, bodies: bool = False
) -> Page[Response]:
    """Responses, newest first."""
    where = [
        *_response_conditions(filters), *_dates(filters, Response.timestamp),
        *([Response.session_id == filters.session_id] if filters.session_id is not None else []),
    ]
    if filters.request_id is not None:
        where.append(Response.request_id == _request_pk(filters.request_id))
    request_where = _request_conditions(
        Filters(model=filters.model, provider=filters.provider, stream=filters.stream), dated=None
    )
    query = sa.select(Response)
    count = sa.select(sa.func.count()).select_from(Response)
    if request_where:
        query = query.join(Response.request)
        count = count.join(Request, Request.id == Response.request_id)
    if not bodies:
        query = query.options(defer(Response.openai_response), defer(Response.provider_response))
    return fetch_page(
        db, query.where(*where, *request_where), count=count.where(*where, *request_where),
        kind="responses", sort=(Response.timestamp, Response.id),
        key=lambda r: (r.timestamp, r.id), page=page,
    )


def get_response(db: Session, record_id: RecordId) -> Response:
    response = db.scalar(sa.select(Response).where(_by_id(Response, record_id)))
    if response is None:
        raise NotFound(f"No response with id {record_id!r}.", param="id", code="response_not_found")
    return response


# Query pieces

def _request_conditions(filters: Filters, *, dated: sa.ColumnElement | None) -> list[sa.ColumnElement]:
    where = []
    if filters.session_id is not None:
        where.append(Request.session_id == filters.session_id)
    if filters.model is not None:
        where.append(Request.model == filters.model)
    if filters.provider is not None:
        where.append(Request.provider == filters.provider)
    if filters.stream is not None:
        where.append(Request.stream == filters.stream)
    if dated is not None:
        where.extend(_dates(filters, dated))
    return where


def _response_conditions(filters: Filters) -> list[sa.ColumnElement]:
    where = []
    if filters.status is not None:
        where.append(Response.status == filters.status)
    if filters.has_error is not None:
        where.append(Response.status != "ok" if filters.has_error else Response.status == "ok")
    if filters.finish_reason is not None:
        where.append(Response.finish_reason == filters.finish_reason)
    if filters.min_duration_ms is not None:
        where.append(Response.duration_ms >= filters.min_duration_ms)
    return where


def _dates(filters: Filters, column: sa.ColumnElement) -> list[sa.ColumnElement]:
    where = []
    if filters.start_ms is not None:
        where.append(column >= filters.start_ms)
    if filters.end_ms is not None:
        where.append(column <= filters.end_ms)
    return where


def _by_id(model: type[Request] | type[Response], record_id: RecordId) -> sa.ColumnElement:
    if isinstance(record_id, int):
        return model.id == record_id
    return (model.request_id if model is Request else model.response_id) == record_id


def _request_pk(record_id: RecordId) -> sa.ColumnElement | int:
    if isinstance(record_id, int):
        return record_id
    return sa.select(Request.id).where(Request.request_id == record_id).scalar_subquery()

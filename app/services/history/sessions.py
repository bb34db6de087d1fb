"""The audit trail's sessions: list, detail, the conversation, deleting one, purging expired ones.

Plain functions on an ORM session, shared by the REST API and the CLI; they only flush.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import Session, contains_eager

from app.errors import NotFound
from app.models import ChatSession, Request, Response
from app.services.history import rollups
from app.services.history.paging import Page, PageRequest, fetch_page
from app.services.history.retention import purgeable_sessions
from app.services.history.usage_sql import DAY_MS, const


@dataclass(frozen=True, slots=True)
class SessionDetail:
    session: ChatSession
    request_count: int


@dataclass(frozen=True, slots=True)
class PurgeResult:
    deleted: int  # expired sessions without history, removed
    cleared: int  # expired sessions with history, whose upstream continuity was cleared


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


def in_session(session_id: str) -> sa.ColumnElement:
    """Responses of a session, found through their requests (the session_id index lives there)."""
    return Response.request_id.in_(sa.select(Request.id).where(Request.session_id == session_id))


def delete_session(db: Session, session_id: str) -> None:
    """Delete a session with all its history (the database cascades to requests and responses)."""
    day = (Response.timestamp // const(DAY_MS)) * const(DAY_MS)
    days = db.scalars(sa.select(day).where(in_session(session_id)).distinct()).all()
    result = db.execute(sa.delete(ChatSession).where(ChatSession.id == session_id))
    if result.rowcount == 0:
        raise _session_not_found(session_id)
    rollups.invalidate(db, days)


def purge_expired_sessions(db: Session, *, now_ms: int) -> PurgeResult:
    """End expired sessions without losing history.

    Expired sessions that hold no requests (and were not imported) are deleted; those with
    history keep it and only lose their upstream continuity (chat_id, parent_id).
    """
    expired = ChatSession.expires_at < now_ms
    deleted = db.execute(
        sa.delete(ChatSession)
        .where(ChatSession.id.in_(purgeable_sessions(now_ms=now_ms)))
        .execution_options(synchronize_session=False)
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


def row_counts(connection: sa.Connection) -> dict[str, int]:
    """How many sessions, requests and responses the database holds."""
    return {
        table: connection.scalar(sa.select(sa.func.count()).select_from(model))
        for table, model in (("sessions", ChatSession), ("requests", Request), ("responses", Response))
    }

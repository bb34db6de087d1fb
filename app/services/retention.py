"""Which sessions expiry cleanup may delete: never history, never imported sessions."""

from __future__ import annotations

import sqlalchemy as sa

from app.models import ChatSession, Request

_sessions = ChatSession.__table__
_requests = Request.__table__


def purgeable_sessions(*, now_ms: int) -> sa.Select:
    """Ids of sessions that are expired, not retained, and hold no requests (so no audit trail)."""
    return sa.select(_sessions.c.id).where(
        _sessions.c.expires_at < now_ms,
        _sessions.c.retained == sa.false(),
        ~sa.exists().where(_requests.c.session_id == _sessions.c.id),
    )

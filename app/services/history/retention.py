"""Retention: which sessions expiry cleanup may delete (never history, never imported ones), pruning old history."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from app.models import ChatSession, Request, Response
from app.services.history import rollups
from app.services.history.usage_sql import DAY_MS, const

_sessions = ChatSession.__table__
_requests = Request.__table__
_responses = Response.__table__


def purgeable_sessions(*, now_ms: int) -> sa.Select:
    """Ids of sessions that are expired, not retained, and hold no requests (so no audit trail)."""
    return sa.select(_sessions.c.id).where(
        _sessions.c.expires_at < now_ms,
        _sessions.c.retained == sa.false(),
        ~sa.exists().where(_requests.c.session_id == _sessions.c.id),
    )


# Pruning old history (provider-cli prune)

PRUNE_BATCH = 5000
# Rest after each batch, as a multiple of its time: 1 gives the database to the prune half of the time.
# Measured at 10M calls on PostgreSQL, chat p99 during a prune: 2.11x outside it without rest (see bench/RESULTS.md).
PRUNE_REST = 1.0


@dataclass(frozen=True, slots=True)
class PruneCounts:
    requests: int  # with their responses and attempts
    sessions: int  # left without requests, idle since before the cutoff, not retained


def prune_counts(engine: Engine, *, before_ms: int) -> PruneCounts:
    """What ``prune`` would remove, written nowhere."""
    with engine.connect() as connection:
        requests = connection.scalar(
            sa.select(sa.func.count()).select_from(_requests).where(_requests.c.timestamp < before_ms)
        )
        sessions = connection.scalar(sa.select(sa.func.count()).select_from(
            _emptied_sessions(before_ms, keeping=_requests.c.timestamp >= before_ms).subquery()
        ))
    return PruneCounts(requests=requests or 0, sessions=sessions or 0)


def prune(
    engine: Engine, *, before_ms: int, batch_size: int = PRUNE_BATCH, advance: Callable[[int], None] = lambda n: None,
    rest: float = PRUNE_REST, sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic,
) -> PruneCounts:
    """Delete requests older than ``before_ms``, one short transaction a batch, then the sessions left empty.

    The database cascades to responses and attempts; the usage rollups of the days touched are dropped
    so the next report recomputes them. After each batch the prune rests ``rest`` times as long as
    the batch took, leaving the database (and, on a shared host, the cores) to the gateway meanwhile.
    """
    removed = 0
    # Each batch starts where the last one ended (oldest first, from the timestamp index): rows
    # deleted but not vacuumed yet stay in the indexes, and a batch that walked from the start again
    # would step over all of them (on PostgreSQL, 1.5 s a batch after 700,000 rows).
    since = None
    while True:
        started = clock()
        with Session(engine) as db, db.begin():
            batch = db.execute(
                sa.select(_requests.c.id, _requests.c.timestamp)
                .where(_requests.c.timestamp < before_ms,
                       *([] if since is None else [_requests.c.timestamp >= since]))
                .order_by(_requests.c.timestamp).limit(batch_size)
            ).all()
            if not batch:
                break
            ids = [row.id for row in batch]
            since = batch[-1].timestamp
            day = (_responses.c.timestamp // const(DAY_MS)) * const(DAY_MS)
            days = db.scalars(sa.select(day).where(_responses.c.request_id.in_(ids)).distinct()).all()
            db.execute(sa.delete(_requests).where(_requests.c.id.in_(ids)))
            rollups.invalidate(db, days)
        removed += len(ids)
        advance(len(ids))
        if rest:
            sleep((clock() - started) * rest)
    sessions, after = 0, None
    while True:  # one walk along the sessions' key, a batch at a time (not one full scan per batch)
        with engine.begin() as connection:
            emptied = _emptied_sessions(before_ms).order_by(_sessions.c.id).limit(batch_size)
            if after is not None:
                emptied = emptied.where(_sessions.c.id > after)
            ids = connection.scalars(emptied).all()
            if ids:
                connection.execute(sa.delete(_sessions).where(_sessions.c.id.in_(ids)))
                after = ids[-1]
        sessions += len(ids)
        if len(ids) < batch_size:
            break
    return PruneCounts(requests=removed, sessions=sessions)


def _emptied_sessions(before_ms: int, *, keeping: sa.ColumnElement | None = None) -> sa.Select:
    """Sessions idle since before the cutoff, not retained, with no requests (``keeping``: none that stay)."""
    held = sa.exists().where(_requests.c.session_id == _sessions.c.id)
    if keeping is not None:
        held = held.where(keeping)
    return sa.select(_sessions.c.id).where(
        _sessions.c.last_accessed < before_ms, _sessions.c.retained == sa.false(), ~held
    )

"""Pruning old history: batches that follow each other in time, ties included."""

from __future__ import annotations

import sqlalchemy as sa

from app.db import get_engine
from app.models import Request, now_ms
from app.services.history.retention import prune
from tests.factories import DAY_MS, make_call, make_session


def test_batches_walk_forward_in_time_and_take_every_call_of_a_tied_timestamp(db_session, database_url):
    now = now_ms()
    old = make_session(db_session, "old", created_at=now - 60 * DAY_MS)
    tied = now - 50 * DAY_MS
    for _ in range(5):  # more calls at one instant than a batch holds
        make_call(db_session, old, timestamp=tied)
    for i in range(4):
        make_call(db_session, old, timestamp=tied + 1 + i)
    kept = make_call(db_session, make_session(db_session, "new", created_at=now), timestamp=now)
    db_session.commit()
    seen: list[int] = []
    counts = prune(get_engine(database_url), before_ms=now - 30 * DAY_MS, batch_size=2, advance=seen.append)
    assert counts.requests == 9 and sum(seen) == 9 and max(seen) == 2
    db_session.expire_all()
    assert db_session.scalars(sa.select(Request.id)).all() == [kept.id]

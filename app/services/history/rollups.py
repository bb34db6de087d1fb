"""Daily usage rollups: computed in SQL once a UTC day is over, checked before each use.

A report reads whole past days from the rollups and computes only the edges live. Before
that, ``ensure`` rolls up the days not done yet and compares the number of responses the
rollups cover with the live count (one index range count): if history changed behind them
(an import, a purge), the days that differ are recomputed. Deletions made through
``app.services.history.records`` also ``invalidate`` their days at once. On a read-only
database (a hot standby) the rollups the primary wrote are used where they match the history,
and the other days are computed live: nothing is written there.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.db.read_only import is_read_only
from app.models import Request, Response, now_ms
from app.models.usage import (
    LATENCY_KINDS,
    UsageRollup,
    UsageRollupDay,
    UsageRollupDayLatency,
    UsageRollupLatency,
)
from app.services.history.usage_sql import DAY_MS, bucket, const

log = logging.getLogger(__name__)

# A day is rolled up only this long after it ends: rows still being committed, clock skew.
SETTLE_MS = 5 * 60_000
# Days rolled up in one transaction: on SQLite the gateway's writes wait meanwhile, so each
# stays short (a week of a million-calls-a-quarter gateway: about a second).
MAX_RUN_DAYS = 7
_checked_at: dict[tuple[str, int, int], float] = {}  # (database, first, end day) -> when found current
_TABLES = (UsageRollup, UsageRollupLatency, UsageRollupDayLatency, UsageRollupDay)


def day_of(timestamp_ms: int) -> int:
    return timestamp_ms // DAY_MS * DAY_MS


def closed_days(lo: int, hi: int, *, now: int) -> tuple[int, int]:
    """``[first, end)``: the whole days inside ``[lo, hi]`` (inclusive ms) that are over."""
    first = -(-lo // DAY_MS) * DAY_MS
    end = min((hi + 1) // DAY_MS * DAY_MS, day_of(now - SETTLE_MS))
    return first, max(first, end)


def ensure(
    engine: Engine, first_day: int, end_day: int, *, from_oldest: bool = False, recheck_s: float = 0
) -> list[tuple[int, int]]:
    """Make the rollups of the days in ``[first_day, end_day)`` complete and current.

    Returns the ``[start, end)`` runs of days whose rollups cannot be used, for the caller to
    compute live: on a read-only database (a hot standby, app.db.read_only) nothing is written,
    so the days the primary rolled up and that still match the history are used and the others
    (not rolled up there yet, or changed since) are left out. Elsewhere it is always empty.
    ``from_oldest``: no response is older than ``first_day``, so the live count is the whole
    table's (SQLite counts that from index pages, not entries) less the days after ``end_day``.
    ``recheck_s``: when every day is rolled up and this process found them matching the history
    less than that long ago, skip the live count (a range count of up to ~30 ms a month).
    """
    if end_day <= first_day:
        return []
    days = range(first_day, end_day, DAY_MS)
    checked = (str(engine.url), first_day, end_day)
    with engine.connect() as connection:
        done = dict(connection.execute(
            sa.select(UsageRollupDay.day, UsageRollupDay.responses)
            .where(UsageRollupDay.day >= first_day, UsageRollupDay.day < end_day)
        ).all())
        if len(done) == len(days) and time.monotonic() - _checked_at.get(checked, -math.inf) < recheck_s:
            return []
        if from_oldest:
            everything = connection.scalar(sa.select(sa.func.count()).select_from(Response))
            live = everything - connection.scalar(
                sa.select(sa.func.count()).select_from(Response).where(Response.timestamp >= end_day)
            )
        else:
            live = connection.scalar(_count_between(first_day, end_day))
    if is_read_only(engine):
        if len(done) == len(days) and sum(done.values()) == live:
            _checked_at[checked] = time.monotonic()
            return []
        return _runs(_stale(engine, days, done), max_days=len(days))
    for start, end in _runs([day for day in days if day not in done]):
        done.update(_roll_up(engine, start, end))
    _checked_at[checked] = time.monotonic()
    if sum(done.values()) == live:
        return []
    # History changed under days already rolled up: find which, and redo them.
    stale = _stale(engine, days, done)
    log.info("usage rollups of %d day(s) no longer match the history: recomputing them", len(stale))
    for start, end in _runs(stale):
        _roll_up(engine, start, end)
    return []


def rolled_up(first_day: int, end_day: int, live: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The runs of ``[first_day, end_day)`` left once the ``live`` runs (sorted, inside it) are taken out."""
    runs, start = [], first_day
    for live_start, live_end in live:
        if live_start > start:
            runs.append((start, live_start))
        start = live_end
    if start < end_day:
        runs.append((start, end_day))
    return runs


def _stale(engine: Engine, days: range, done: dict[int, int]) -> list[int]:
    """The days whose rollups are missing or no longer count the responses the history holds."""
    with engine.connect() as connection:
        key = _day(Response.timestamp)
        counts = dict(connection.execute(
            sa.select(key, sa.func.count())
            .where(Response.timestamp >= days.start, Response.timestamp < days.stop).group_by(key)
        ).all())
    return [day for day in days if counts.get(day, 0) != done.get(day)]


def _runs(days: list[int], *, max_days: int = MAX_RUN_DAYS) -> list[tuple[int, int]]:
    """Consecutive days as ``[start, end)`` runs of at most ``max_days`` (one transaction each)."""
    runs: list[tuple[int, int]] = []
    for day in sorted(days):
        if runs and runs[-1][1] == day and day - runs[-1][0] < max_days * DAY_MS:
            runs[-1] = (runs[-1][0], day + DAY_MS)
        else:
            runs.append((day, day + DAY_MS))
    return runs


def invalidate(db: Session, days: Iterable[int]) -> None:
    """Drop the rollups of these days (in the caller's transaction); the next report redoes them."""
    days = sorted(set(days))
    if days:
        for table in _TABLES:
            db.execute(sa.delete(table).where(table.day.in_(days)))


def _count_between(first: int, end: int) -> sa.Select:
    return sa.select(sa.func.count()).select_from(Response).where(
        Response.timestamp >= first, Response.timestamp < end
    )


def _day(column: sa.ColumnElement) -> sa.ColumnElement:
    return (column // const(DAY_MS)) * const(DAY_MS)


def _roll_up(engine: Engine, start: int, end: int) -> dict[int, int]:
    """Recompute the days in ``[start, end)`` in one transaction; return each day's response count."""
    try:
        with engine.begin() as connection:
            return _write_days(connection, start, end)
    except IntegrityError:
        # Another worker rolled the same days up at the same moment: its rows are as good.
        log.debug("usage rollups of %s..%s written concurrently", start, end)
        with engine.connect() as connection:
            return dict(connection.execute(
                sa.select(UsageRollupDay.day, UsageRollupDay.responses)
                .where(UsageRollupDay.day >= start, UsageRollupDay.day < end)
            ).all())


def _write_days(connection: Connection, start: int, end: int) -> dict[int, int]:
    for table in _TABLES:
        connection.execute(sa.delete(table).where(table.day >= start, table.day < end))
    day = _day(Response.timestamp)
    dims = (day, Request.provider, Request.model, Request.stream)
    joined = (
        sa.select(*dims).select_from(Response).join(Request, Request.id == Response.request_id)
        .where(Response.timestamp >= start, Response.timestamp < end)
    )

    def count_if(condition: sa.ColumnElement) -> sa.ColumnElement:
        return sa.func.coalesce(sa.func.sum(sa.case((condition, 1), else_=0)), 0)

    def total(column: sa.ColumnElement) -> sa.ColumnElement:
        return sa.func.coalesce(sa.func.sum(column), 0)

    connection.execute(sa.insert(UsageRollup).from_select(
        ["day", "provider", "model", "stream", "requests", "errors", "incomplete", "prompt_tokens",
         "completion_tokens", "total_tokens", "usage_estimated", "durations", "duration_ms_sum"],
        joined.add_columns(
            sa.func.count(), count_if(Response.status == "error"),
            count_if(Response.status == "incomplete"), total(Response.prompt_tokens),
            total(Response.completion_tokens), total(Response.total_tokens),
            count_if(Response.usage_estimated.is_(True)), sa.func.count(Response.duration_ms),
            total(Response.duration_ms),
        ).group_by(*dims),
    ))
    for kind in LATENCY_KINDS:
        value = Response.duration_ms if kind == "duration" else Response.ttft_ms
        slot = bucket(value)
        connection.execute(sa.insert(UsageRollupLatency).from_select(
            ["day", "provider", "model", "stream", "kind", "bucket", "count"],
            joined.add_columns(sa.literal(kind), slot, sa.func.count())
            .where(value.is_not(None)).group_by(*dims, slot),
        ))
    latency = UsageRollupLatency
    connection.execute(sa.insert(UsageRollupDayLatency).from_select(
        ["kind", "day", "bucket", "count"],
        sa.select(latency.kind, latency.day, latency.bucket, sa.func.sum(latency.count))
        .where(latency.kind.in_(LATENCY_KINDS), latency.day >= start, latency.day < end)
        .group_by(latency.kind, latency.day, latency.bucket),
    ))
    # Counted from the rows just written: the same snapshot as the rollups themselves.
    counts = dict(connection.execute(
        sa.select(UsageRollup.day, sa.func.sum(UsageRollup.requests))
        .where(UsageRollup.day >= start, UsageRollup.day < end).group_by(UsageRollup.day)
    ).all())
    written = {day: int(counts.get(day, 0)) for day in range(start, end, DAY_MS)}
    computed_at = now_ms()
    connection.execute(sa.insert(UsageRollupDay), [
        {"day": day, "responses": count, "computed_at": computed_at} for day, count in written.items()
    ])
    return written

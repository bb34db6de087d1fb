"""Usage rollups: computed in SQL once a UTC day (or hour) is over, checked before each use.

A report reads whole past days from the daily rollups, the whole hours at its edges (today, a
range that starts mid-day) from the hourly ones, and computes only what is left live: the current
hour and partial hours. Before that, ``ensure`` rolls up the periods not done yet and compares the
number of responses the rollups cover with the live count (one index range count): if history
changed behind them (an import, a purge), the periods that differ are recomputed. Deletions made
through ``app.services.history.records`` also ``invalidate`` their days (and hours) at once. On a
read-only database (a hot standby) the rollups the primary wrote are used where they match the
history, and the other periods are computed live: nothing is written there.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.db.read_only import is_read_only
from app.models import Request, Response, now_ms
from app.models.usage import (
    LATENCY_KINDS,
    SUMS,
    UsageRollup,
    UsageRollupDay,
    UsageRollupDayLatency,
    UsageRollupHour,
    UsageRollupHourCell,
    UsageRollupHourLatency,
    UsageRollupLatency,
)
from app.services.history.usage_sql import DAY_MS, HOUR_MS, bucket, cell_sums, const

log = logging.getLogger(__name__)

# A period is rolled up only this long after it ends: rows still being committed, clock skew.
SETTLE_MS = 5 * 60_000


@dataclass(frozen=True, slots=True)
class Grain:
    """A rollup period and its tables: days (everything), hours (counts and overall histograms)."""

    name: str  # the tables' time column: "day" or "hour"
    width: int  # ms
    done: type  # the periods rolled up, with the number of responses each covered
    cells: type  # counts and sums per provider, model and stream kind
    merged: type  # latency histograms over all of a period's responses
    by_model: type | None  # latency histograms per provider, model and stream kind (days only)
    # Periods rolled up in one transaction: on SQLite the gateway's writes wait meanwhile, so each
    # stays short (a week of a million-calls-a-quarter gateway: about a second).
    max_run: int

    def at(self, table: type) -> sa.ColumnElement:
        return getattr(table, self.name)

    @property
    def tables(self) -> tuple[type, ...]:
        return tuple(t for t in (self.cells, self.by_model, self.merged, self.done) if t is not None)


DAYS = Grain("day", DAY_MS, UsageRollupDay, UsageRollup, UsageRollupDayLatency, UsageRollupLatency, 7)
HOURS = Grain("hour", HOUR_MS, UsageRollupHour, UsageRollupHourCell, UsageRollupHourLatency, None, 7 * 24)
_checked_at: dict[tuple[str, str, int, int], float] = {}  # (database, grain, first, end) -> when found current
_CHECKS_KEPT = 1024


def day_of(timestamp_ms: int) -> int:
    return timestamp_ms // DAY_MS * DAY_MS


def closed_days(lo: int, hi: int, *, now: int) -> tuple[int, int]:
    """``[first, end)``: the whole days inside ``[lo, hi]`` (inclusive ms) that are over."""
    return closed(DAYS, lo, hi, now=now)


def closed(grain: Grain, lo: int, hi: int, *, now: int) -> tuple[int, int]:
    """``[first, end)``: the whole periods inside ``[lo, hi]`` (inclusive ms) that are over."""
    first = -(-lo // grain.width) * grain.width
    end = min((hi + 1) // grain.width * grain.width, (now - SETTLE_MS) // grain.width * grain.width)
    return first, max(first, end)


def ensure(
    engine: Engine, first_day: int, end_day: int, *, grain: Grain = DAYS, from_oldest: bool = False,
    recheck_s: float = 0,
) -> list[tuple[int, int]]:
    """Make the rollups of the periods in ``[first_day, end_day)`` complete and current.

    Returns the ``[start, end)`` runs of periods whose rollups cannot be used, for the caller to
    compute live: on a read-only database (a hot standby, app.db.read_only) nothing is written,
    so the periods the primary rolled up and that still match the history are used and the others
    (not rolled up there yet, or changed since) are left out. Elsewhere it is always empty.
    ``from_oldest``: no response is older than ``first_day``, so the live count is the whole
    table's (SQLite counts that from index pages, not entries) less the periods after ``end_day``.
    ``recheck_s``: when every period is rolled up and this process found them matching the history
    less than that long ago, skip the live count (a range count of up to ~30 ms a month).
    """
    if end_day <= first_day:
        return []
    days = range(first_day, end_day, grain.width)
    checked = (str(engine.url), grain.name, first_day, end_day)
    done_at = grain.at(grain.done)
    with engine.connect() as connection:
        done = dict(connection.execute(
            sa.select(done_at, grain.done.responses).where(done_at >= first_day, done_at < end_day)
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
            _found_current(checked)
            return []
        return _runs(grain, _stale(engine, grain, days, done), max_run=len(days))
    for start, end in _runs(grain, [day for day in days if day not in done]):
        done.update(_roll_up(engine, grain, start, end))
    _found_current(checked)
    if sum(done.values()) == live:
        return []
    # History changed under periods already rolled up: find which, and redo them.
    stale = _stale(engine, grain, days, done)
    log.info("usage rollups of %d %s(s) no longer match the history: recomputing them", len(stale), grain.name)
    for start, end in _runs(grain, stale):
        _roll_up(engine, grain, start, end)
    return []


def _found_current(checked: tuple[str, str, int, int]) -> None:
    if len(_checked_at) >= _CHECKS_KEPT:  # ranges move with the clock: forget the old ones
        _checked_at.clear()
    _checked_at[checked] = time.monotonic()


def rolled_up(first: int, end: int, live: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The runs of ``[first, end)`` left once the ``live`` runs (sorted, inside it) are taken out."""
    runs, start = [], first
    for live_start, live_end in live:
        if live_start > start:
            runs.append((start, live_start))
        start = live_end
    if start < end:
        runs.append((start, end))
    return runs


def _stale(engine: Engine, grain: Grain, periods: range, done: dict[int, int]) -> list[int]:
    """The periods whose rollups are missing or no longer count the responses the history holds."""
    with engine.connect() as connection:
        key = _period(grain, Response.timestamp)
        counts = dict(connection.execute(
            sa.select(key, sa.func.count())
            .where(Response.timestamp >= periods.start, Response.timestamp < periods.stop).group_by(key)
        ).all())
    return [period for period in periods if counts.get(period, 0) != done.get(period)]


def _runs(grain: Grain, days: list[int], *, max_run: int | None = None) -> list[tuple[int, int]]:
    """Consecutive periods as ``[start, end)`` runs of at most ``max_run`` (the grain's: one transaction each)."""
    runs: list[tuple[int, int]] = []
    for day in sorted(days):
        if runs and runs[-1][1] == day and day - runs[-1][0] < (max_run or grain.max_run) * grain.width:
            runs[-1] = (runs[-1][0], day + grain.width)
        else:
            runs.append((day, day + grain.width))
    return runs


def invalidate(db: Session, days: Iterable[int]) -> None:
    """Drop the rollups of these days and of their hours (in the caller's transaction); the next report redoes them."""
    days = sorted(set(days))
    if days:
        for table in DAYS.tables:
            db.execute(sa.delete(table).where(table.day.in_(days)))
        for table in HOURS.tables:
            db.execute(sa.delete(table).where(_period(DAYS, table.hour).in_(days)))


def _count_between(first: int, end: int) -> sa.Select:
    return sa.select(sa.func.count()).select_from(Response).where(
        Response.timestamp >= first, Response.timestamp < end
    )


def _period(grain: Grain, column: sa.ColumnElement) -> sa.ColumnElement:
    return (column // const(grain.width)) * const(grain.width)


def _roll_up(engine: Engine, grain: Grain, start: int, end: int) -> dict[int, int]:
    """Recompute the periods in ``[start, end)`` in one transaction; return each one's response count."""
    try:
        with engine.begin() as connection:
            return _write(connection, grain, start, end)
    except IntegrityError:
        # Another worker rolled the same periods up at the same moment: its rows are as good.
        log.debug("usage rollups (%s) of %s..%s written concurrently", grain.name, start, end)
        done_at = grain.at(grain.done)
        with engine.connect() as connection:
            return dict(connection.execute(
                sa.select(done_at, grain.done.responses).where(done_at >= start, done_at < end)
            ).all())


def _write(connection: Connection, grain: Grain, start: int, end: int) -> dict[int, int]:
    for table in grain.tables:
        connection.execute(sa.delete(table).where(grain.at(table) >= start, grain.at(table) < end))
    period = _period(grain, Response.timestamp)
    dims = (period, Request.provider, Request.model, Request.stream)
    in_range = (Response.timestamp >= start, Response.timestamp < end)
    joined = (
        sa.select(*dims).select_from(Response).join(Request, Request.id == Response.request_id).where(*in_range)
    )
    connection.execute(sa.insert(grain.cells).from_select(
        [grain.name, "provider", "model", "stream", *SUMS],
        joined.add_columns(*cell_sums()).group_by(*dims),
    ))
    for kind in LATENCY_KINDS:
        value = Response.duration_ms if kind == "duration" else Response.ttft_ms
        slot = bucket(value)
        if grain.by_model is None:  # from the responses alone: their timestamp index carries both latencies
            connection.execute(sa.insert(grain.merged).from_select(
                ["kind", grain.name, "bucket", "count"],
                sa.select(sa.literal(kind), period, slot, sa.func.count())
                .where(*in_range, value.is_not(None)).group_by(period, slot),
            ))
            continue
        connection.execute(sa.insert(grain.by_model).from_select(
            [grain.name, "provider", "model", "stream", "kind", "bucket", "count"],
            joined.add_columns(sa.literal(kind), slot, sa.func.count())
            .where(value.is_not(None)).group_by(*dims, slot),
        ))
    if grain.by_model is not None:
        latency, at = grain.by_model, grain.at(grain.by_model)
        connection.execute(sa.insert(grain.merged).from_select(
            ["kind", grain.name, "bucket", "count"],
            sa.select(latency.kind, at, latency.bucket, sa.func.sum(latency.count))
            .where(latency.kind.in_(LATENCY_KINDS), at >= start, at < end)
            .group_by(latency.kind, at, latency.bucket),
        ))
    # Counted from the rows just written: the same snapshot as the rollups themselves.
    at = grain.at(grain.cells)
    counts = dict(connection.execute(
        sa.select(at, sa.func.sum(grain.cells.requests)).where(at >= start, at < end).group_by(at)
    ).all())
    written = {day: int(counts.get(day, 0)) for day in range(start, end, grain.width)}
    computed_at = now_ms()
    connection.execute(sa.insert(grain.done), [
        {grain.name: day, "responses": count, "computed_at": computed_at} for day, count in written.items()
    ])
    return written

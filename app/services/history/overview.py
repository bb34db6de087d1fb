"""The dashboard's overview: a time range's usage beside the period before it, over time, and its top lists.

Everything comes from usage reports (``stats.usage_report``), so whole past days are read from the
daily rollups; only minute and hour buckets (ranges up to three days) are counted live, from the
responses of that range. Top sessions are the sessions started in the range with the most turns.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import Session

from app.config import ModelPrice
from app.models import ChatSession
from app.services.history.stats import RECHECK_S, Metrics, UsageGroup, usage_report
from app.services.history.usage_sql import DAY_MS, HOUR_MS, MINUTE_MS, UsageFilters

# name -> span; the bucket follows the span: up to 6 h by minute, up to 3 days by hour, then by day.
RANGES = {"1h": HOUR_MS, "24h": DAY_MS, "7d": 7 * DAY_MS, "30d": 30 * DAY_MS}
BUCKETS = (("minute", MINUTE_MS, 6 * HOUR_MS), ("hour", HOUR_MS, 3 * DAY_MS), ("day", DAY_MS, None))
TOP = 5
MAX_SPAN_MS = 400 * DAY_MS


@dataclass(frozen=True, slots=True)
class TimeRange:
    start_ms: int  # inclusive
    end_ms: int  # inclusive
    bucket: str
    bucket_ms: int

    @property
    def span_ms(self) -> int:
        return self.end_ms - self.start_ms + 1

    def previous(self) -> TimeRange:
        return TimeRange(self.start_ms - self.span_ms, self.start_ms - 1, self.bucket, self.bucket_ms)


@dataclass(frozen=True, slots=True)
class TopSession:
    id: str
    turns: int
    created_at: int
    first_user_message: str | None


@dataclass(frozen=True, slots=True)
class Overview:
    range: TimeRange
    totals: Metrics
    previous: Metrics
    series: list[UsageGroup]  # oldest first, one per bucket that has calls
    models: list[UsageGroup]  # by model name, busiest first
    providers: list[UsageGroup]
    sessions: list[TopSession]
    unpriced_models: list[str]


def time_range(
    *, now: int, name: str | None = None, start_ms: int | None = None, end_ms: int | None = None
) -> TimeRange:
    """A named range ending now, or a custom one; ValueError if it is empty or longer than 400 days."""
    if name is not None:
        if name not in RANGES:
            raise ValueError(f"unknown range {name!r}")
        # Whole buckets up to the current one: the last 7 days are today and the 6 days before,
        # so that past days come whole from the rollups.
        width = next(w for _, w, most in BUCKETS if most is None or RANGES[name] <= most)
        start_ms, end_ms = now // width * width - RANGES[name] + width, now
    if start_ms is None or end_ms is None or end_ms < start_ms:
        raise ValueError("a custom range needs a start before its end")
    span = end_ms - start_ms + 1
    if span > MAX_SPAN_MS:
        raise ValueError("a range is at most 400 days")
    bucket, width = next((b, w) for b, w, most in BUCKETS if most is None or span <= most)
    return TimeRange(start_ms, end_ms, bucket, width)


def overview(db: Session, *, span: TimeRange, prices: Mapping[str, ModelPrice], now: int) -> Overview:
    """Tiles, series and top lists of ``span``; the same measures of the period just before it."""
    filters = UsageFilters(start_ms=span.start_ms, end_ms=span.end_ms)
    report = usage_report(
        db, filters=filters, group_by=span.bucket, prices=prices, limit=10_000, now=now, recheck_s=RECHECK_S
    )
    before = span.previous()
    previous = usage_report(
        db, filters=UsageFilters(start_ms=before.start_ms, end_ms=before.end_ms), prices=prices, now=now,
        recheck_s=RECHECK_S,
    )
    return Overview(
        range=span, totals=report.totals, previous=previous.totals, series=list(reversed(report.groups)),
        models=report.by_model[:TOP], providers=report.by_provider[:TOP], sessions=top_sessions(db, span),
        unpriced_models=report.unpriced_models,
    )


def top_sessions(db: Session, span: TimeRange, *, limit: int = TOP) -> list[TopSession]:
    """Sessions started in the range, most turns first (from the sessions' created_at index)."""
    rows = db.execute(
        sa.select(ChatSession.id, ChatSession.message_count, ChatSession.created_at, ChatSession.first_user_message)
        .where(ChatSession.created_at >= span.start_ms, ChatSession.created_at <= span.end_ms)
        .order_by(ChatSession.message_count.desc(), ChatSession.created_at.desc()).limit(limit)
    ).all()
    return [TopSession(id=r.id, turns=r.message_count, created_at=r.created_at, first_user_message=r.first_user_message)
            for r in rows]

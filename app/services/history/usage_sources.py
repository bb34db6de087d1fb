"""Where each part of a usage report's range is read from: daily rollups, hourly rollups, or the raw calls.

``gather`` returns the report's cells (counts and sums per key, provider and model) and, per
latency kind, the histogram selects to merge; ``stats.usage_report`` adds them up.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from app.models import Response
from app.services.history import rollups, usage_sql
from app.services.history.usage_sql import UsageFilters

_ROLLED_UP = (None, "day", "model", "provider")  # groupings the daily rollups can answer


def gather(
    db: Session, filters: UsageFilters, *, group_by: str | None, now: int, recheck_s: float
) -> tuple[list[Any], dict[str, list[sa.Select]]]:
    """The cells and histogram sources of a report: whole past days and hours from the rollups, the rest live."""
    cells: list[Any] = []
    histograms: dict[str, list[sa.Select]] = {"duration": [], "ttft": []}
    lo = filters.start_ms
    past_end = None if filters.end_ms is None else filters.end_ms + 1  # spans are [lo, past_end)
    spans: list[tuple[int | None, int | None]] = [(lo, past_end)]
    oldest = db.scalar(sa.select(sa.func.min(Response.timestamp)))
    if oldest is None:
        spans = []
    elif not filters.live_only:
        spans = [(max(lo or 0, rollups.day_of(oldest)), past_end)]
        for grain in _grains(filters, group_by):
            spans = [piece for span in spans for piece in _from_rollups(
                db, grain, span, filters=filters, group_by=group_by, now=now, oldest=oldest, recheck_s=recheck_s,
                cells=cells, histograms=histograms,
            )]
    for span_lo, span_hi in spans:
        if span_lo is not None and span_hi is not None and span_hi <= span_lo:
            continue
        cells += db.execute(usage_sql.live_cells(filters, group_by=group_by, lo=span_lo, hi=span_hi))
        for kind, sources in histograms.items():
            sources.append(usage_sql.live_histogram(
                filters, group_by=group_by, lo=span_lo, hi=span_hi, kind=kind))
    return cells, histograms


def _grains(filters: UsageFilters, group_by: str | None) -> list[rollups.Grain]:
    """The rollups that can answer this report: days first, then hours for the partial days left."""
    grains = [rollups.DAYS] if group_by in _ROLLED_UP else []
    by_dimension = any(value is not None for value in (filters.model, filters.provider, filters.stream))
    if group_by in (None, "day", "hour") and not by_dimension:  # hours keep histograms over all models only
        grains.append(rollups.HOURS)
    return grains


def _from_rollups(
    db: Session, grain: rollups.Grain, span: tuple[int, int | None], *, filters: UsageFilters, group_by: str | None,
    now: int, oldest: int, recheck_s: float, cells: list[Any], histograms: dict[str, list[sa.Select]],
) -> list[tuple[int, int | None]]:
    """Read the grain's whole closed periods inside ``[lo, hi)``; return what is left of the span (0-2 pieces,
    more on a read-only database where some periods are not rolled up)."""
    lo, hi = span
    if hi is not None and hi <= lo:
        return []
    first, end = rollups.closed(grain, lo, min(now, hi or now) - 1, now=now)
    if end <= first:
        return [span]
    # Periods without usable rollups (on a read-only database) are left to the next grain or live.
    live = rollups.ensure(
        db.get_bind(), first, end, grain=grain, recheck_s=recheck_s,
        from_oldest=grain is rollups.DAYS and lo <= rollups.day_of(oldest),
    )
    for run_first, run_end in rollups.rolled_up(first, end, live):
        cells += db.execute(usage_sql.rollup_cells(
            filters, group_by=group_by, first=run_first, end=run_end, grain=grain))
        for kind, sources in histograms.items():
            sources.append(usage_sql.rollup_histogram(
                filters, group_by=group_by, first=run_first, end=run_end, kind=kind, grain=grain))
    return [piece for piece in ((lo, first), *live, (end, hi)) if piece[1] is None or piece[1] > piece[0]]

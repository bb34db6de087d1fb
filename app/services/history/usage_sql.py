"""The SQL behind usage reports: cells (counts and token sums) and latency histograms.

Both the live path (responses joined to their requests) and the daily rollups produce the same
two row shapes, so a report can add whole rolled-up days to a live-computed edge:

* cell: ``(key, provider, model, requests, errors, incomplete, prompt_tokens, completion_tokens,
  total_tokens, usage_estimated, durations, duration_ms_sum)``
* histogram: ``(key, bucket, count)`` of one latency kind, ``duration`` or ``ttft``.

Latencies are bucketed to two significant digits (exact below 100 ms) so that histograms of
different days merge; ``percentiles`` merges them and picks the percentiles.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from app.models import Request, Response
from app.models.usage import SUMS
from app.providers.base import CLIENT_PATHS
from app.services.history.tag_sql import TagValue, key_matches, tag_matches

DAY_MS = 86_400_000
HOUR_MS = 3_600_000
MINUTE_MS = 60_000
_ON_REQUESTS = ("model", "provider", "session", "endpoint", "key")  # groupings that need the request row


def const(value: int) -> sa.ColumnElement:
    """An integer constant inlined in the SQL (PostgreSQL needs GROUP BY expressions without parameters)."""
    return sa.literal_column(str(int(value)), sa.BigInteger)


def bucket(column: sa.ColumnElement) -> sa.ColumnElement:
    """The value rounded down to two significant digits (exact under 100)."""
    whens = [(column < const(100), column)]
    for power in range(3, 7):
        width = 10 ** (power - 2)
        whens.append((column < const(10**power), (column // const(width)) * const(width)))
    return sa.case(*whens, else_=(column // const(100_000)) * const(100_000))


def bucket_width(value: int) -> int:
    """The width of the bucket ``bucket`` put ``value`` in."""
    return 1 if value < 100 else 10 ** (len(str(value)) - 2)


@dataclass(frozen=True, slots=True, kw_only=True)
class UsageFilters:
    """Which responses a usage report covers; dates are inclusive ms since the epoch."""

    model: str | None = None
    provider: str | None = None
    stream: bool | None = None
    session_id: str | None = None
    endpoint: str | None = None  # chat, embeddings, completions, responses (live only: rollups do not keep it)
    start_ms: int | None = None
    end_ms: int | None = None
    tag: tuple[str, str] | None = None  # (name, value) (live only)
    key: str | None = None  # a gateway key's name (live only)

    @property
    def live_only(self) -> bool:
        """Filters the daily rollups cannot answer."""
        return self.session_id is not None or self.endpoint is not None or self.tag is not None or self.key is not None


def _count_if(condition: sa.ColumnElement) -> sa.ColumnElement:
    return sa.func.coalesce(sa.func.sum(sa.case((condition, 1), else_=0)), 0)


def _sum(column: sa.ColumnElement) -> sa.ColumnElement:
    return sa.func.coalesce(sa.func.sum(column), 0)


def live_key(group_by: str | None) -> sa.ColumnElement | None:
    if group_by is not None and group_by.startswith("tag:"):
        return TagValue(group_by[4:])
    return {
        None: None,
        "day": (Response.timestamp // const(DAY_MS)) * const(DAY_MS),
        "hour": (Response.timestamp // const(HOUR_MS)) * const(HOUR_MS),
        "minute": (Response.timestamp // const(MINUTE_MS)) * const(MINUTE_MS),
        "model": Request.model,
        "provider": Request.provider,
        "session": Request.session_id,
        "endpoint": Request.path,
        "key": Request.key_id,
    }[group_by]


def _live_where(filters: UsageFilters, lo: int | None, hi: int | None) -> list[sa.ColumnElement]:
    where = []
    if lo is not None:
        where.append(Response.timestamp >= lo)
    if hi is not None:
        where.append(Response.timestamp < hi)
    for column, value in (
        (Request.model, filters.model), (Request.provider, filters.provider),
        (Request.stream, filters.stream), (Request.session_id, filters.session_id),
        (Request.path, CLIENT_PATHS.get(filters.endpoint or "")),
    ):
        if value is not None:
            where.append(column == value)
    if filters.tag is not None:
        where.append(tag_matches(filters.tag))
    if filters.key is not None:
        where.append(key_matches(filters.key))
    return where


def _keyed(key: sa.ColumnElement | None, *columns: sa.ColumnElement) -> tuple[list, list]:
    """Select list and GROUP BY list, with the key first (a NULL constant, ungrouped, when none)."""
    if key is None:
        return [sa.null().label("key"), *columns], list(columns)
    return [key.label("key"), *columns], [key, *columns]


def cell_sums() -> list[sa.ColumnElement]:
    """A cell's counts and sums over the responses it groups, labelled and ordered as ``SUMS``."""
    return [
        sa.func.count().label("requests"),
        _count_if(Response.status == "error").label("errors"),
        _count_if(Response.status == "incomplete").label("incomplete"),
        _sum(Response.prompt_tokens).label("prompt_tokens"),
        _sum(Response.completion_tokens).label("completion_tokens"),
        _sum(Response.total_tokens).label("total_tokens"),
        _count_if(Response.usage_estimated.is_(True)).label("usage_estimated"),
        sa.func.count(Response.duration_ms).label("durations"),
        _sum(Response.duration_ms).label("duration_ms_sum"),
    ]


def live_cells(filters: UsageFilters, *, group_by: str | None, lo: int | None, hi: int | None) -> sa.Select:
    columns, group = _keyed(live_key(group_by), Request.provider, Request.model)
    return (
        sa.select(
            *columns, *cell_sums(),
        )
        .select_from(Response).join(Request, Request.id == Response.request_id)
        .where(*_live_where(filters, lo, hi)).group_by(*group)
    )


def live_histogram(
    filters: UsageFilters, *, group_by: str | None, lo: int | None, hi: int | None, kind: str
) -> sa.Select:
    value = Response.duration_ms if kind == "duration" else Response.ttft_ms
    slot = bucket(value)
    columns, group = _keyed(live_key(group_by), slot.label("bucket"))
    group = [*group[:-1], slot] if group else group
    query = sa.select(*columns, sa.func.count().label("count")).select_from(Response)
    if any(
        v is not None for v in (filters.model, filters.provider, filters.stream, filters.session_id, filters.endpoint,
                                filters.tag, filters.key)
    ) or group_by in _ON_REQUESTS or (group_by or "").startswith("tag:"):
        query = query.join(Request, Request.id == Response.request_id)
    return query.where(value.is_not(None), *_live_where(filters, lo, hi)).group_by(*group)


def _rollup_where(grain, table, filters: UsageFilters, first: int, end: int) -> list[sa.ColumnElement]:
    where = [grain.at(table) >= first, grain.at(table) < end]
    for column, value in (
        (table.model, filters.model), (table.provider, filters.provider), (table.stream, filters.stream),
    ):
        if value is not None:
            where.append(column == value)
    return where


def _rollup_key(grain, table, group_by: str | None) -> sa.ColumnElement | None:
    """A rollup row's group: a time grouping as wide as the grain or wider, or a dimension."""
    at = grain.at(table)
    if group_by == "day" and grain.width < DAY_MS:
        return (at // const(DAY_MS)) * const(DAY_MS)
    return {None: None, "day": at, "hour": at, "model": getattr(table, "model", None),
            "provider": getattr(table, "provider", None)}[group_by]


def rollup_cells(filters: UsageFilters, *, group_by: str | None, first: int, end: int, grain) -> sa.Select:
    """Cells of the periods ``[first, end)`` of a grain (``rollups.DAYS`` or ``rollups.HOURS``)."""
    table = grain.cells
    columns, group = _keyed(_rollup_key(grain, table, group_by), table.provider, table.model)
    sums = [
        _sum(getattr(table, name)).label(name)
        for name in SUMS
    ]
    return sa.select(*columns, *sums).where(*_rollup_where(grain, table, filters, first, end)).group_by(*group)


def rollup_histogram(
    filters: UsageFilters, *, group_by: str | None, first: int, end: int, kind: str, grain
) -> sa.Select:
    unfiltered = all(value is None for value in (filters.model, filters.provider, filters.stream))
    if unfiltered and group_by in (None, "day", "hour"):
        # Already merged over the period's models: read in key order, nothing to group (rows of one
        # key and bucket from several hours add up where the percentiles are picked).
        merged = grain.merged
        key = _rollup_key(grain, merged, group_by)
        return sa.select(
            (sa.null() if key is None else key).label("key"), merged.bucket, merged.count.label("count")
        ).where(merged.kind == kind, grain.at(merged) >= first, grain.at(merged) < end)
    table = grain.by_model
    columns, group = _keyed(_rollup_key(grain, table, group_by), table.bucket)
    return (
        sa.select(*columns, _sum(table.count).label("count"))
        .where(table.kind == kind, *_rollup_where(grain, table, filters, first, end))
        .group_by(*group)
    )


@dataclass(frozen=True, slots=True)
class Percentiles:
    total: int  # 1 for the row over all keys
    key: object
    points: dict[int, int | None]

    def __getattr__(self, name: str) -> int | None:  # row.p50, like the SQL rows they replace
        if name.startswith("p") and name[1:].isdigit():
            return self.points.get(int(name[1:]))
        raise AttributeError(name)


def percentiles(
    db, histograms: list[sa.Select], points: tuple[int, ...], *, grouped: bool = True
) -> list[Percentiles]:
    """Nearest-rank percentiles of merged histograms, per key and over all keys.

    Each percentile is the lowest bucket whose running count reaches ``ceil(N * n / 100)``, i.e.
    ``seen * 100 >= N * n``; a (key, bucket) found in several histograms (rollups and live spans)
    counts once per row. The rows (a few thousand for a month by day) are merged here: SQLite's
    window functions took 60-80 ms over them, reading them takes a fraction of that.
    """
    merged = sa.union_all(*histograms) if len(histograms) > 1 else histograms[0]
    if not grouped:  # summed per bucket in SQL: ungrouped, a month of rollups is a row per day and bucket
        union = merged.subquery("h")
        merged = sa.select(sa.null(), union.c.bucket, sa.func.sum(union.c["count"])).group_by(union.c.bucket)
    by_key: dict[object, dict[int, int]] = {}
    overall: dict[int, int] = {}
    # A Core result (not the ORM session's): its rows cost a fraction of ORM rows, thousands here.
    for key, slot, count in db.connection().execute(merged).all():
        counts = by_key.setdefault(key, {})
        counts[slot] = counts.get(slot, 0) + int(count)
        overall[slot] = overall.get(slot, 0) + int(count)
    rows = [Percentiles(total=0, key=key, points=_picks(counts, points)) for key, counts in by_key.items()]
    if overall:
        rows.append(Percentiles(total=1, key=None, points=_picks(overall, points)))
    return rows


def _picks(counts: dict[int, int], points: tuple[int, ...]) -> dict[int, int | None]:
    n = sum(counts.values())
    picks: dict[int, int | None] = dict.fromkeys(points)
    seen = 0
    for slot in sorted(counts):
        seen += counts[slot]
        for point in points:
            if picks[point] is None and seen * 100 >= point * n:
                picks[point] = slot
    return picks

"""Usage statistics, computed in SQL: per session, over all responses, and grouped usage reports."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from app.config import ModelPrice
from app.models import GatewayKey, Response, now_ms
from app.models.usage import SUMS
from app.providers.base import CLIENT_PATHS
from app.services.history import usage_sources, usage_sql
from app.services.history.sessions import get_session, in_session
from app.services.history.usage_sql import UsageFilters, bucket_width

GROUPINGS = ("model", "provider", "session", "endpoint", "day", "hour", "key")  # and tag:NAME
_ENDPOINT_OF_PATH = {path: endpoint for endpoint, path in CLIENT_PATHS.items()}  # groups by endpoint: "chat", ...
_LATENCY_POINTS = (50, 95, 99)
_TTFT_POINTS = (50,)
_TIME_GROUPS = ("day", "hour", "minute")  # minute: for the dashboard, not the API
# The API and the dashboard trust rollups their process found matching the history less than this
# long ago: the check counts every response of the range (0.6 s for 30 days of 10M calls on PostgreSQL).
RECHECK_S = 60


def _no_points(points: tuple[int, ...]) -> dict[str, int | None]:
    return {f"p{p}": None for p in points}


@dataclass(slots=True)
class Metrics:
    """What a usage report says about a set of responses."""

    requests: int = 0
    errors: int = 0
    incomplete: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    usage_estimated: int = 0
    durations: int = 0
    duration_ms_sum: int = 0
    estimated_cost_usd: float = 0.0
    unpriced_models: set[str] = field(default_factory=set)
    latency_ms: dict[str, int | None] = field(default_factory=lambda: _no_points(_LATENCY_POINTS))
    ttft_ms: dict[str, int | None] = field(default_factory=lambda: _no_points(_TTFT_POINTS))

    @property
    def success_rate(self) -> float | None:
        ok = self.requests - self.errors - self.incomplete
        return round(ok / self.requests, 4) if self.requests else None

    @property
    def avg_duration_ms(self) -> float | None:
        return round(self.duration_ms_sum / self.durations, 1) if self.durations else None

    @property
    def cost_complete(self) -> bool:
        return not self.unpriced_models


@dataclass(slots=True)
class UsageGroup(Metrics):
    """The metrics of one group: a model, provider, session, UTC day or UTC hour."""

    key: str = ""
    start_ms: int | None = None  # for day and hour groups
    tokens_by_model: dict[str, int] = field(default_factory=dict)  # "provider/model" -> total tokens


@dataclass(frozen=True, slots=True)
class UsageReport:
    group_by: str | None
    start_ms: int | None
    end_ms: int | None
    totals: Metrics
    groups: list[UsageGroup]
    has_more: bool
    unpriced_models: list[str]
    # The same cells by model and by provider, busiest first: a report by time also gives its top lists.
    by_model: list[UsageGroup] = field(default_factory=list)
    by_provider: list[UsageGroup] = field(default_factory=list)


def bucket_value(bucket: int | None) -> int | None:
    """What a latency bucket reports: its middle (the value itself under 100 ms)."""
    return None if bucket is None else int(bucket) + bucket_width(int(bucket)) // 2


def price_of(prices: Mapping[str, ModelPrice], *, provider: str, model: str) -> ModelPrice | None:
    return prices.get(f"{provider}/{model}") or prices.get(model)


# Session and response statistics (the original gateway's shapes)

def _usage_columns() -> list[sa.ColumnElement]:
    def total(column: sa.ColumnElement) -> sa.ColumnElement:
        return sa.func.coalesce(sa.func.sum(column), 0)

    return [
        sa.func.count().label("total_responses"),
        total(Response.prompt_tokens).label("total_prompt_tokens"),
        total(Response.completion_tokens).label("total_completion_tokens"),
        total(Response.total_tokens).label("total_tokens"),
        sa.func.avg(Response.duration_ms).label("avg_duration_ms"),
        total(sa.case((Response.status == "ok", 1), else_=0)).label("ok"),
        total(sa.case((Response.status == "error", 1), else_=0)).label("error_count"),
    ]


def _session_usage(db: Session, session_id: str) -> dict[str, Any]:
    """The usage of one session's responses, in SQL."""
    return _usage(db.execute(sa.select(*_usage_columns()).where(in_session(session_id))).one())


def _usage(row: Any) -> dict[str, Any]:
    n = int(row.total_responses)
    return {
        "total_responses": n,
        "total_prompt_tokens": int(row.total_prompt_tokens),
        "total_completion_tokens": int(row.total_completion_tokens),
        "total_tokens": int(row.total_tokens),
        "avg_duration_ms": None if row.avg_duration_ms is None else round(float(row.avg_duration_ms), 1),
        "error_count": int(row.error_count),
        "success_rate": round(int(row.ok) / n, 4) if n else None,
    }


def session_stats(db: Session, session_id: str) -> dict[str, Any]:
    """``{session_id, message_count, created_at, last_accessed, usage: {...}}``"""
    session = get_session(db, session_id).session
    return {
        "session_id": session.id, "message_count": session.message_count,
        "created_at": session.created_at, "last_accessed": session.last_accessed,
        "usage": _session_usage(db, session_id),
    }


def response_stats(db: Session, *, session_id: str | None = None) -> dict[str, Any]:
    """``{session_id: "all" | ID, statistics: {...}}`` over every response, or one session's.

    Over every response it reads the daily rollups (the original gateway's monitor polls this).
    """
    if session_id is not None:
        return {"session_id": session_id, "statistics": _session_usage(db, session_id)}
    totals = usage_report(db, filters=UsageFilters(), prices={}, latency=False).totals
    return {"session_id": "all", "statistics": {
        "total_responses": totals.requests, "total_prompt_tokens": totals.prompt_tokens,
        "total_completion_tokens": totals.completion_tokens, "total_tokens": totals.total_tokens,
        "avg_duration_ms": totals.avg_duration_ms, "error_count": totals.errors,
        "success_rate": totals.success_rate,
    }}


# Usage reports

def usage_report(
    db: Session,
    *,
    filters: UsageFilters,
    group_by: str | None = None,
    prices: Mapping[str, ModelPrice],
    limit: int = 100,
    now: int | None = None,
    latency: bool = True,
    recheck_s: float = 0,
) -> UsageReport:
    """Totals and groups over the responses that match; whole past days and hours come from the rollups.

    Groups are newest first for ``day``/``hour``, busiest first otherwise; at most ``limit``.
    ``recheck_s``: trust rollups this process checked against the history that recently (the
    dashboard's refreshes); 0, the default, checks every time.
    """
    now = now_ms() if now is None else now
    cells, histograms = usage_sources.gather(db, filters, group_by=group_by, now=now, recheck_s=recheck_s)
    totals, groups, dimensions = _fold(cells, prices)
    if latency and histograms["duration"]:
        for kind, points in (("duration", _LATENCY_POINTS), ("ttft", _TTFT_POINTS)):
            for row in usage_sql.percentiles(db, histograms[kind], points, grouped=group_by is not None):
                metrics = totals if row.total else groups.get(row.key)
                if metrics is not None:
                    target = metrics.latency_ms if kind == "duration" else metrics.ttft_ms
                    target.update({f"p{p}": bucket_value(getattr(row, f"p{p}")) for p in points})
    ordered = _order(groups, group_by)
    if group_by == "key":
        _name_keys(db, ordered)
    return UsageReport(
        group_by=group_by, start_ms=filters.start_ms, end_ms=filters.end_ms, totals=totals,
        groups=ordered[:limit] if group_by else [], has_more=len(ordered) > limit,
        unpriced_models=sorted(totals.unpriced_models),
        by_model=_order(dimensions["model"], "model"), by_provider=_order(dimensions["provider"], "provider"),
    )


def _fold(
    cells: Iterable[Any], prices: Mapping[str, ModelPrice]
) -> tuple[Metrics, dict[Any, UsageGroup], dict[str, dict[str, UsageGroup]]]:
    """Add up the cells per key, per model, per provider and overall, pricing each model's tokens."""
    totals = Metrics()
    groups: dict[Any, UsageGroup] = {}
    dimensions: dict[str, dict[str, UsageGroup]] = {"model": {}, "provider": {}}
    for cell in cells:
        price = price_of(prices, provider=cell.provider, model=cell.model)
        group = groups.setdefault(cell.key, UsageGroup())
        name = f"{cell.provider}/{cell.model}"
        group.tokens_by_model[name] = group.tokens_by_model.get(name, 0) + int(cell.total_tokens)
        by_model = dimensions["model"].setdefault(cell.model, UsageGroup())
        by_provider = dimensions["provider"].setdefault(cell.provider, UsageGroup())
        for metrics in (totals, group, by_model, by_provider):
            for name in SUMS:
                setattr(metrics, name, getattr(metrics, name) + int(getattr(cell, name)))
            if price is None:
                metrics.unpriced_models.add(f"{cell.provider}/{cell.model}")
            else:
                metrics.estimated_cost_usd += (
                    int(cell.prompt_tokens) * price.prompt + int(cell.completion_tokens) * price.completion
                ) / 1_000_000
    return totals, groups, dimensions


def _name_keys(db: Session, groups: list[UsageGroup]) -> None:
    """Groups by key are shown by the key's name ("" for calls without a key)."""
    names = dict(db.execute(sa.select(GatewayKey.id, GatewayKey.name)).all())
    for group in groups:
        group.key = names.get(int(group.key), f"#{group.key}") if group.key.isdigit() else ""


def _order(groups: dict[Any, UsageGroup], group_by: str | None) -> list[UsageGroup]:
    if group_by is None:
        return []
    if group_by in _TIME_GROUPS:
        ordered = sorted(groups.items(), key=lambda item: int(item[0]), reverse=True)
        for start, group in ordered:
            group.key, group.start_ms = _time_key(int(start), group_by), int(start)
    else:
        ordered = sorted(groups.items(), key=lambda item: (-item[1].requests, str(item[0])))
        for key, group in ordered:
            group.key = "" if key is None else (
                _ENDPOINT_OF_PATH.get(key, str(key)) if group_by == "endpoint" else str(key))
    return [group for _, group in ordered]


def _time_key(start_ms: int, group_by: str) -> str:
    moment = datetime.fromtimestamp(start_ms / 1000, tz=UTC)
    return moment.strftime({"day": "%Y-%m-%d", "hour": "%Y-%m-%dT%H:00Z", "minute": "%Y-%m-%dT%H:%MZ"}[group_by])


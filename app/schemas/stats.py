"""Query arguments and answers of the statistics endpoints."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, fields, post_load, validate

from app.providers.base import ENDPOINTS
from app.schemas.common import Boolean, DateRangeMixin, FilterText, Integer
from app.services.history.stats import GROUPINGS
from app.services.history.usage_sql import UsageFilters
from app.services.keys.store import NAME_PATTERN as KEY_NAME_PATTERN
from app.services.keys.tags import FILTER_PATTERN as TAG_FILTER
from app.services.keys.tags import parse_filter

GROUP_BY_PATTERN = r"^(?:{}|tag:[a-z0-9][a-z0-9_.-]{{0,31}})$".format("|".join(GROUPINGS))
KEY_NAME = KEY_NAME_PATTERN.pattern


class ResponseStatsArgs(Schema):
    session_id = FilterText(metadata={"description": "Only this session's responses."})


class UsageArgs(DateRangeMixin):
    group_by = fields.String(
        validate=validate.Regexp(GROUP_BY_PATTERN, error=f"Must be one of: {', '.join(GROUPINGS)}, or tag:NAME."),
        metadata={"description": "A grouping, or tag:NAME (by the value of that tag; \"\" for calls without it)."},
    )
    tag = fields.String(validate=validate.Regexp(TAG_FILTER), metadata={
        "error_code": "invalid_tag", "description": "name:value: only calls carrying that tag."})
    key = fields.String(validate=validate.Regexp(KEY_NAME), metadata={
        "error_code": "invalid_key", "description": "Only calls made with the gateway key of this name."})
    model = FilterText()
    provider = FilterText()
    stream = Boolean()
    session_id = FilterText()
    endpoint = fields.String(validate=validate.OneOf(ENDPOINTS))
    limit = Integer(
        load_default=100, validate=validate.Range(min=1, max=1000),
        metadata={"error_code": "invalid_limit", "description": "At most this many groups."},
    )

    @post_load
    def _filters(self, data: dict[str, Any], **_: Any) -> dict[str, Any]:
        start, end = data.pop("start_date", None), data.pop("end_date", None)
        group_by, limit = data.pop("group_by", None), data.pop("limit")
        if "tag" in data:
            data["tag"] = parse_filter(data["tag"])
        filters = UsageFilters(start_ms=start, end_ms=end, **data)
        return {"group_by": group_by, "limit": limit, "filters": filters}


class UsageSummarySchema(Schema):
    total_responses = fields.Integer(required=True)
    total_prompt_tokens = fields.Integer(required=True)
    total_completion_tokens = fields.Integer(required=True)
    total_tokens = fields.Integer(required=True)
    avg_duration_ms = fields.Float(required=True, allow_none=True)
    error_count = fields.Integer(required=True)
    success_rate = fields.Float(required=True, allow_none=True)


class SessionStatsSchema(Schema):
    session_id = fields.String(required=True)
    message_count = fields.Integer(required=True)
    created_at = fields.Integer(required=True)
    last_accessed = fields.Integer(required=True)
    usage = fields.Nested(UsageSummarySchema, required=True)


class ResponseStatsSchema(Schema):
    session_id = fields.String(required=True, metadata={"description": '"all", or the session asked for.'})
    statistics = fields.Nested(UsageSummarySchema, required=True)


class LatencySchema(Schema):
    p50 = fields.Integer(required=True, allow_none=True)
    p95 = fields.Integer(required=True, allow_none=True)
    p99 = fields.Integer(required=True, allow_none=True)


class TtftSchema(Schema):
    p50 = fields.Integer(required=True, allow_none=True)


class MetricsSchema(Schema):
    requests = fields.Integer(required=True)
    errors = fields.Integer(required=True)
    incomplete = fields.Integer(required=True)
    success_rate = fields.Float(required=True, allow_none=True)
    prompt_tokens = fields.Integer(required=True)
    completion_tokens = fields.Integer(required=True)
    total_tokens = fields.Integer(required=True)
    usage_estimated = fields.Integer(
        required=True, metadata={"description": "Responses whose token counts were estimated."}
    )
    avg_duration_ms = fields.Float(required=True, allow_none=True)
    latency_ms = fields.Nested(LatencySchema, required=True)
    ttft_ms = fields.Nested(TtftSchema, required=True, metadata={"description": "Streams only."})
    estimated_cost_usd = fields.Function(
        lambda metrics: round(metrics.estimated_cost_usd, 6), required=True, metadata={"type": "number"}
    )
    cost_complete = fields.Boolean(
        required=True, metadata={"description": "false: some models have no price."}
    )
    unpriced_models = fields.Function(
        lambda metrics: sorted(metrics.unpriced_models), required=True,
        metadata={"type": "array", "items": {"type": "string"}},
    )


class UsageGroupSchema(MetricsSchema):
    key = fields.String(required=True)
    start_ms = fields.Integer(required=True, allow_none=True)


class UsageReportSchema(Schema):
    object = fields.Constant("usage", dump_only=True)
    group_by = fields.String(required=True, allow_none=True)
    start_date = fields.Integer(attribute="start_ms", required=True, allow_none=True)
    end_date = fields.Integer(attribute="end_ms", required=True, allow_none=True)
    currency = fields.Constant("USD", dump_only=True)
    totals = fields.Nested(MetricsSchema, required=True)
    data = fields.List(fields.Nested(UsageGroupSchema), attribute="groups", required=True)
    has_more = fields.Boolean(required=True)
    unpriced_models = fields.List(fields.String(), required=True)

"""Query arguments and records of the sessions, requests and responses endpoints."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from marshmallow import Schema, ValidationError, fields, pre_dump, validate

from app.models import RESPONSE_STATUSES
from app.providers.base import ENDPOINTS
from app.schemas.common import (
    MAX_INT32,
    Boolean,
    CursorField,
    DateRangeMixin,
    FilterText,
    Integer,
    ListSchema,
    PageArgsSchema,
    ParsedText,
)
from app.services.history.paging import PageRequest
from app.services.history.records import RECORD_ID_PATTERN, Filters, parse_record_id
from app.services.history.sessions import SessionDetail
from app.services.keys.store import NAME_PATTERN as KEY_NAME_PATTERN
from app.services.keys.tags import FILTER_PATTERN as TAG_FILTER
from app.services.keys.tags import parse_filter
from app.services.search import query as search_query

KEY_NAME = KEY_NAME_PATTERN.pattern

# Query arguments


class SessionListArgs(PageArgsSchema):
    after = CursorField(kind="sessions")


class ConversationArgs(PageArgsSchema):
    default_order = "asc"
    after = CursorField(kind="conversation")


class RecordIdField(ParsedText):
    """An integer id or a UUID."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(
            validate=validate.Regexp(f"^{RECORD_ID_PATTERN}$"),
            metadata={"error_code": "invalid_id", "description": "An integer id or a UUID."},
            **kwargs,
        )

    def parse(self, text: str) -> int | str:
        try:
            return parse_record_id(text)
        except ValueError:
            raise ValidationError("Must be an integer id or a UUID.") from None


class SearchField(ParsedText):
    """A content search: words (all must appear) and "quoted phrases"."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(
            validate=[validate.Length(min=1, max=search_query.MAX_QUERY_CHARS), validate.Regexp(r"^[^\x00]+$")],
            metadata={"error_code": "invalid_search", "description": (
                "Content search in the messages and answer: every word must appear (in any message); "
                "\"quotes\" for an exact phrase. Case-insensitive, any language."
            )},
            **kwargs,
        )

    def parse(self, text: str) -> search_query.SearchQuery:
        try:
            return search_query.parse(text)
        except ValueError as exc:
            raise ValidationError(f"Not a search: {exc}.") from None


class _FilterArgs(PageArgsSchema, DateRangeMixin):
    session_id = FilterText()
    endpoint = fields.String(validate=validate.OneOf(ENDPOINTS), metadata={
        "description": "The OpenAI endpoint called: chat (/v1/chat/completions), embeddings, completions, responses."})
    model = FilterText()
    provider = FilterText()
    stream = Boolean()
    status = fields.String(validate=validate.OneOf(RESPONSE_STATUSES))
    finish_reason = FilterText()
    min_duration_ms = Integer(
        validate=validate.Range(min=0, max=MAX_INT32), metadata={"error_code": "invalid_min_duration"}
    )
    include_bodies = Boolean(
        load_default=False, metadata={"description": "Include the JSON bodies in each row."}
    )
    q = SearchField()
    tag = fields.String(validate=validate.Regexp(TAG_FILTER), metadata={
        "error_code": "invalid_tag", "description": "name:value, e.g. team:search: calls carrying that tag."})
    key = fields.String(validate=validate.Regexp(KEY_NAME), metadata={
        "error_code": "invalid_key", "description": "Calls made with the gateway key of this name."})

    def make(self, data: dict[str, Any], page: PageRequest) -> dict[str, Any]:
        if "tag" in data:
            data["tag"] = parse_filter(data["tag"])
        bodies = data.pop("include_bodies")
        start, end = data.pop("start_date", None), data.pop("end_date", None)
        search = data.pop("q", None)
        return {
            "page": page, "bodies": bodies, "filters": Filters(start_ms=start, end_ms=end, search=search, **data),
        }


class RequestListArgs(_FilterArgs):
    after = CursorField(kind="requests")


class ResponseListArgs(_FilterArgs):
    after = CursorField(kind="responses")
    request_id = RecordIdField()
    has_error = Boolean(metadata={"description": "true: status is error or incomplete."})


# Records


class RecordSchema(Schema):
    """Dumps the columns a query loaded; deferred ones (the bodies of a list) are left out."""

    @pre_dump
    def _loaded(self, record: Any, **_: Any) -> Any:
        state = sa.inspect(record, raiseerr=False)
        return record if state is None else state.dict  # loaded attributes only


class SessionSchema(RecordSchema):
    id = fields.String(required=True)
    chat_id = fields.String(required=True, allow_none=True)
    parent_id = fields.String(required=True, allow_none=True)
    first_user_message = fields.String(required=True, allow_none=True)
    message_count = fields.Integer(required=True)
    created_at = fields.Integer(required=True)
    last_accessed = fields.Integer(required=True)
    expires_at = fields.Integer(required=True)


class SessionDetailSchema(SessionSchema):
    request_count = fields.Integer(required=True)

    @pre_dump
    def _flatten(self, detail: SessionDetail, **_: Any) -> dict[str, Any]:
        session = detail.session
        names = SessionSchema._declared_fields
        return {**{name: getattr(session, name) for name in names}, "request_count": detail.request_count}


class ResponseSummarySchema(RecordSchema):
    id = fields.Integer(required=True)
    response_id = fields.String(required=True)
    status = fields.String(required=True, validate=validate.OneOf(RESPONSE_STATUSES))
    finish_reason = fields.String(required=True, allow_none=True)
    total_tokens = fields.Integer(required=True, allow_none=True)
    duration_ms = fields.Integer(required=True, allow_none=True)
    error = fields.String(required=True, allow_none=True)


class ResponseSchema(ResponseSummarySchema):
    request_id = fields.Integer(required=True)
    session_id = fields.String(required=True)
    timestamp = fields.Integer(required=True)
    provider_response = fields.Raw(allow_none=True, metadata={"description": "JSON, or text if damaged."})
    openai_response = fields.Raw(allow_none=True, metadata={"description": "JSON, or text if damaged."})
    parent_id = fields.String(required=True, allow_none=True)
    prompt_tokens = fields.Integer(required=True, allow_none=True)
    completion_tokens = fields.Integer(required=True, allow_none=True)
    usage_estimated = fields.Boolean(required=True)
    status_code = fields.Integer(required=True, allow_none=True)
    ttft_ms = fields.Integer(required=True, allow_none=True)
    client_disconnected = fields.Boolean(required=True)
    created_at = fields.Integer(required=True)


class RequestSchema(RecordSchema):
    id = fields.Integer(required=True)
    session_id = fields.String(required=True)
    request_id = fields.String(required=True)
    timestamp = fields.Integer(required=True)
    method = fields.String(required=True)
    path = fields.String(required=True)
    provider = fields.String(required=True)
    model = fields.String(required=True)
    stream = fields.Boolean(required=True)
    created_at = fields.Integer(required=True)
    key_id = fields.Integer(allow_none=True, metadata={"description": "The gateway key's id; null: none."})
    tags = fields.Dict(keys=fields.String(), values=fields.String(), allow_none=True)
    trace_id = fields.String(allow_none=True, metadata={
        "description": "The call's OpenTelemetry trace id (32 hex digits); null when tracing was off."})
    openai_request = fields.Raw(allow_none=True, metadata={"description": "JSON, or text if damaged."})
    provider_request = fields.Raw(allow_none=True, metadata={"description": "JSON, or text if damaged."})
    response_summary = fields.Nested(
        ResponseSummarySchema, attribute="response", required=True, allow_none=True,
        metadata={"description": "null while the call is still in flight."},
    )


class ConversationItemSchema(RequestSchema):
    class Meta:
        exclude = ("response_summary",)

    response = fields.Nested(ResponseSchema, required=True, allow_none=True)


class SessionListSchema(ListSchema):
    data = fields.List(fields.Nested(SessionSchema), attribute="items", required=True)


class RequestListSchema(ListSchema):
    data = fields.List(fields.Nested(RequestSchema), attribute="items", required=True)


class ResponseListSchema(ListSchema):
    data = fields.List(fields.Nested(ResponseSchema), attribute="items", required=True)


class ConversationSchema(ListSchema):
    data = fields.List(fields.Nested(ConversationItemSchema), attribute="items", required=True)


class SessionDeletedSchema(Schema):
    deleted = fields.Boolean(required=True)
    session_id = fields.String(required=True)


class SessionsPurgedSchema(Schema):
    deleted = fields.Integer(
        required=True, metadata={"description": "Expired sessions without history removed."}
    )
    cleared = fields.Integer(
        required=True,
        metadata={"description": "Expired sessions with history kept, their upstream continuity cleared."},
    )


class RequestDeletedSchema(Schema):
    deleted = fields.Boolean(required=True)
    id = fields.Integer(required=True)
    request_id = fields.String(required=True)

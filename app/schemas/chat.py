"""The chat completion request, validated at the edge; everything else passes through."""

from __future__ import annotations

import json
from typing import Any

from marshmallow import INCLUDE, Schema, ValidationError, fields, validate, validates

from app.errors import InvalidRequest
from app.schemas.validation import first_error

ROLES = ("system", "developer", "user", "assistant", "tool", "function")


class MessageSchema(Schema):
    class Meta:
        unknown = INCLUDE

    role = fields.String(required=True, validate=validate.OneOf(ROLES))
    content = fields.Raw(allow_none=True)

    @validates("content")
    def _content(self, value: Any, **_: Any) -> None:
        if value is not None and not isinstance(value, str | list):
            raise ValidationError("Must be a string, a list of content parts, or null.")


class ChatCompletionRequestSchema(Schema):
    class Meta:
        unknown = INCLUDE

    model = fields.String(validate=validate.Length(min=1, max=255))
    messages = fields.List(fields.Nested(MessageSchema), required=True, validate=validate.Length(min=1))
    stream = fields.Boolean(truthy={True}, falsy={False}, allow_none=True)
    stream_options = fields.Dict(allow_none=True)
    user = fields.String()
    tools = fields.List(fields.Dict(), allow_none=True)


_schema = ChatCompletionRequestSchema()


def parse_chat_request(raw: bytes) -> dict[str, Any]:
    """The request body as the client sent it, once it is known to be a valid chat request."""
    return parse_body(raw, _schema, required="messages")


def parse_body(raw: bytes, schema: Schema, *, required: str) -> dict[str, Any]:
    """A JSON object body checked by ``schema``; a 400 names the first bad field (``missing_<required>``)."""
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise InvalidRequest(
            f"The request body is not valid JSON: {exc}", code="invalid_json"
        ) from None
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.", code="invalid_json")
    errors = schema.validate(body)
    if errors:
        param, message = first_error(errors)
        code = f"missing_{required}" if param == required and required not in body else "invalid_value"
        raise InvalidRequest(f"Invalid '{param}': {message}", param=param, code=code)
    return body

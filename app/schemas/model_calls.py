"""The bodies of /v1/embeddings, /v1/completions and /v1/responses, validated at the edge.

Only what the gateway relies on is checked (a 400 names the field); everything else passes
through to the provider as the client sent it.
"""

from __future__ import annotations

from typing import Any

from marshmallow import INCLUDE, Schema, ValidationError, fields, validate, validates

from app.schemas.chat import parse_body


def _text_or_tokens(value: Any, *, field: str) -> None:
    """A string, a list of strings, a list of token ids, or a list of such lists; never empty."""
    if isinstance(value, str):
        if field == "input" and not value:
            raise ValidationError("Must not be empty.")
        return
    if not isinstance(value, list) or not value:
        raise ValidationError("Must be a string or a non-empty list of strings or token ids.")
    if all(isinstance(item, str) for item in value) or all(
        isinstance(item, int) and not isinstance(item, bool) for item in value
    ):
        return
    if all(isinstance(item, list) and item and all(isinstance(t, int) for t in item) for item in value):
        return
    raise ValidationError("Must be a string or a non-empty list of strings or token ids.")


class EmbeddingsRequestSchema(Schema):
    class Meta:
        unknown = INCLUDE

    model = fields.String(validate=validate.Length(min=1, max=255))
    input = fields.Raw(required=True)
    encoding_format = fields.String(validate=validate.OneOf(("float", "base64")))
    dimensions = fields.Integer(strict=True, validate=validate.Range(min=1))
    user = fields.String()
    stream = fields.Boolean(truthy={True}, falsy={False}, allow_none=True,
                            validate=validate.Equal(False, error="Embeddings are not streamed."))

    @validates("input")
    def _input(self, value: Any, **_: Any) -> None:
        _text_or_tokens(value, field="input")


class CompletionsRequestSchema(Schema):
    class Meta:
        unknown = INCLUDE

    model = fields.String(validate=validate.Length(min=1, max=255))
    prompt = fields.Raw(required=True)
    stream = fields.Boolean(truthy={True}, falsy={False}, allow_none=True)
    stream_options = fields.Dict(allow_none=True)
    max_tokens = fields.Integer(strict=True, allow_none=True, validate=validate.Range(min=0))
    n = fields.Integer(strict=True, allow_none=True, validate=validate.Range(min=1))
    user = fields.String()

    @validates("prompt")
    def _prompt(self, value: Any, **_: Any) -> None:
        _text_or_tokens(value, field="prompt")


class ResponsesRequestSchema(Schema):
    class Meta:
        unknown = INCLUDE

    model = fields.String(validate=validate.Length(min=1, max=255))
    input = fields.Raw(required=True)
    instructions = fields.String(allow_none=True)
    previous_response_id = fields.String(allow_none=True, validate=validate.Regexp(
        r"^resp_[A-Za-z0-9_-]{1,200}$", error="Must be the id of an earlier response (resp_...)."))
    tools = fields.List(fields.Dict(), allow_none=True)
    stream = fields.Boolean(truthy={True}, falsy={False}, allow_none=True)
    max_output_tokens = fields.Integer(strict=True, allow_none=True, validate=validate.Range(min=1))
    user = fields.String()

    @validates("input")
    def _input(self, value: Any, **_: Any) -> None:
        if isinstance(value, str):
            return
        if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
            raise ValidationError("Must be a string or a list of input items (objects).")


_embeddings, _completions, _responses = EmbeddingsRequestSchema(), CompletionsRequestSchema(), ResponsesRequestSchema()


def parse_embeddings_request(raw: bytes) -> dict[str, Any]:
    return parse_body(raw, _embeddings, required="input")


def parse_completions_request(raw: bytes) -> dict[str, Any]:
    return parse_body(raw, _completions, required="prompt")


def parse_responses_request(raw: bytes) -> dict[str, Any]:
    return parse_body(raw, _responses, required="input")

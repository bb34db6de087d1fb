"""Building blocks of the history API's schemas: errors, list envelopes, paging, filters.

Each query field may carry ``metadata["error_code"]``: the ``code`` a 400 answers with when
that parameter is invalid (``invalid_<name>`` otherwise).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from marshmallow import Schema, ValidationError, fields, post_load, validate, validates_schema

from app.services.history.paging import MAX_LIMIT, Cursor, PageRequest

# Ids, durations and offsets stay within a signed 32/64-bit column, whatever the client sends.
MAX_INT32 = 2**31 - 1
MAX_TIMESTAMP_MS = 99_999_999_999_999  # what 14 digits hold: year 5138
DATE_PATTERN = (
    r"^([0-9]{1,14}|[1-9][0-9]{3}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
    r"([T ]([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]{1,6})?)?"
    r"(Z|[+-]([01][0-9]|2[0-3]):?[0-5][0-9])?)?)$"
)
# No control characters: NUL cannot even be sent to PostgreSQL as text.
PRINTABLE_PATTERN = r"^[^\x00-\x1f\x7f]+$"
INTEGER_PATTERN = re.compile(r"-?[0-9]{1,19}")


class ErrorDetailSchema(Schema):
    message = fields.String(required=True)
    type = fields.String(required=True)
    param = fields.String(required=True, allow_none=True)
    code = fields.String(required=True, allow_none=True)


class ErrorSchema(Schema):
    """Every error, OpenAI's way: ``{"error": {message, type, param, code}}``."""

    error = fields.Nested(ErrorDetailSchema, required=True)


def error_code(field_name: str, schema: Schema | None) -> str:
    """The ``code`` for an invalid parameter, from the field's metadata."""
    field = schema.fields.get(field_name) if schema is not None else None
    if field is None:
        return "unknown_parameter"
    return field.metadata.get("error_code", f"invalid_{field_name}")


class FilterText(fields.String):
    """A text filter: 1 to 255 printable characters."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(
            validate=[validate.Length(min=1, max=255), validate.Regexp(PRINTABLE_PATTERN)], **kwargs
        )


class Integer(fields.Integer):
    """An integer written in ASCII digits, as OpenAPI means it (no "+5", " 5" or other scripts)."""

    def _validated(self, value: Any) -> int:
        if isinstance(value, str) and not INTEGER_PATTERN.fullmatch(value):
            raise self.make_error("invalid", input=value)
        return super()._validated(value)


class Boolean(fields.Boolean):
    """``true`` or ``false``, exactly."""

    truthy = {"true", True}
    falsy = {"false", False}


class ParsedText(fields.String):
    """Text parsed into something else: the validators (also what the docs show) check the text."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        text = super()._deserialize(value, attr, data, **kwargs)
        super()._validate(text)
        return self.parse(text)

    def _validate(self, value: Any) -> None:
        """Already done on the text."""

    def parse(self, text: str) -> Any:
        raise NotImplementedError


class Timestamp(ParsedText):
    """A point in time as milliseconds since the epoch or ISO 8601 (UTC unless an offset is given).

    The pattern documents (and enforces) the form; the few dates it lets through that do not
    exist (February 30th) are refused when parsed.
    """

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("metadata", {})
        kwargs["metadata"] = {
            "error_code": "invalid_date_range",
            "description": "Milliseconds since the epoch, or ISO 8601 (UTC unless an offset is given).",
            **kwargs["metadata"],
        }
        super().__init__(validate=validate.Regexp(DATE_PATTERN), **kwargs)

    def parse(self, text: str) -> int:
        if text.isdigit():
            millis = int(text)
        else:
            try:
                moment = datetime.fromisoformat(text.replace(" ", "T"))
            except ValueError:
                raise ValidationError("Not a valid date.") from None
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
            millis = int(moment.timestamp() * 1000)
        if millis > MAX_TIMESTAMP_MS:
            raise ValidationError("Too far in the future.")
        return millis


class CursorField(ParsedText):
    """An opaque keyset cursor, as a list's ``next_cursor`` gave it."""

    def __init__(self, *, kind: str, **kwargs: Any) -> None:
        self.kind = kind
        super().__init__(
            validate=validate.Length(min=1, max=512),
            metadata={"error_code": "invalid_cursor", "description": "The next_cursor of the previous page."},
            **kwargs,
        )

    def parse(self, text: str) -> Cursor:
        try:
            return Cursor.decode(text, kind=self.kind)
        except ValueError:
            raise ValidationError("Not a cursor of this list: pass next_cursor unchanged.") from None


class PageArgsSchema(Schema):
    """limit/offset/order, and ``after`` declared by each list; loads into ``args["page"]``."""

    default_order = "desc"

    limit = Integer(
        load_default=50, validate=validate.Range(min=1, max=MAX_LIMIT),
        metadata={"error_code": "invalid_limit"},
    )
    offset = Integer(
        load_default=0, validate=validate.Range(min=0, max=MAX_INT32),
        metadata={"error_code": "invalid_offset"},
    )
    order = fields.String(validate=validate.OneOf(("asc", "desc")), metadata={"error_code": "invalid_order"})

    @validates_schema
    def _cursor_or_offset(self, data: dict[str, Any], **_: Any) -> None:
        if data.get("after") is not None and data.get("offset"):
            raise ValidationError("Use either offset or after (a cursor), not both.", field_name="offset")

    @post_load
    def _page(self, data: dict[str, Any], **_: Any) -> dict[str, Any]:
        page = PageRequest(
            limit=data.pop("limit"), offset=data.pop("offset"), after=data.pop("after", None),
            descending=data.pop("order", self.default_order) == "desc",
        )
        return self.make(data, page)

    def make(self, data: dict[str, Any], page: PageRequest) -> dict[str, Any]:
        """What the view receives: ``page`` and, for lists that filter, ``filters``."""
        return {**data, "page": page}


class DateRangeMixin(Schema):
    start_date = Timestamp()
    end_date = Timestamp()

    @validates_schema
    def _range(self, data: dict[str, Any], **_: Any) -> None:
        start, end = data.get("start_date"), data.get("end_date")
        if start is not None and end is not None and start > end:
            raise ValidationError("start_date is after end_date.", field_name="start_date")


class ListSchema(Schema):
    """The list envelope; subclasses set ``data``."""

    object = fields.Constant("list", dump_only=True)
    data = fields.List(fields.Raw(), required=True)  # declared here to come second
    total = fields.Integer(required=True)
    limit = Integer(required=True)
    offset = Integer(required=True)
    has_more = fields.Boolean(required=True)
    next_cursor = fields.Function(
        lambda page: page.next_cursor.encode() if page.next_cursor else None,
        allow_none=True, required=True,
        metadata={"type": "string", "description": "Pass as `after` for the next page; null on the last."},
    )

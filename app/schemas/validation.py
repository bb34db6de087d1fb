"""Turning marshmallow's errors into the gateway's one 400 shape."""

from __future__ import annotations

import json
from typing import Any

from marshmallow import Schema, ValidationError

from app.errors import InvalidRequest

_MISSING = "Missing data for required field."
_UNKNOWN = "Unknown field."


def first_error(errors: Any, path: str = "") -> tuple[str, str]:
    """The first error's field path (``messages[0].role``) and message."""
    if isinstance(errors, dict):
        key, value = next(iter(errors.items()))
        key = str(key)
        if path and key.isdigit():
            return first_error(value, f"{path}[{key}]")
        return first_error(value, f"{path}.{key}" if path else key)
    if isinstance(errors, list) and errors:
        if isinstance(errors[0], str):
            return path, errors[0]
        return first_error(errors[0], path)
    return path, str(errors)


def json_object(raw: bytes) -> dict[str, Any]:
    """The request body, which must be a JSON object."""
    try:
        body = json.loads(raw or b"null")
    except ValueError as exc:
        raise InvalidRequest(f"The request body is not valid JSON: {exc}", code="invalid_json") from None
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.", code="invalid_json")
    return body


def load(schema: Schema, data: dict[str, Any], *, partial: bool = False) -> dict[str, Any]:
    """``schema.load`` that fails as one InvalidRequest naming the field."""
    try:
        return schema.load(data, partial=partial)
    except ValidationError as exc:
        param, message = first_error(exc.messages)
        code = {_MISSING: "missing_value", _UNKNOWN: "unknown_field"}.get(message, "invalid_value")
        raise InvalidRequest(f"Invalid '{param}': {message}", param=param, code=code) from None

"""Bodies and answers of the gateway keys API (/v1/keys)."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, fields, post_load, validate

from app.models.keys import BUDGET_PERIODS
from app.schemas.common import Integer
from app.services.keys.store import DEFAULT_GRACE_S, MAX_GRACE_S, MAX_PATTERNS, NAME_PATTERN, KeySpec
from app.services.keys.tags import MAX_TAGS, MAX_VALUE

TAG_NAME = r"^[a-z0-9][a-z0-9_.-]{0,31}$"


class KeyCreateArgs(Schema):
    name = fields.String(required=True, validate=validate.Regexp(NAME_PATTERN.pattern))
    budget_usd = fields.Float(allow_none=True, validate=validate.Range(min=0, max=1e12, max_inclusive=False),
                              metadata={"description": "Spend allowed per period (MODEL_PRICES); null: none."})
    period = fields.String(load_default="month", validate=validate.OneOf(BUDGET_PERIODS))
    rpm = Integer(allow_none=True, validate=validate.Range(min=1, max=2**31 - 1))
    tpm = Integer(allow_none=True, validate=validate.Range(min=1, max=2**31 - 1))
    models = fields.List(
        fields.String(validate=[validate.Length(min=1, max=255), validate.Regexp(r"^[\x20-\x7e]+$")]),
        load_default=list, validate=validate.Length(max=MAX_PATTERNS),
        metadata={"description": "Model patterns (fnmatch, e.g. mock/*); empty: every model."})
    tags = fields.Dict(
        keys=fields.String(validate=validate.Regexp(TAG_NAME)),
        values=fields.String(validate=validate.Regexp(rf"^[\x20-\x7e]{{1,{MAX_VALUE}}}$")),
        load_default=dict, validate=validate.Length(max=MAX_TAGS),
        metadata={"description": "Default tags of the key's calls."})

    @post_load
    def _spec(self, data: dict[str, Any], **_: Any) -> KeySpec:
        return KeySpec(name=data["name"], budget_usd=data.get("budget_usd"), period=data["period"],
                       rpm=data.get("rpm"), tpm=data.get("tpm"), models=tuple(data["models"]),
                       tags=data["tags"] or None)


class KeyRotateArgs(Schema):
    grace_seconds = Integer(load_default=DEFAULT_GRACE_S, validate=validate.Range(min=0, max=MAX_GRACE_S),
                            metadata={"description": "How long the replaced key keeps working."})


class KeySchema(Schema):
    name = fields.String(required=True)
    prefix = fields.String(required=True, metadata={"description": "The key's first characters, to tell keys apart."})
    status = fields.String(required=True, metadata={"description": "active or revoked"})
    budget_usd = fields.Float(required=True, allow_none=True)
    period = fields.String(required=True)
    rpm = fields.Integer(required=True, allow_none=True)
    tpm = fields.Integer(required=True, allow_none=True)
    models = fields.List(fields.String(), required=True)
    tags = fields.Dict(keys=fields.String(), values=fields.String(), required=True)
    spent_usd = fields.Float(required=True, metadata={"description": "Spent in the current period."})
    calls = fields.Integer(required=True, metadata={"description": "Calls finished in the current period."})
    period_start = fields.Integer(required=True)
    created_at = fields.Integer(required=True)
    rotated_at = fields.Integer(required=True, allow_none=True)
    revoked_at = fields.Integer(required=True, allow_none=True)
    previous_valid_until = fields.Integer(
        required=True, allow_none=True, metadata={"description": "The rotated-out key works until then (ms)."})


class KeyIssuedSchema(KeySchema):
    key = fields.String(required=True, metadata={"description": "The key itself: shown this once, never again."})


class KeyListSchema(Schema):
    object = fields.Constant("list", required=True)
    data = fields.List(fields.Nested(KeySchema), required=True)

"""Provider and settings bodies of the management API, validated at the edge."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from marshmallow import RAISE, Schema, ValidationError, fields, pre_load, validate

from app.providers.mock import MOCK_URL
from app.providers.registry import PROVIDER_TYPES

NAME = validate.Regexp(
    r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$",
    error="Must be 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit.",
)
ENV_NAME = validate.Regexp(
    r"^[A-Za-z_][A-Za-z0-9_]{0,127}$",
    error="Must be the NAME of an environment variable (letters, digits, '_'), never the secret itself.",
)
SECRET_FIELDS = ("api_key", "key", "token", "cookies", "password")


def http_url(value: str) -> None:
    """An http(s) URL without credentials (the mock provider's own URL also passes)."""
    if value == MOCK_URL:
        return
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationError("Must be an http(s) URL.")
    if parts.username or parts.password:
        raise ValidationError("Must not hold credentials: name an environment variable in api_key_env instead.")


class ProviderSchema(Schema):
    """A provider as POSTed; PATCH loads it partially."""

    class Meta:
        unknown = RAISE

    name = fields.String(required=True, validate=NAME)
    type = fields.String(required=True, validate=validate.OneOf(sorted(PROVIDER_TYPES)))
    base_url = fields.String(validate=[validate.Length(min=1, max=2048), http_url])
    api_key_env = fields.String(allow_none=True, validate=ENV_NAME)
    default_model = fields.String(allow_none=True, validate=validate.Length(min=1, max=255))
    timeout_ms = fields.Integer(strict=True, allow_none=True, validate=validate.Range(min=1, max=3_600_000))
    enabled = fields.Boolean(truthy={True}, falsy={False})
    # Checked per option by the provider's type (app.providers.base.Provider.option_problem).
    options = fields.Dict(keys=fields.String(), values=fields.String(validate=validate.Length(max=256)),
                          allow_none=True)

    @pre_load
    def _no_secrets(self, data: Any, **_: Any) -> Any:
        if isinstance(data, dict):
            for key in SECRET_FIELDS:
                if key in data:
                    raise ValidationError(
                        "Secrets are never stored: put it in an environment variable and send its name "
                        "as api_key_env.", field_name=key,
                    )
        return data


class SettingsSchema(Schema):
    """The settings an operator may change (a whitelist); cross-checks happen in the service."""

    class Meta:
        unknown = RAISE

    active_provider = fields.String(validate=NAME)
    fallback_providers = fields.List(fields.String(validate=NAME), validate=validate.Length(max=16))
    models_cache_seconds = fields.Integer(strict=True, validate=validate.Range(min=0, max=3600))


class SettingValueSchema(Schema):
    """The body of PUT /v1/settings/<key>."""

    class Meta:
        unknown = RAISE

    value = fields.Raw(required=True, allow_none=False)

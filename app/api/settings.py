"""/v1/settings: the run-time settings an operator may read and change (a whitelist)."""

from __future__ import annotations

from flask import Blueprint, Response, request

from app.api.auth import require_admin
from app.db import get_engine
from app.extensions import gateway
from app.schemas.providers import SettingsSchema, SettingValueSchema
from app.schemas.validation import json_object, load
from app.services import settings_admin

bp = Blueprint("settings", __name__, url_prefix="/v1/settings")
bp.before_request(require_admin)


def _context() -> dict:
    settings = gateway().settings
    return {"engine": get_engine(settings.database_url), "default_provider": settings.default_provider}


@bp.after_request
def apply_now(response: Response) -> Response:
    """This worker routes by a change at once; the others within their check interval."""
    if request.method != "GET" and response.status_code < 400:
        gateway().registry.check()
    return response


@bp.get("")
def get_settings() -> dict:
    return settings_admin.get_settings(**_context())


@bp.put("")
def put_settings() -> dict:
    values = load(SettingsSchema(), json_object(request.get_data()))
    return settings_admin.put_settings(values=values, **_context())


@bp.get("/<key>")
def get_setting(key: str) -> dict:
    return settings_admin.get_setting(key=key, **_context())


@bp.put("/<key>")
def put_setting(key: str) -> dict:
    settings_admin.check_key(key)
    value = load(SettingValueSchema(), json_object(request.get_data()))["value"]
    values = load(SettingsSchema(), {key: value})
    settings_admin.put_settings(values=values, **_context())
    return settings_admin.get_setting(key=key, **_context())

"""/v1/settings: the run-time settings an operator may read and change (a whitelist)."""

from __future__ import annotations

from flask import request

from app.api.management import admin_context, management_blueprint
from app.schemas.providers import SettingsSchema, SettingValueSchema
from app.schemas.validation import json_object, load
from app.services.admin import settings as settings_admin

bp = management_blueprint("settings", "/v1/settings")


@bp.get("")
def get_settings() -> dict:
    return settings_admin.get_settings(**admin_context())


@bp.put("")
def put_settings() -> dict:
    values = load(SettingsSchema(), json_object(request.get_data()))
    return settings_admin.put_settings(values=values, **admin_context())


@bp.get("/<key>")
def get_setting(key: str) -> dict:
    return settings_admin.get_setting(key=key, **admin_context())


@bp.put("/<key>")
def put_setting(key: str) -> dict:
    settings_admin.check_key(key)
    value = load(SettingValueSchema(), json_object(request.get_data()))["value"]
    values = load(SettingsSchema(), {key: value})
    settings_admin.put_settings(values=values, **admin_context())
    return settings_admin.get_setting(key=key, **admin_context())

"""/v1/providers: list, add, read, change, delete, and test the upstream providers."""

from __future__ import annotations

from flask import request

from app.api.management import admin_context, management_blueprint
from app.db import get_engine
from app.errors import InvalidRequest
from app.extensions import gateway
from app.schemas.providers import ProviderSchema
from app.schemas.validation import json_object, load
from app.services.admin import providers as provider_admin

bp = management_blueprint("providers", "/v1/providers")


@bp.get("")
def list_providers() -> dict:
    return {"object": "list", "data": provider_admin.list_providers(**admin_context())}


@bp.post("")
def create_provider() -> tuple:
    fields = load(ProviderSchema(), json_object(request.get_data()))
    created = provider_admin.create_provider(fields=fields, **admin_context())
    return created, 201, {"Location": f"{bp.url_prefix}/{created['name']}"}


@bp.get("/<name>")
def get_provider(name: str) -> dict:
    return provider_admin.get_provider(name=name, **admin_context())


@bp.patch("/<name>")
def update_provider(name: str) -> dict:
    body = json_object(request.get_data())
    if body.get("name", name) != name:
        raise InvalidRequest(
            "Invalid 'name': a provider cannot be renamed; create a new one instead.",
            param="name", code="immutable_field",
        )
    body.pop("name", None)
    changes = load(ProviderSchema(), body, partial=True)
    return provider_admin.update_provider(name=name, changes=changes, **admin_context())


@bp.delete("/<name>")
def delete_provider(name: str) -> dict:
    provider_admin.delete_provider(name=name, **admin_context())
    return {"deleted": True, "provider": name}


@bp.post("/<name>/test")
def test_provider(name: str) -> dict:
    settings = gateway().settings
    return provider_admin.test_provider(
        get_engine(settings.database_url), name=name, default_timeout_s=settings.request_timeout_s
    )

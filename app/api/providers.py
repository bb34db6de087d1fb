"""/v1/providers: list, add, read, change, delete, and test the upstream providers."""

from __future__ import annotations

from flask import Blueprint, Response, request

from app.api.auth import require_admin
from app.db import get_engine
from app.errors import InvalidRequest
from app.extensions import gateway
from app.schemas.providers import ProviderSchema
from app.schemas.validation import json_object, load
from app.services import provider_admin

bp = Blueprint("providers", __name__, url_prefix="/v1/providers")
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
def list_providers() -> dict:
    return {"object": "list", "data": provider_admin.list_providers(**_context())}


@bp.post("")
def create_provider() -> tuple:
    fields = load(ProviderSchema(), json_object(request.get_data()))
    created = provider_admin.create_provider(fields=fields, **_context())
    return created, 201, {"Location": f"{bp.url_prefix}/{created['name']}"}


@bp.get("/<name>")
def get_provider(name: str) -> dict:
    return provider_admin.get_provider(name=name, **_context())


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
    return provider_admin.update_provider(name=name, changes=changes, **_context())


@bp.delete("/<name>")
def delete_provider(name: str) -> dict:
    provider_admin.delete_provider(name=name, **_context())
    return {"deleted": True, "provider": name}


@bp.post("/<name>/test")
def test_provider(name: str) -> dict:
    settings = gateway().settings
    return provider_admin.test_provider(
        get_engine(settings.database_url), name=name, default_timeout_s=settings.request_timeout_s
    )

"""What the management blueprints (providers, settings) share: the admin check and applying changes."""

from __future__ import annotations

from flask import Blueprint, Response, request

from app.api.auth import require_admin
from app.db import get_engine
from app.extensions import gateway


def management_blueprint(name: str, url_prefix: str) -> Blueprint:
    """A blueprint behind the admin check whose successful changes this worker applies at once."""
    bp = Blueprint(name, __name__, url_prefix=url_prefix)
    bp.before_request(require_admin)
    bp.after_request(_apply_now)
    return bp


def admin_context() -> dict:
    """The keyword arguments the provider and settings services take."""
    settings = gateway().settings
    return {"engine": get_engine(settings.database_url), "default_provider": settings.default_provider}


def _apply_now(response: Response) -> Response:
    """This worker routes by a change at once; the others within their check interval."""
    if request.method != "GET" and response.status_code < 400:
        gateway().registry.check()
    return response

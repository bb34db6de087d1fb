"""GET /health: is the gateway up, and which providers it knows."""

from __future__ import annotations

from flask import Blueprint

from app.extensions import gateway
from app.providers.http import redact_url

bp = Blueprint("health", __name__)


@bp.get("/health")
def health() -> dict:
    registry = gateway().registry
    return {
        "status": "ok",
        "active_provider": registry.active_name,
        "providers": {
            provider.name: {"status": "configured", "base_url": redact_url(provider.base_url)}
            for provider in registry.all()
        },
    }

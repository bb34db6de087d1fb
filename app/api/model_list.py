"""GET /v1/models: every provider's models, as ``<provider>/<model>`` and the active one's bare."""

from __future__ import annotations

from flask import Blueprint, request

from app.extensions import gateway
from app.services.admin.catalog import list_models

bp = Blueprint("models", __name__, url_prefix="/v1")


@bp.get("/models")
def get_models() -> dict:
    registry = gateway().registry.snapshot()
    provider = request.args.get("provider")
    return {"object": "list", "data": list_models(registry, provider=provider)}

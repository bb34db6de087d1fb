"""GET /health: is the gateway up, and how its providers answered when last probed."""

from __future__ import annotations

from flask import Blueprint

from app.extensions import gateway

bp = Blueprint("health", __name__)


@bp.get("/health")
def health() -> dict:
    current = gateway()
    return current.health.report(current.registry.snapshot())

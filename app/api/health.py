"""GET /health: is the gateway up, how its providers answered when last probed, and its audit trail's state."""

from __future__ import annotations

from flask import Blueprint

from app.extensions import gateway

bp = Blueprint("health", __name__)


@bp.get("/health")
def health() -> dict:
    current = gateway()
    report = current.health.report(current.registry.snapshot())
    audit = current.chat.audit
    if audit is not None:
        state = audit.status()
        report["database"] = state.pop("database")
        report["audit"] = state
        if report["database"] != "ok":
            report["status"] = "degraded"
    return report

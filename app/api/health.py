"""GET /health: is the gateway up, how its providers answered when last probed, and its audit trail's state;
/health/live and /health/ready for orchestrators and load balancers."""

from __future__ import annotations

import os

from flask import Blueprint

from app.extensions import gateway
from app.services.admin.readiness import readiness

bp = Blueprint("health", __name__)


@bp.get("/health")
def health() -> dict:
    current = gateway()
    report = current.health.report(current.registry.snapshot())
    if current.settings.read_only:
        report["read_only"] = True  # a replica's gateway: history reads only (app.api.read_only)
    audit = current.chat.audit
    if audit is not None:
        state = audit.status()
        report["database"] = state.pop("database")
        report["audit"] = state
        if report["database"] != "ok":
            report["status"] = "degraded"
    return report


@bp.get("/health/live")
def live() -> tuple[dict, int, dict]:
    """The process answers (nothing else is checked: a liveness probe must not restart a gateway for its database).

    ``X-Worker`` names the worker process that answered, so that a start-up check can wait for each.
    """
    return {"status": "ok"}, 200, {"X-Worker": str(os.getpid())}


@bp.get("/health/ready")
def ready() -> tuple[dict, int]:
    """200 when this worker can route a call and record it (database, or journal while it is down); else 503."""
    current = gateway()
    is_ready, checks = readiness(registry=current.registry, audit=current.chat.audit)
    return {"status": "ready" if is_ready else "unready", **checks}, 200 if is_ready else 503

"""GET /metrics: the Prometheus series of every worker, for the admin key (or loopback) unless METRICS_PUBLIC."""

from __future__ import annotations

from flask import Blueprint, Response
from prometheus_client import CONTENT_TYPE_LATEST

from app.api.auth import require_admin
from app.extensions import gateway

bp = Blueprint("metrics", __name__)


@bp.before_request
def _access() -> None:
    if not gateway().settings.metrics_public:
        require_admin()


@bp.get("/metrics")
def metrics() -> Response:
    return Response(gateway().telemetry.metrics.exposition(), mimetype=None, content_type=CONTENT_TYPE_LATEST)

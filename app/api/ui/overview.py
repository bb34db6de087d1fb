"""/ui: the overview of a time range, beside the period before it."""

from __future__ import annotations

from flask import render_template, request

from app.api.rest import db
from app.api.ui.blueprint import bp
from app.errors import InvalidRequest
from app.extensions import gateway
from app.models import now_ms
from app.schemas.common import Timestamp
from app.services.history import overview as overviews

RANGE_NAMES = (*overviews.RANGES, "custom")


def requested_range(now: int) -> overviews.TimeRange:
    name = request.args.get("range") or "24h"
    try:
        if name != "custom":
            return overviews.time_range(now=now, name=name)
        parse = Timestamp().deserialize
        return overviews.time_range(
            now=now, start_ms=parse(request.args.get("start", "")), end_ms=parse(request.args.get("end", "")),
        )
    except Exception as exc:  # noqa: BLE001 - marshmallow's ValidationError or ValueError: one message
        raise InvalidRequest(f"Invalid range: {exc}", param="range", code="invalid_range") from None


@bp.get("/")
def overview():
    now = now_ms()
    span = requested_range(now)
    report = overviews.overview(db(), span=span, prices=gateway().settings.model_prices, now=now)
    charts = {
        "bucket_ms": span.bucket_ms,
        "times": [group.start_ms // 1000 for group in report.series],
        "ok": [group.requests - group.errors - group.incomplete for group in report.series],
        "error": [group.errors for group in report.series],
        "incomplete": [group.incomplete for group in report.series],
        "p50": [group.latency_ms["p50"] for group in report.series],
        "p95": [group.latency_ms["p95"] for group in report.series],
        "tokens": {
            model: [group.tokens_by_model.get(model, 0) for group in report.series]
            for model in sorted({m for group in report.series for m in group.tokens_by_model})[:8]
        },
    }
    return render_template(
        "ui/overview.html", report=report, charts=charts, range_name=request.args.get("range") or "24h",
        range_names=RANGE_NAMES, args=request.args,
    )

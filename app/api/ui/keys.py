"""/ui/keys: who spent what. Each gateway key with its limits and its usage, cost and errors in a time range."""

from __future__ import annotations

from flask import render_template, request

from app.api.rest import db
from app.api.ui.blueprint import bp
from app.api.ui.overview import RANGE_NAMES, requested_range
from app.extensions import gateway
from app.models import now_ms
from app.services.history.stats import usage_report
from app.services.history.usage_sql import UsageFilters
from app.services.keys import store


@bp.get("/keys")
def keys():
    now = now_ms()
    span = requested_range(now)
    report = usage_report(
        db(), filters=UsageFilters(start_ms=span.start_ms, end_ms=span.end_ms), group_by="key",
        prices=gateway().settings.model_prices, limit=10_000, now=now,
    )
    usage = {group.key: group for group in report.groups}
    return render_template(
        "ui/keys.html", keys=store.list_keys(db()), usage=usage, span=span,
        range_name=request.args.get("range") or "24h", range_names=RANGE_NAMES, args=request.args,
    )

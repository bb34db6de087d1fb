"""Statistics: per session, over all responses, and usage reports for billing and latency."""

from __future__ import annotations

from app.api.rest import HistoryBlueprint, db
from app.api.sessions import session_key
from app.extensions import gateway
from app.schemas.stats import (
    ResponseStatsArgs,
    ResponseStatsSchema,
    SessionStatsSchema,
    UsageArgs,
    UsageReportSchema,
)
from app.services.history import stats

blp = HistoryBlueprint("stats", __name__, url_prefix="/v1", description="Usage statistics.")


@blp.route("/sessions/<session_id:session_id>/stats", methods=["GET"], errors=(400, 404))
@blp.response(200, SessionStatsSchema)
def session_stats(session_id: str):
    """Token usage and timings of one session."""
    return stats.session_stats(db(), session_key(session_id))


@blp.route("/responses/stats", methods=["GET"])
@blp.query(ResponseStatsArgs)
@blp.response(200, ResponseStatsSchema)
def response_stats(args):
    """Token usage and timings over every response, or one session's."""
    return stats.response_stats(db(), session_id=args.get("session_id"))


@blp.route("/stats/usage", methods=["GET"])
@blp.query(UsageArgs)
@blp.response(200, UsageReportSchema)
def usage(args):
    """Usage totals, optionally grouped by model, provider, session, UTC day or UTC hour.

    Cost is estimated from MODEL_PRICES (USD per million tokens); models without a price
    count 0 and are listed in unpriced_models. Latency percentiles come from histograms
    with two significant digits (exact under 100 ms).
    """
    return stats.usage_report(
        db(), filters=args["filters"], group_by=args["group_by"], limit=args["limit"],
        prices=gateway().settings.model_prices, recheck_s=stats.RECHECK_S,
    )

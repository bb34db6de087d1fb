"""``stats``: counts, success rate, tokens, latency percentiles and cost, from the usage report the API serves."""

from __future__ import annotations

from typing import Any

import click
from sqlalchemy.orm import Session

from app.cli.common import json_option, open_gateway, parse_since, print_json, print_table
from app.models import now_ms
from app.providers.base import ENDPOINTS
from app.services.history.stats import Metrics, usage_report
from app.services.history.usage_sql import UsageFilters


@click.command("stats")
@click.option("--by", "group_by", type=click.Choice(["model", "provider", "endpoint", "day"]),
              help="One row per group.")
@click.option("--since", help="Only since then: 30m, 2h, 7d, or an ISO time (UTC).")
@click.option("--model", help="Only this model.")
@click.option("--provider", help="Only this provider.")
@click.option("--endpoint", type=click.Choice(ENDPOINTS), help="Only calls to this OpenAI endpoint.")
@json_option
def stats_command(group_by: str | None, since: str | None, model: str | None, provider: str | None,
                  endpoint: str | None, as_json: bool) -> None:
    """Show usage: requests, success rate, tokens, p50/p95 latency, estimated cost.

    \b
    Examples:
      provider-cli stats
      provider-cli stats --by model --since 7d
      provider-cli stats --by day --json
      provider-cli stats --by endpoint --since 1d
    """
    gateway = open_gateway()
    filters = UsageFilters(model=model, provider=provider, endpoint=endpoint,
                           start_ms=parse_since(since, now_ms=now_ms()))
    with Session(gateway.engine) as db:
        report = usage_report(db, filters=filters, group_by=group_by, prices=gateway.settings.model_prices)
    rows = [("total", report.totals), *((group.key, group) for group in report.groups)]
    if as_json:
        print_json({
            "group_by": group_by, "start_ms": report.start_ms, "totals": _metrics(report.totals),
            "groups": [{"key": key, **_metrics(metrics)} for key, metrics in rows[1:]],
            "unpriced_models": report.unpriced_models,
        })
        return
    print_table(
        (group_by or "", "requests", "errors", "success", "prompt tok", "completion tok", "total tok",
         "p50", "p95", "est. cost"),
        (_row(key, metrics) for key, metrics in [*rows[1:], rows[0]]),
    )
    if report.unpriced_models:
        click.echo(f"Not priced (cost counted as 0): {', '.join(report.unpriced_models)}", err=True)


def _metrics(metrics: Metrics) -> dict[str, Any]:
    return {
        "requests": metrics.requests, "errors": metrics.errors, "incomplete": metrics.incomplete,
        "success_rate": metrics.success_rate, "prompt_tokens": metrics.prompt_tokens,
        "completion_tokens": metrics.completion_tokens, "total_tokens": metrics.total_tokens,
        "latency_ms": metrics.latency_ms, "estimated_cost_usd": round(metrics.estimated_cost_usd, 6),
    }


def _row(key: str, metrics: Metrics) -> tuple:
    rate = "-" if metrics.success_rate is None else f"{metrics.success_rate * 100:.1f}%"

    def ms(point: str) -> str:
        value = metrics.latency_ms.get(point)
        return "-" if value is None else f"{value} ms"

    return (key, metrics.requests, metrics.errors, rate, metrics.prompt_tokens, metrics.completion_tokens,
            metrics.total_tokens, ms("p50"), ms("p95"), f"${metrics.estimated_cost_usd:.4f}")

"""``prune``: delete history older than a span, in batches, with a progress bar on a terminal."""

from __future__ import annotations

import click
import sqlalchemy as sa
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from app.cli.common import json_option, open_gateway, parse_span, print_json, progress_wanted, when
from app.models import now_ms
from app.services.history.retention import PRUNE_BATCH, PRUNE_REST, prune, prune_counts


@click.command("prune")
@click.option("--older-than", required=True, help="Delete requests older than this span: 12h, 30d, 8w.")
@click.option("--dry-run", is_flag=True, help="Count what would go; delete nothing.")
@click.option("--batch-size", type=click.IntRange(min=1), default=PRUNE_BATCH, show_default=True,
              help="Requests a transaction.")
@click.option("--rest", type=click.FloatRange(min=0), default=PRUNE_REST, show_default=True,
              help="After each batch, rest this many times as long as it took (0: prune flat out).")
@json_option
def prune_command(older_than: str, dry_run: bool, batch_size: int, rest: float, as_json: bool) -> None:
    """Delete requests (with responses and attempts) older than a span, then sessions left empty.

    Imported (retained) sessions are kept. Each batch is its own short transaction, so a running
    gateway keeps writing meanwhile; between batches the prune rests (--rest) so that the gateway's
    calls keep their latency.

    \b
    Examples:
      provider-cli prune --older-than 30d --dry-run
      provider-cli prune --older-than 90d
    """
    cutoff = now_ms() - parse_span(older_than, option="--older-than")
    gateway = open_gateway()
    planned = prune_counts(gateway.engine, before_ms=cutoff)
    if dry_run:
        counts = planned
    elif progress_wanted() and not as_json and planned.requests:
        columns = (TextColumn("pruning"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
            task = bar.add_task("prune", total=planned.requests)
            counts = prune(gateway.engine, before_ms=cutoff, batch_size=batch_size, rest=rest,
                           advance=lambda n: bar.advance(task, n))
    else:
        counts = prune(gateway.engine, before_ms=cutoff, batch_size=batch_size, rest=rest)
    sqlite_path = _sqlite_path(gateway.settings.database_url)
    if as_json:
        print_json({"dry_run": dry_run, "before": when(cutoff), "before_ms": cutoff,
                    "requests": counts.requests, "sessions": counts.sessions})
        return
    verb = "Would remove" if dry_run else "Removed"
    click.echo(f"{verb} {counts.requests} requests (with their responses) older than {when(cutoff)} UTC"
               f" and {counts.sessions} sessions left empty.")
    if sqlite_path and counts.requests and not dry_run:
        click.echo(f"SQLite keeps the freed pages: run `sqlite3 {sqlite_path} 'VACUUM; ANALYZE'` while the"
                   " gateway is idle to reclaim the space and refresh the planner's statistics.")


def _sqlite_path(url: str) -> str | None:
    parsed = sa.make_url(url)
    return parsed.database if parsed.get_backend_name() == "sqlite" else None

"""``search status|reindex|accelerate``: the content search index (calls are searched with `history --search`)."""

from __future__ import annotations

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from app.cli.common import CliGroup, json_option, open_gateway, print_json, progress_wanted
from app.services.search import index


@click.group("search", cls=CliGroup)
def search_group() -> None:
    """The content search index: what `history --search`, `?q=` and the dashboard search.

    \b
    Examples:
      provider-cli search status
      provider-cli search reindex
      provider-cli history --search '"exact phrase" other words'
    """


@search_group.command("status")
@json_option
def status_command(as_json: bool) -> None:
    """How many calls are indexed, and whether a trigram index serves the searches."""
    state = index.state(open_gateway().engine)
    if as_json:
        print_json({"calls": state.calls, "indexed": state.indexed, "accelerated": state.accelerated})
        return
    click.echo(f"{state.indexed} of {state.calls} calls indexed.")
    if not state.accelerated:
        click.echo("No trigram index (pg_trgm missing): searches read every row. Have a superuser run "
                   "`CREATE EXTENSION pg_trgm`, then `provider-cli search accelerate`.")


@search_group.command("reindex")
def reindex_command() -> None:
    """Index every recorded call not indexed yet (after an upgrade or import); the gateway may keep running."""
    engine = open_gateway().engine
    state = index.state(engine)
    missing = max(0, state.calls - state.indexed)
    if progress_wanted() and missing:
        columns = (TextColumn("indexing"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
            task = bar.add_task("index", total=missing)
            done = index.reindex(engine, progress=lambda n: bar.advance(task, n))
    else:
        done = index.reindex(engine)
    click.echo(f"Indexed {done} calls.")


@search_group.command("accelerate")
def accelerate_command() -> None:
    """PostgreSQL: create pg_trgm and the trigram index (needs the privilege the migration lacked)."""
    engine = open_gateway().engine
    index.accelerate(engine)
    click.echo("Trigram index in place." if index.state(engine).accelerated else "Nothing to do on SQLite.")

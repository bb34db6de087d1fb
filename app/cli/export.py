"""``export``: stream the history as JSON lines or CSV, to a file or a pipe."""

from __future__ import annotations

import sys
from contextlib import nullcontext
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy.orm import Session

from app.cli.common import open_gateway, progress_wanted
from app.cli.history import filter_options, make_filters
from app.services.history.export import csv_lines, export_rows, jsonl_lines
from app.services.history.records import count_requests


@click.command("export")
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv"]), default="jsonl", show_default=True,
              help="jsonl: one object per request with its bodies; csv: flat columns.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True), help="Write here, not to stdout.")
@filter_options
def export_command(fmt: str, output: str | None, **filters: Any) -> None:
    """Export requests and their responses, oldest first, in constant memory.

    A progress bar shows on a terminal when writing to a file; never when piped.

    \b
    Examples:
      provider-cli export --format jsonl -o history.jsonl
      provider-cli export --format csv --since 7d --status error > errors.csv
    """
    gateway = open_gateway()
    wanted = make_filters(**filters)
    total = None
    show_bar = output is not None and progress_wanted()
    if show_bar:
        with Session(gateway.engine) as db:
            total = db.execute(count_requests(wanted)).scalar_one()
    target = open(output, "w", newline="", encoding="utf-8") if output else nullcontext(sys.stdout)  # noqa: SIM115
    written = 0
    with target as out, _bar(show_bar, total) as advance:
        rows = export_rows(gateway.engine, filters=wanted, bodies=fmt == "jsonl")
        for line in csv_lines(rows) if fmt == "csv" else jsonl_lines(rows):
            out.write(line)
            written += 1
            if written % 1000 == 0:
                advance(1000)
        advance(written % 1000)
    written -= fmt == "csv"  # the header line
    if output:
        click.echo(f"Exported {written} requests to {output}.", err=True)


class _bar:  # noqa: N801 - used like a function in a with statement
    """A rich progress bar on stderr, or nothing."""

    def __init__(self, enabled: bool, total: int | None) -> None:
        self.progress = None
        if enabled:
            columns = (TextColumn("exporting"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
            self.progress = Progress(*columns, console=Console(stderr=True), transient=True)
            self.task = self.progress.add_task("export", total=total)

    def __enter__(self):
        if self.progress is None:
            return lambda n: None
        self.progress.start()
        return lambda n: self.progress.advance(self.task, n)

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()

"""`provider-cli import`: bring an original Node gateway database's history into this one."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click
import sqlalchemy as sa
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from app import migrate
from app.config import ConfigError, Settings
from app.services.legacy.importer import (
    DEFAULT_BATCH_SIZE,
    ImportSummary,
    ImportTargetError,
    LegacyDatabaseError,
    import_database,
)
from app.services.legacy.report import NoProgress
from app.services.legacy.report import Progress as ImportProgress

_COLUMNS = ("read", "imported", "duplicates", "problems", "not_imported")
_HEADINGS = ("read", "imported", "duplicates", "with problems", "not imported")


@click.command("import")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--dry-run", is_flag=True, help="Read and report; write nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option(
    "--batch-size", type=click.IntRange(min=1), default=DEFAULT_BATCH_SIZE, show_default=True,
    help="Original rows a transaction.",
)
def import_command(path: Path, dry_run: bool, as_json: bool, batch_size: int) -> None:
    """Import an original gateway's SQLite database (schema v1 or v2) into the configured one.

    Importing the same file again adds nothing; rows that need repair are imported and counted.

    \b
    Examples:
      provider-cli import old/provider-router.db --dry-run
      provider-cli import old/provider-router.db --json
    """
    try:
        settings = Settings.from_env()
        if not dry_run:
            # A new database gets its schema; one behind head is refused with a hint.
            migrate.ensure_schema(settings.database_url)
        with _progress(enabled=sys.stdout.isatty() and not as_json) as progress:
            summary = import_database(
                path=path, database_url=settings.database_url, dry_run=dry_run,
                batch_size=batch_size, progress=progress,
            )
    except (ConfigError, migrate.SchemaOutdated, LegacyDatabaseError, ImportTargetError) as exc:
        raise click.ClickException(str(exc)) from None
    except sa.exc.SQLAlchemyError as exc:
        raise click.ClickException(f"database error: {getattr(exc, 'orig', None) or exc}") from None
    if as_json:
        click.echo(json.dumps(summary.as_dict(), indent=2))
    else:
        click.echo(render(summary))


def render(summary: ImportSummary) -> str:
    """The summary as a few aligned lines for a terminal."""
    verb = "Dry run, nothing written: would import" if summary.dry_run else "Imported"
    version = f", original schema_version {summary.original_version}" if summary.original_version else ""
    lines = [f"{verb} {summary.source} (schema {' + '.join(summary.schemas)}{version})", ""]
    tables = [*summary.tables.items(), ("total", summary.total)]
    rows = [(name, *(getattr(counts, column) for column in _COLUMNS)) for name, counts in tables]
    width = max(len(str(row[0])) for row in rows + [("table",)])
    lines.append("  ".join(["table".ljust(width), *_HEADINGS]))
    for row in rows:
        cells = [str(value).rjust(len(heading)) for value, heading in zip(row[1:], _HEADINGS, strict=True)]
        lines.append("  ".join([str(row[0]).ljust(width), *cells]))
    if summary.placeholders:
        lines.append(f"\nplaceholders made for rows the original lost: {summary.placeholders}")
    if summary.problems:
        shown = len(summary.problems)
        lines.append(f"\nproblems (first {shown} of {summary.total.problems} rows; all were imported):")
        lines += [f"  {problem}" for problem in summary.problems]
    if summary.notes:
        lines.append("\nnotes:")
        lines += [f"  {note}" for note in summary.notes]
    return "\n".join(lines)


class _RichProgress:
    def __init__(self, bar: Progress) -> None:
        self.bar = bar
        self.task = None

    def start(self, total: int) -> None:
        self.task = self.bar.add_task("importing", total=total)

    def advance(self, rows: int) -> None:
        if self.task is not None:
            self.bar.advance(self.task, rows)


@contextmanager
def _progress(*, enabled: bool) -> Iterator[ImportProgress]:
    if not enabled:
        yield NoProgress()
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=Console(), transient=True) as bar:
        yield _RichProgress(bar)

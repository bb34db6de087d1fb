"""Importing an original Node gateway database (schema v1 or v2) into the configured database.

Nothing is lost: every original row becomes rows here, or is reported; original ids
are kept in legacy_id, so importing the same file again adds nothing; imported
sessions are marked retained, so expiry cleanup never deletes them.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from app import migrate
from app.db import get_engine
from app.services.legacy.extra import import_other_tables, import_settings
from app.services.legacy.report import ImportSummary, NoProgress, Progress, TableCounts
from app.services.legacy.source import LegacyDatabaseError, LegacySource, open_source
from app.services.legacy.target import Target
from app.services.legacy.v1 import import_v1
from app.services.legacy.v2 import V2Import

__all__ = [
    "ImportSummary",
    "ImportTargetError",
    "LegacyDatabaseError",
    "Progress",
    "TableCounts",
    "import_database",
]

DEFAULT_BATCH_SIZE = 2000


class ImportTargetError(Exception):
    """The configured database cannot take an import yet."""


def import_database(
    *,
    path: str | Path,
    database_url: str,
    dry_run: bool = False,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: Progress | None = None,
) -> ImportSummary:
    """Import the original database at ``path``; a dry run reads and counts without writing."""
    progress = progress or NoProgress()
    source = open_source(path)
    try:
        target = Target(engine=_target_engine(database_url, dry_run=dry_run), dry_run=dry_run)
        summary = ImportSummary(
            source=str(source.path), schemas=source.schemas, dry_run=dry_run,
            original_version=source.schema_version(),
        )
        progress.start(_rows_to_read(source))
        if "v1" in source.schemas:
            import_v1(source=source, target=target, summary=summary, batch_size=batch_size, progress=progress)
        if "v2" in source.schemas:
            V2Import(
                source=source, target=target, summary=summary, batch_size=batch_size, progress=progress
            ).run()
        import_settings(source=source, target=target, summary=summary)
        import_other_tables(source=source, target=target, summary=summary)
        if len(source.schemas) > 1:
            summary.notes.append(
                "the file holds both request_logs (v1) and v2 tables (an unfinished migration of the "
                "original?): both were imported, so calls present in both appear twice"
            )
        return summary
    finally:
        source.close()


def _rows_to_read(source: LegacySource) -> int:
    tables = ["request_logs"] if "v1" in source.schemas else []
    tables += ["sessions", "requests", "responses"] if "v2" in source.schemas else []
    return sum(source.count(table) for table in tables)


def _target_engine(database_url: str, *, dry_run: bool) -> Engine | None:
    """The configured database at head; None for a dry run against one not created yet."""
    url = sa.make_url(database_url)
    if dry_run and url.get_backend_name() == "sqlite" and not Path(url.database or "").is_file():
        return None
    engine = get_engine(database_url)
    current, head = migrate.current_revision(database_url), migrate.head_revision(database_url)
    if current == head:
        return engine
    if dry_run and current is None and not sa.inspect(engine).get_table_names():
        return None
    raise ImportTargetError(
        f"the database is at revision {current or 'none'} and the import needs {head}: "
        "run `alembic upgrade head` first"
    )

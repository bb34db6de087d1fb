"""The database an import writes to: what it already holds, which ids are free, batched inserts."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from app.models import ChatSession, Request, Response

SESSIONS = ChatSession.__table__
REQUESTS = Request.__table__
RESPONSES = Response.__table__
# A response's copy of its request's model, read by the INSERT itself (the bound request id is
# repeated under its own name: SQLAlchemy keeps a column's name for its value).
_MODEL_OF = "model_of_request_id"
_REQUEST_MODEL = (
    sa.select(REQUESTS.c.model).where(REQUESTS.c.id == sa.bindparam(_MODEL_OF, type_=sa.BigInteger))
    .scalar_subquery()
)

# Ids minted for imported rows are stable: a re-run of an interrupted import mints the same.
_NAMESPACE = uuid.UUID("5d0c5a53-3a5e-4f0c-9a43-6f1d2b7c8e01")


def minted_uuid(*, source: str, table: str, legacy_id: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"{source}:{table}:{legacy_id}"))


def minted_session_id(*, source: str, legacy_id: str) -> str:
    return f"{source}-{hashlib.sha256(legacy_id.encode()).hexdigest()[:32]}"


def chunks(values: list[Any], size: int = 500) -> Iterator[list[Any]]:
    """Slices small enough for any driver's limit on bound parameters."""
    for start in range(0, len(values), size):
        yield values[start:start + size]


class Target:
    """Lookups and inserts on the configured database; a dry run looks but never writes."""

    def __init__(self, *, engine: Engine | None, dry_run: bool) -> None:
        # No engine: a dry run against a database that does not exist yet holds nothing.
        self.engine = engine
        self.dry_run = dry_run
        self._fake_id = 0
        self._compiled: dict[tuple[str, tuple[str, ...]], str] = {}
        self._inserted = 0
        self._analyzed_at = 0

    @contextmanager
    def batch(self) -> Iterator[Connection | None]:
        """One transaction per batch: an interrupted import keeps whole batches only."""
        if self.engine is None:
            yield None
        elif self.dry_run:
            # Reads only; leaving the block without a commit ends the transaction.
            with self.engine.connect() as connection:
                yield connection
        else:
            with self.engine.begin() as connection:
                yield connection
            self._refresh_statistics()

    def existing(
        self, connection: Connection | None, table: sa.Table, *, source: str, legacy_ids: Iterable[str],
        columns: tuple[str, ...] = ("id",),
    ) -> dict[str, tuple[Any, ...]]:
        """legacy_id -> ``columns`` of the rows already imported from ``source``."""
        found: dict[str, tuple[Any, ...]] = {}
        if connection is None:
            return found
        selected = [table.c.legacy_id, *(table.c[name] for name in columns)]
        for part in chunks(list(legacy_ids)):
            # legacy_id IN (...) implies the partial index's IS NOT NULL for SQLite and PostgreSQL;
            # spelling it out makes SQLite range-scan the whole source instead.
            query = sa.select(*selected).where(
                table.c.legacy_source == source, table.c.legacy_id.in_(part)
            )
            for row in connection.execute(query):
                found[row[0]] = tuple(row[1:])
        return found

    def taken(self, connection: Connection | None, column: sa.Column, values: Iterable[Any]) -> set[Any]:
        """Which of ``values`` the column already holds."""
        found: set[Any] = set()
        if connection is None:
            return found
        for part in chunks([value for value in values if value is not None]):
            found.update(connection.scalars(sa.select(column).where(column.in_(part))))
        return found

    def insert(self, connection: Connection | None, table: sa.Table, rows: list[dict[str, Any]]) -> None:
        """Insert rows whose values the driver takes as they are (text, numbers, booleans)."""
        if rows and connection is not None and not self.dry_run:
            # Compiled once, run by the driver: SQLAlchemy's per-row parameter processing
            # costs a third of a 100,000-row import (as on the audit hot path).
            keys = tuple(rows[0])
            sql = self._compiled.get((table.name, keys))
            if sql is None:
                statement = sa.insert(table)
                if table is RESPONSES and "model" not in keys:
                    statement = statement.values(model=_REQUEST_MODEL)
                statement = statement.compile(dialect=connection.dialect, column_keys=list(keys))
                sql = self._compiled[(table.name, keys)] = str(statement)
            if table is RESPONSES and "model" not in keys:
                # Each response carries its request's model (history filters count from one
                # index), looked up as the row goes in.
                rows = [{**row, _MODEL_OF: row["request_id"]} for row in rows]
            connection.exec_driver_sql(sql, rows)
            self._inserted += len(rows)

    def _refresh_statistics(self) -> None:
        """On PostgreSQL, ANALYZE each time the imported rows double.

        Planned on the statistics of empty tables, the batch lookups scan whole tables
        instead of their indexes, and a 100,000-row import slows from seconds to minutes.
        """
        if self.engine is None or self.engine.dialect.name != "postgresql":
            return
        if self._inserted < max(1000, 2 * self._analyzed_at):
            return
        with self.engine.begin() as connection:
            connection.exec_driver_sql("ANALYZE sessions, requests, responses")
        self._analyzed_at = self._inserted

    def insert_typed(
        self, connection: Connection | None, table: sa.Table, rows: list[dict[str, Any]]
    ) -> None:
        """Insert rows through the column types (JSON documents, booleans of any table)."""
        if rows and connection is not None and not self.dry_run:
            connection.execute(sa.insert(table), rows)

    def insert_ids(
        self, connection: Connection | None, table: sa.Table, rows: list[dict[str, Any]]
    ) -> dict[str, int]:
        """Insert ``rows`` and answer legacy_id -> the new id (made up in a dry run)."""
        if not rows:
            return {}
        if connection is None or self.dry_run:
            ids = {}
            for row in rows:
                self._fake_id -= 1
                ids[row["legacy_id"]] = self._fake_id
            return ids
        # A plain executemany and an indexed lookup: on SQLite, INSERT ... RETURNING
        # over many rows is ten times slower.
        self.insert(connection, table, rows)
        sources = {row["legacy_source"] for row in rows}
        ids: dict[str, int] = {}
        for source in sources:
            legacy_ids = [row["legacy_id"] for row in rows if row["legacy_source"] == source]
            found = self.existing(connection, table, source=source, legacy_ids=legacy_ids)
            ids.update((legacy_id, found[legacy_id][0]) for legacy_id in legacy_ids)
        return ids

    def settings(self, connection: Connection | None, table: sa.Table) -> dict[str, str]:
        if connection is None:
            return {}
        return {key: value for key, value in connection.execute(sa.select(table.c.key, table.c.value))}


def free_id(preferred: str | None, *, size: int, taken: set[Any], fallback: str) -> tuple[str, bool]:
    """The original id when the target can hold it, else ``fallback``; and whether it was kept."""
    if preferred and len(preferred) <= size and preferred not in taken:
        taken.add(preferred)
        return preferred, True
    taken.add(fallback)
    return fallback, False


def public_id(legacy_id: str, *, source: str, table: str, column: str, taken: set[Any], problems: list[str]) -> str:
    """A row's public UUID: the original one when it fits and is free here, else one minted from it."""
    value, kept = free_id(
        legacy_id, size=36, taken=taken, fallback=minted_uuid(source=source, table=table, legacy_id=legacy_id)
    )
    if not kept:
        problems.append(f"{column} too long or already in use here; a new one was minted")
    return value

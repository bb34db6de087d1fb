"""Reading an original Node gateway database: open it read-only, tell its schema, page its rows."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

V1_TABLES = frozenset({"request_logs"})
V2_TABLES = frozenset({"sessions", "requests", "responses"})
# Read for detection or reported, but holding nothing the gateway keeps.
BOOKKEEPING_TABLES = frozenset({"metadata", "sqlite_sequence"})

Row = dict[str, Any]


class LegacyDatabaseError(Exception):
    """The file is not an original gateway database that can be read."""


@dataclass(kw_only=True)
class LegacySource:
    """An open original database and what it holds."""

    path: Path
    connection: sqlite3.Connection
    columns: dict[str, list[str]]

    @property
    def schemas(self) -> list[str]:
        """``v1`` (request_logs), ``v2`` (sessions/requests/responses), or both after a failed migration."""
        found = []
        if V1_TABLES <= self.columns.keys():
            found.append("v1")
        if V2_TABLES <= self.columns.keys():
            found.append("v2")
        return found

    @property
    def other_tables(self) -> list[str]:
        """Tables outside the documented schemas: the v3 provider tables and anything unknown."""
        known = V1_TABLES | V2_TABLES | BOOKKEEPING_TABLES | {"settings"}
        return sorted(name for name in self.columns if name not in known)

    def has(self, table: str, column: str | None = None) -> bool:
        columns = self.columns.get(table)
        return columns is not None and (column is None or column in columns)

    def count(self, table: str) -> int:
        return self.connection.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]

    def schema_version(self) -> str | None:
        """The original's own schema version, from its metadata table if it has one."""
        if not self.has("metadata", "key") or not self.has("metadata", "value"):
            return None
        row = self.connection.execute(
            "SELECT value FROM metadata WHERE key IN ('schema_version', 'version') LIMIT 1"
        ).fetchone()
        return None if row is None else str(row[0])

    def pages(self, table: str, *, size: int, where: str = "") -> Iterator[list[Row]]:
        """Every row of ``table`` in rowid order, ``size`` at a time, each with its ``_rowid``."""
        last = -(2**63)
        condition = f"AND ({where})" if where else ""
        while True:
            rows = self.connection.execute(
                f'SELECT rowid AS _rowid, * FROM "{table}" WHERE rowid > ? {condition} '
                "ORDER BY rowid LIMIT ?",
                (last, size),
            ).fetchall()
            if not rows:
                return
            yield [dict(row) for row in rows]
            last = rows[-1]["_rowid"]

    def rows_where_in(self, table: str, *, column: str, values: list[Any]) -> list[Row]:
        """The rows of ``table`` whose ``column`` is one of ``values``, in rowid order."""
        rows: list[Row] = []
        # Old SQLite builds allow only 999 bound parameters a statement.
        for start in range(0, len(values), 900):
            part = values[start:start + 900]
            rows.extend(dict(row) for row in self.connection.execute(
                f'SELECT rowid AS _rowid, * FROM "{table}" WHERE "{column}" IN ({",".join("?" * len(part))})',
                part,
            ))
        return sorted(rows, key=lambda row: row["_rowid"])

    def all_rows(self, table: str) -> list[Row]:
        return [dict(row) for row in self.connection.execute(f'SELECT * FROM "{table}"')]

    def close(self) -> None:
        self.connection.close()


def open_source(path: str | Path) -> LegacySource:
    """Open ``path`` read-only and check it holds an original gateway schema."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise LegacyDatabaseError(f"{path}: no such file")
    # mode=ro: the import must never change the file it reads (not even a WAL checkpoint).
    uri = path.resolve().as_uri() + "?mode=ro"
    try:
        connection = sqlite3.connect(uri, uri=True)
        connection.row_factory = sqlite3.Row
        names = [row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    except sqlite3.DatabaseError as exc:
        raise LegacyDatabaseError(f"{path}: not an SQLite database ({exc})") from None
    columns = {
        name: [row[1] for row in connection.execute(f'PRAGMA table_info("{name}")')]
        for name in names if not name.startswith("sqlite_") or name == "sqlite_sequence"
    }
    source = LegacySource(path=path, connection=connection, columns=columns)
    if "alembic_version" in columns:
        source.close()
        raise LegacyDatabaseError(
            f"{path}: this is a provider-router database, not one of the original Node gateway"
        )
    if not source.schemas:
        source.close()
        tables = ", ".join(sorted(columns)) or "none"
        raise LegacyDatabaseError(
            f"{path}: unknown schema: expected request_logs (v1) or sessions, requests and "
            f"responses (v2), found tables: {tables}"
        )
    return source

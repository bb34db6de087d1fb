"""What an import did, table by table: read, imported, duplicates, problems."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Protocol

MAX_PROBLEM_SAMPLES = 50


class Progress(Protocol):
    """Told how many original rows there are, then how many were handled."""

    def start(self, total: int) -> None: ...

    def advance(self, rows: int) -> None: ...


class NoProgress:
    def start(self, total: int) -> None:
        pass

    def advance(self, rows: int) -> None:
        pass


@dataclass(slots=True)
class TableCounts:
    """Rows of one original table; ``problems`` counts imported rows that needed repair."""

    read: int = 0
    imported: int = 0
    duplicates: int = 0
    problems: int = 0
    not_imported: int = 0

    def add(self, other: TableCounts) -> None:
        for name in ("read", "imported", "duplicates", "problems", "not_imported"):
            setattr(self, name, getattr(self, name) + getattr(other, name))


@dataclass(kw_only=True)
class ImportSummary:
    """The report of one import run, as printed and as ``--json``."""

    source: str
    schemas: list[str]
    dry_run: bool
    original_version: str | None = None
    tables: dict[str, TableCounts] = field(default_factory=dict)
    placeholders: int = 0
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def table(self, name: str) -> TableCounts:
        return self.tables.setdefault(name, TableCounts())

    def imported(self, table: str, *, legacy_id: str, problems: list[str]) -> None:
        """Count one imported row, and its problems if it had any."""
        counts = self.table(table)
        counts.imported += 1
        if problems:
            counts.problems += 1
            if len(self.problems) < MAX_PROBLEM_SAMPLES:
                self.problems.append(f"{table} {legacy_id}: {'; '.join(problems)}")

    @property
    def total(self) -> TableCounts:
        total = TableCounts()
        for counts in self.tables.values():
            total.add(counts)
        return total

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "schemas": self.schemas,
            "original_version": self.original_version,
            "dry_run": self.dry_run,
            "tables": {name: dataclasses.asdict(counts) for name, counts in self.tables.items()},
            "total": dataclasses.asdict(self.total),
            "placeholders": self.placeholders,
            "problems": self.problems,
            "notes": self.notes,
        }

"""Settings, and tables outside the documented schemas (the undocumented v3 provider tables)."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from app.models import Setting
from app.models.providers import ProviderRow
from app.providers.registry import PROVIDER_TYPES
from app.services.admin.config_store import bump_version
from app.services.legacy.report import ImportSummary
from app.services.legacy.source import LegacySource
from app.services.legacy.target import Target
from app.services.legacy.values import flag, integer, millis, string, text

SETTINGS = Setting.__table__
PROVIDERS = ProviderRow.__table__


def import_settings(*, source: LegacySource, target: Target, summary: ImportSummary) -> None:
    """Keys this gateway has not set yet; a key it already holds keeps its value here."""
    if not source.has("settings"):
        return
    counts = summary.table("settings")
    with target.batch() as connection:
        present = target.settings(connection, SETTINGS)
        fresh = []
        for src in source.all_rows("settings"):
            counts.read += 1
            problems: list[str] = []
            key = string(src.get("key"), name="key", problems=problems, size=64, required=True)
            value = text(src.get("value"), name="value", problems=problems)
            if key in present:
                counts.duplicates += 1
                if present[key] != value:
                    summary.notes.append(f"settings: kept {key}={present[key]!r}; the original had {value!r}")
                continue
            if value is None:
                problems.append("value missing")
            present[key] = value
            # The original stamped settings with strftime('%s'): seconds.
            updated_at = millis(src.get("updated_at"), name="updated_at", problems=problems, seconds=True)
            fresh.append({"key": key, "value": value or "", "updated_at": updated_at})
            summary.imported("settings", legacy_id=key, problems=problems)
        target.insert(connection, SETTINGS, fresh)


def import_other_tables(*, source: LegacySource, target: Target, summary: ImportSummary) -> None:
    """Copy each into this database's table of the same name, by shared columns; report the rest."""
    for name in source.other_tables:
        counts = summary.table(name)
        rows = source.all_rows(name)
        counts.read += len(rows)
        if name == "providers" and "config" in source.columns[name]:
            _import_v3_providers(rows, target=target, summary=summary)
            continue
        with target.batch() as connection:
            table, reason = _destination(connection, name, source.columns[name])
            if table is None:
                counts.not_imported += len(rows)
                summary.notes.append(f"{name}: {len(rows)} rows not imported: {reason}")
                continue
            shared = [column for column in source.columns[name] if column in table.c]
            dropped = [column for column in source.columns[name] if column not in table.c]
            if dropped:
                summary.notes.append(f"{name}: columns {', '.join(dropped)} have no place here; not imported")
            key = _key(connection, table, shared)
            present = {tuple(row) for row in connection.execute(sa.select(*(table.c[k] for k in key)))}
            fresh = []
            for src in rows:
                problems: list[str] = []
                row = {column: _coerce(table.c[column], src.get(column), problems) for column in shared}
                identity = tuple(row[k] for k in key)
                if identity in present:
                    counts.duplicates += 1
                    continue
                present.add(identity)
                fresh.append(row)
                summary.imported(name, legacy_id=str(identity), problems=problems + [
                    f"column {column} not imported" for column in dropped if src.get(column) is not None
                ])
            target.insert_typed(connection, table, fresh)


def _import_v3_providers(rows: list[dict[str, Any]], *, target: Target, summary: ImportSummary) -> None:
    """v3 kept ``(id, name, type, enabled, config JSON)``; ours keeps the base URL in a column.

    Providers this database already has keep their configuration (counted as duplicates); keys
    are never imported (ours name the environment variable that holds one).
    """
    counts = summary.table("providers")
    with target.batch() as connection:
        present = set() if connection is None else set(connection.scalars(sa.select(PROVIDERS.c.name)))
        fresh = []
        for src in rows:
            problems: list[str] = []
            name = string(src.get("id") or src.get("name"), name="id", problems=problems, size=64)
            config = src.get("config")
            try:
                config = json.loads(config) if isinstance(config, str) else (config or {})
            except ValueError:
                config, problems = {}, [*problems, "config is not valid JSON"]
            base_url = config.get("base_url") or config.get("baseUrl") if isinstance(config, dict) else None
            if not name or not base_url:
                counts.not_imported += 1
                summary.notes.append(f"providers: {name or '(no id)'} has no base_url; not imported")
                continue
            if name in present:
                counts.duplicates += 1
                continue
            present.add(name)
            kind = src.get("type") if src.get("type") in PROVIDER_TYPES else "openai-compatible"
            created = millis(src.get("created_at"), name="created_at", problems=problems, seconds=True)
            fresh.append({
                "name": name, "type": kind, "base_url": str(base_url),
                "api_key_env": "QWEN_TOKEN" if kind == "qwen" else None,
                "default_model": config.get("model") or config.get("default_model"),
                "timeout_ms": None, "enabled": flag(src.get("enabled", 1)),
                "options": {"cookies_env": "QWEN_COOKIES"} if kind == "qwen" else None,
                "created_at": created, "updated_at": created,
            })
            summary.imported("providers", legacy_id=name, problems=problems)
        if fresh and connection is not None and not target.dry_run:
            target.insert_typed(connection, PROVIDERS, fresh)
            bump_version(connection)  # running gateways pick the new providers up within a second


def _destination(
    connection: Connection | None, name: str, columns: list[str]
) -> tuple[sa.Table | None, str]:
    if connection is None or not sa.inspect(connection).has_table(name):
        return None, f"this database has no {name} table"
    table = sa.Table(name, sa.MetaData(), autoload_with=connection)
    shared = [column for column in columns if column in table.c]
    missing = [
        column.name for column in table.c
        if column.name not in shared and not column.nullable and column.server_default is None
        and not (column.primary_key and isinstance(column.type, sa.Integer))
    ]
    if missing:
        return None, f"its {name} table needs {', '.join(missing)}, which the original lacks"
    if not _key(connection, table, shared):
        return None, f"no unique key shared with this database's {name} table to tell duplicates"
    return table, ""


def _key(connection: Connection, table: sa.Table, shared: list[str]) -> list[str]:
    """The first primary or unique key made only of shared columns: it tells duplicates."""
    inspector = sa.inspect(connection)
    candidates = [[column.name for column in table.primary_key]]
    candidates += [unique["column_names"] for unique in inspector.get_unique_constraints(table.name)]
    candidates += [index["column_names"] for index in inspector.get_indexes(table.name) if index["unique"]]
    return next((key for key in candidates if key and set(key) <= set(shared)), [])


def _coerce(column: sa.Column, value: Any, problems: list[str]) -> Any:
    """SQLite's loose values as the typed column expects them."""
    if value is None:
        return None
    if isinstance(column.type, sa.Boolean):
        return flag(value)
    if isinstance(column.type, sa.Integer):
        return integer(value, name=column.name, problems=problems, limit=None)
    if isinstance(column.type, sa.JSON) and isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            problems.append(f"{column.name} is not valid JSON; kept as a JSON string")
            return value
    if isinstance(column.type, sa.String):
        return text(value, name=column.name, problems=problems)
    return value

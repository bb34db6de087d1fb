"""Providers and run-time settings in the database: read them in one go, seed them, mark each change.

Every change to a provider or a setting also writes a new ``config_version``
in the same transaction; workers compare that one small value to notice it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from app.config import Settings
from app.models import ProviderRow, Setting, now_ms
from app.models.base import uuid7
from app.providers.base import ProviderConfig
from app.providers.registry import MODELS_CACHE_SECONDS, configs_from_settings

log = logging.getLogger(__name__)

_providers = ProviderRow.__table__
_settings = Setting.__table__

CONFIG_VERSION = "config_version"
ACTIVE_PROVIDER = "active_provider"
FALLBACK_PROVIDERS = "fallback_providers"
MODELS_CACHE = "models_cache_seconds"


@dataclass(frozen=True, slots=True, kw_only=True)
class RoutingConfig:
    """What a worker routes by, read in one transaction."""

    version: str | None
    providers: tuple[ProviderConfig, ...]
    active: str
    fallbacks: tuple[str, ...]
    models_cache_s: float


def config_from_row(row: Any) -> ProviderConfig:
    return ProviderConfig(
        name=row.name, type=row.type, base_url=row.base_url, api_key_env=row.api_key_env,
        default_model=row.default_model, timeout_ms=row.timeout_ms, enabled=bool(row.enabled),
        options=_json_object(row.options),
    )


def read_version(connection: Connection) -> str | None:
    """The one cheap read a worker makes to learn whether anything changed."""
    return connection.execute(
        sa.select(_settings.c.value).where(_settings.c.key == CONFIG_VERSION)
    ).scalar_one_or_none()


def read_settings(connection: Connection) -> dict[str, tuple[str, int]]:
    """Every stored setting: its text and when it changed."""
    rows = connection.execute(sa.select(_settings.c.key, _settings.c.value, _settings.c.updated_at))
    return {row.key: (row.value, row.updated_at) for row in rows}


def read_config(connection: Connection, *, default_provider: str) -> RoutingConfig:
    """Providers and routing settings, with the version they belong to."""
    stored = {key: value for key, (value, _) in read_settings(connection).items()}
    rows = connection.execute(sa.select(_providers).order_by(_providers.c.name))
    return RoutingConfig(
        version=stored.get(CONFIG_VERSION),
        providers=tuple(config_from_row(row) for row in rows),
        active=stored.get(ACTIVE_PROVIDER) or default_provider,
        fallbacks=tuple(parse_fallbacks(stored.get(FALLBACK_PROVIDERS))),
        models_cache_s=parse_cache_seconds(stored.get(MODELS_CACHE)),
    )


def parse_fallbacks(text: str | None) -> list[str]:
    """The stored fallback list; a damaged value counts as none (and says so)."""
    if not text:
        return []
    try:
        names = json.loads(text)
    except ValueError:
        names = None
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        log.warning("setting %s holds %r, not a JSON list of names: ignored", FALLBACK_PROVIDERS, text[:200])
        return []
    return names


def parse_cache_seconds(text: str | None) -> float:
    try:
        return max(0.0, float(text)) if text else MODELS_CACHE_SECONDS
    except ValueError:
        log.warning("setting %s holds %r, not a number: using %g", MODELS_CACHE, text[:50], MODELS_CACHE_SECONDS)
        return MODELS_CACHE_SECONDS


def _json_object(value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return {}
    return dict(value) if isinstance(value, dict) else {}


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A write transaction; on SQLite it takes the write lock first, so reads in it stay true."""
    with engine.connect() as connection:
        if connection.dialect.name == "sqlite":
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        try:
            yield connection
            connection.commit()
        except BaseException:
            connection.rollback()
            raise


def _insert(connection: Connection, table: sa.Table):
    return (postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert)(table)


def put_setting(connection: Connection, key: str, value: str) -> None:
    """Insert or replace one setting's text."""
    statement = _insert(connection, _settings).values(key=key, value=value, updated_at=now_ms())
    connection.execute(statement.on_conflict_do_update(
        index_elements=[_settings.c.key],
        set_={"value": statement.excluded.value, "updated_at": statement.excluded.updated_at},
    ))


def bump_version(connection: Connection) -> None:
    """Mark a change: every worker reloads at its next check."""
    put_setting(connection, CONFIG_VERSION, uuid7())


def environment_config(settings: Settings) -> RoutingConfig:
    """What ``seed`` writes to a new database: the environment's providers, DEFAULT_PROVIDER active."""
    return RoutingConfig(
        version=None, providers=tuple(configs_from_settings(settings)), active=settings.default_provider,
        fallbacks=(), models_cache_s=MODELS_CACHE_SECONDS,
    )


def seed(engine: Engine, settings: Settings) -> bool:
    """On a database never seeded, insert the environment's providers and the active one.

    Safe with many workers starting at once: whoever inserts ``config_version``
    first seeds; the others find it there and do nothing. Returns whether this call seeded.
    """
    with write_transaction(engine) as connection:
        now = now_ms()
        marker = _insert(connection, _settings).values(key=CONFIG_VERSION, value=uuid7(), updated_at=now)
        if connection.execute(marker.on_conflict_do_nothing().returning(_settings.c.key)).first() is None:
            return False
        for config in environment_config(settings).providers:
            row = {
                "name": config.name, "type": config.type, "base_url": config.base_url,
                "api_key_env": config.api_key_env, "default_model": config.default_model,
                "timeout_ms": config.timeout_ms, "enabled": config.enabled,
                "options": json.dumps(dict(config.options)) if config.options else None,
                "created_at": now, "updated_at": now,
            }
            connection.execute(_insert(connection, _providers).values(row).on_conflict_do_nothing())
        active = {"key": ACTIVE_PROVIDER, "value": settings.default_provider, "updated_at": now}
        connection.execute(_insert(connection, _settings).values(active).on_conflict_do_nothing())
    log.info("seeded the providers from the environment; active provider %s", settings.default_provider)
    return True

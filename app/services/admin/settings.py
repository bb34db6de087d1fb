"""The run-time settings an operator may read and change (a whitelist), checked against the providers."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from app.errors import InvalidRequest, NotFound
from app.models import ProviderRow
from app.services.admin.config_store import (
    ACTIVE_PROVIDER,
    FALLBACK_PROVIDERS,
    MODELS_CACHE,
    bump_version,
    parse_cache_seconds,
    parse_fallbacks,
    put_setting,
    read_settings,
    write_transaction,
)

SETTABLE = (ACTIVE_PROVIDER, FALLBACK_PROVIDERS, MODELS_CACHE)
_providers = ProviderRow.__table__


def get_settings(engine: Engine, *, default_provider: str) -> dict[str, Any]:
    """Every settable setting with its value (defaults filled in)."""
    with engine.connect() as connection:
        return {key: value for key, (value, _) in _current(connection, default_provider).items()}


def get_setting(engine: Engine, *, key: str, default_provider: str) -> dict[str, Any]:
    """One setting: ``{key, value, updated_at}`` (``updated_at`` null while it is a default)."""
    check_key(key)
    with engine.connect() as connection:
        value, updated_at = _current(connection, default_provider)[key]
    return {"key": key, "value": value, "updated_at": updated_at}


def put_settings(engine: Engine, *, values: dict[str, Any], default_provider: str) -> dict[str, Any]:
    """Change some settings together, after checking them against the providers; then bump the version."""
    with write_transaction(engine) as connection:
        if ACTIVE_PROVIDER in values:
            _check_active(connection, values[ACTIVE_PROVIDER])
        if FALLBACK_PROVIDERS in values:
            _check_fallbacks(connection, values[FALLBACK_PROVIDERS])
        for key, value in values.items():
            put_setting(connection, key, _text(value))
        if values:
            bump_version(connection)
    return get_settings(engine, default_provider=default_provider)


def check_key(key: str) -> None:
    """404 ``setting_not_found`` unless ``key`` is a setting one may read and change."""
    if key not in SETTABLE:
        raise NotFound(
            f"No setting {key!r}; the settings are {', '.join(SETTABLE)}.", param="key", code="setting_not_found"
        )


def _current(connection: Connection, default_provider: str) -> dict[str, tuple[Any, int | None]]:
    stored = read_settings(connection)

    def text(key: str) -> tuple[str | None, int | None]:
        return stored.get(key, (None, None))

    active, active_at = text(ACTIVE_PROVIDER)
    fallbacks, fallbacks_at = text(FALLBACK_PROVIDERS)
    cache, cache_at = text(MODELS_CACHE)
    return {
        ACTIVE_PROVIDER: (active or default_provider, active_at),
        FALLBACK_PROVIDERS: (parse_fallbacks(fallbacks), fallbacks_at),
        MODELS_CACHE: (int(parse_cache_seconds(cache)), cache_at),
    }


def _check_active(connection: Connection, name: str) -> None:
    row = connection.execute(
        sa.select(_providers.c.enabled).where(_providers.c.name == name).with_for_update()
    ).first()
    if row is None:
        raise InvalidRequest(
            f"Invalid 'active_provider': there is no provider {name!r}.",
            param=ACTIVE_PROVIDER, code="unknown_provider",
        )
    if not row.enabled:
        raise InvalidRequest(
            f"Invalid 'active_provider': provider {name!r} is disabled; enable it first.",
            param=ACTIVE_PROVIDER, code="provider_disabled",
        )


def _check_fallbacks(connection: Connection, names: list[str]) -> None:
    if len(set(names)) != len(names):
        raise InvalidRequest(
            "Invalid 'fallback_providers': a provider is listed twice.", param=FALLBACK_PROVIDERS, code="invalid_value"
        )
    known = set(connection.execute(
        sa.select(_providers.c.name).where(_providers.c.name.in_(names)).with_for_update()
    ).scalars())
    missing = [name for name in names if name not in known]
    if missing:
        raise InvalidRequest(
            f"Invalid 'fallback_providers': there is no provider {missing[0]!r}.",
            param=FALLBACK_PROVIDERS, code="unknown_provider",
        )


def _text(value: Any) -> str:
    return json.dumps(value) if isinstance(value, list) else str(value)

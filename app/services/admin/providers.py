"""Creating, changing and deleting providers (REST and CLI); each change is a new config version."""

from __future__ import annotations

import json
import os
import time
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from app.errors import Conflict, InvalidRequest, NotFound, UpstreamError
from app.models import ProviderRow, Setting, now_ms
from app.providers.http import redact_url
from app.providers.mock import MOCK_URL
from app.providers.registry import PROVIDER_TYPES, build_provider
from app.services.admin.config_store import (
    ACTIVE_PROVIDER,
    FALLBACK_PROVIDERS,
    bump_version,
    config_from_row,
    parse_fallbacks,
    put_setting,
    read_settings,
    write_transaction,
)

_providers = ProviderRow.__table__
_settings = Setting.__table__
TEST_TIMEOUT_S = 10.0


def list_providers(engine: Engine, *, default_provider: str) -> list[dict[str, Any]]:
    with engine.connect() as connection:
        active = _active(connection, default_provider)
        rows = connection.execute(sa.select(_providers).order_by(_providers.c.name)).all()
    return [_public(row, active=active) for row in rows]


def get_provider(engine: Engine, *, name: str, default_provider: str) -> dict[str, Any]:
    with engine.connect() as connection:
        return _public(_row(connection, name), active=_active(connection, default_provider))


def create_provider(engine: Engine, *, fields: dict[str, Any], default_provider: str) -> dict[str, Any]:
    """Add a provider; 409 ``provider_exists`` when the name is taken."""
    row = _checked({"api_key_env": None, "default_model": None, "timeout_ms": None, "enabled": True,
                    "options": None, **fields})
    name = row["name"]
    now = now_ms()
    try:
        with write_transaction(engine) as connection:
            if _find(connection, name) is not None:
                raise _exists(name)
            connection.execute(sa.insert(_providers).values(**row, created_at=now, updated_at=now))
            bump_version(connection)
    except sa.exc.IntegrityError:  # created by someone else between our check and insert
        raise _exists(name) from None
    return get_provider(engine, name=name, default_provider=default_provider)


def update_provider(engine: Engine, *, name: str, changes: dict[str, Any], default_provider: str) -> dict[str, Any]:
    """Change some fields of a provider; disabling the active one is 409 ``provider_active``."""
    changes = {key: value for key, value in changes.items() if key != "name"}
    with write_transaction(engine) as connection:
        current = _row(connection, name, lock=True)
        merged = _checked({**current._asdict(), **changes})
        if not merged["enabled"] and current.enabled and name == _active(connection, default_provider, lock=True):
            raise Conflict(
                f"Provider {name!r} is the active provider: make another one active before disabling it.",
                param="enabled", code="provider_active",
            )
        values = {key: merged[key] for key in changes}
        if values:
            connection.execute(
                sa.update(_providers).where(_providers.c.name == name).values(**values, updated_at=now_ms())
            )
            bump_version(connection)
    return get_provider(engine, name=name, default_provider=default_provider)


def delete_provider(engine: Engine, *, name: str, default_provider: str) -> None:
    """Delete a provider (and drop it from the fallbacks); the active one is 409 ``provider_active``."""
    with write_transaction(engine) as connection:
        _row(connection, name, lock=True)
        if name == _active(connection, default_provider, lock=True):
            raise Conflict(
                f"Provider {name!r} is the active provider: make another one active before deleting it.",
                param="name", code="provider_active",
            )
        connection.execute(sa.delete(_providers).where(_providers.c.name == name))
        stored = read_settings(connection).get(FALLBACK_PROVIDERS)
        fallbacks = parse_fallbacks(stored[0] if stored else None)
        if name in fallbacks:
            put_setting(connection, FALLBACK_PROVIDERS, json.dumps([n for n in fallbacks if n != name]))
        bump_version(connection)


def test_provider(
    engine: Engine, *, name: str, default_timeout_s: float, timeout_s: float = TEST_TIMEOUT_S
) -> dict[str, Any]:
    """Ask the provider for its models now: how long it took, what it listed, or why it failed."""
    with engine.connect() as connection:
        config = config_from_row(_row(connection, name))
    provider = build_provider(config, environ=os.environ, default_timeout_s=default_timeout_s)
    started = time.perf_counter()
    models: list[str] = []
    error = None
    try:
        models = [model["id"] for model in provider.list_models(timeout_s=timeout_s)]
    except UpstreamError as exc:
        error = exc.message
    finally:
        provider.close()
    return {
        "provider": name, "ok": error is None, "latency_ms": int((time.perf_counter() - started) * 1000),
        "models": models, "error": error,
    }


def _checked(row: dict[str, Any]) -> dict[str, Any]:
    """The row's fields that depend on each other: base URL by type, options by type."""
    kind = PROVIDER_TYPES[row["type"]]
    if row["type"] == "mock":
        row["base_url"] = MOCK_URL
    elif not row.get("base_url") or row["base_url"] == MOCK_URL:
        raise InvalidRequest(
            f"Invalid 'base_url': a {row['type']} provider needs an http(s) URL.", param="base_url",
            code="missing_value" if not row.get("base_url") else "invalid_value",
        )
    unknown = sorted(set(row.get("options") or {}) - kind.option_names)
    if unknown:
        allowed = ", ".join(sorted(kind.option_names)) or "none"
        raise InvalidRequest(
            f"Invalid 'options': {unknown[0]!r} is not an option of {row['type']} providers (allowed: {allowed}).",
            param=f"options.{unknown[0]}", code="invalid_value",
        )
    for name, value in (row.get("options") or {}).items():
        problem = kind.option_problem(name, value)
        if problem:
            raise InvalidRequest(f"Invalid 'options.{name}': {problem}", param=f"options.{name}", code="invalid_value")
    row["options"] = row.get("options") or None
    return {column.key: row[column.key] for column in _providers.columns if column.key in row}


def _find(connection: Connection, name: str, *, lock: bool = False) -> Any:
    query = sa.select(_providers).where(_providers.c.name == name)
    return connection.execute(query.with_for_update() if lock else query).first()


def _row(connection: Connection, name: str, *, lock: bool = False) -> Any:
    row = _find(connection, name, lock=lock)
    if row is None:
        raise NotFound(f"Provider {name!r} does not exist.", param="name", code="provider_not_found")
    return row


def _active(connection: Connection, default_provider: str, *, lock: bool = False) -> str:
    query = sa.select(_settings.c.value).where(_settings.c.key == ACTIVE_PROVIDER)
    return connection.execute(query.with_for_update() if lock else query).scalar_one_or_none() or default_provider


def _exists(name: str) -> Conflict:
    return Conflict(f"A provider named {name!r} already exists.", param="name", code="provider_exists")


def _public(row: Any, *, active: str) -> dict[str, Any]:
    """A provider as the API shows it: the key's variable name and whether it is set, never the key.

    The URL is shown without credentials or query string, should the environment have seeded one with them.
    """
    return {
        "name": row.name, "type": row.type, "base_url": redact_url(row.base_url),
        "api_key_env": row.api_key_env,
        "api_key_configured": bool(row.api_key_env and os.environ.get(row.api_key_env)),
        "default_model": row.default_model, "timeout_ms": row.timeout_ms, "enabled": bool(row.enabled),
        "options": row.options or {}, "active": row.name == active,
        "created_at": row.created_at, "updated_at": row.updated_at,
    }

"""The model catalogue across providers, cached briefly so listing never hammers upstreams."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from app.errors import UpstreamError
from app.providers.base import Provider
from app.providers.registry import ProviderRegistry

log = logging.getLogger(__name__)
CACHE_SECONDS = 30.0

_cache: dict[tuple[str, str], tuple[float, list[dict[str, Any]]]] = {}
_lock = threading.Lock()


def list_models(registry: ProviderRegistry, *, provider: str | None = None) -> list[dict[str, Any]]:
    """One provider's models (its errors raised), or all of them (a failing one skipped)."""
    if provider is not None:
        chosen = registry.get(provider)
        return [_named(chosen, model) for model in _models(chosen)]
    listed: list[dict[str, Any]] = []
    for each in registry.all():
        try:
            models = _models(each)
        except UpstreamError as exc:
            log.warning("listing models of %s failed: %s", each.name, exc.message)
            continue
        if each.name == registry.active_name:
            listed.extend(models)
        listed.extend(_named(each, model) for model in models)
    return listed


def _named(provider: Provider, model: dict[str, Any]) -> dict[str, Any]:
    return {**model, "id": f"{provider.name}/{model['id']}", "owned_by": model.get("owned_by", provider.name)}


def _models(provider: Provider) -> list[dict[str, Any]]:
    key = (provider.name, provider.base_url)
    now = time.monotonic()
    with _lock:
        cached = _cache.get(key)
    if cached and now - cached[0] < CACHE_SECONDS:
        return cached[1]
    models = provider.list_models()
    with _lock:
        _cache[key] = (now, models)
    return models


def clear_cache() -> None:
    with _lock:
        _cache.clear()

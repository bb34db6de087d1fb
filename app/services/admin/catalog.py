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
LIST_TIMEOUT_S = 5.0  # one slow upstream must not hold the whole list for its chat timeout

# Per provider object (a changed provider is a new object): when listed, and the models or the error.
_cache: dict[str, tuple[Provider, float, list[dict[str, Any]] | UpstreamError]] = {}
_lock = threading.Lock()


def list_models(registry: ProviderRegistry, *, provider: str | None = None) -> list[dict[str, Any]]:
    """One provider's models (its errors raised), or all of them (a failing one skipped)."""
    ttl = registry.models_cache_s
    if provider is not None:
        chosen = registry.get(provider)
        return [_named(chosen, model) for model in _models(chosen, ttl=ttl)]
    listed: list[dict[str, Any]] = []
    for each in registry.all():
        try:
            models = _models(each, ttl=ttl)
        except UpstreamError as exc:
            log.warning("listing models of %s failed: %s", each.name, exc.message)
            continue
        if each.name == registry.active_name:
            listed.extend(models)
        listed.extend(_named(each, model) for model in models)
    return listed


def _named(provider: Provider, model: dict[str, Any]) -> dict[str, Any]:
    return {**model, "id": f"{provider.name}/{model['id']}", "owned_by": model.get("owned_by", provider.name)}


def _models(provider: Provider, *, ttl: float) -> list[dict[str, Any]]:
    """The provider's models; a failure is remembered as long as a success, then asked again."""
    now = time.monotonic()
    with _lock:
        cached = _cache.get(provider.name)
    if cached and cached[0] is provider and now - cached[1] < ttl:
        result = cached[2]
    else:
        try:
            result = provider.list_models(timeout_s=LIST_TIMEOUT_S)
        except UpstreamError as exc:
            result = exc
        with _lock:
            _cache[provider.name] = (provider, now, result)
    if isinstance(result, UpstreamError):
        raise result.with_traceback(None)  # the cached error, without earlier raises' frames
    return result


def clear_cache() -> None:
    with _lock:
        _cache.clear()


def known_model_ids(provider: Provider) -> tuple[str, ...] | None:
    """The model ids the cache holds for ``provider`` (none when its listing failed); None when never listed."""
    with _lock:
        cached = _cache.get(provider.name)
    if cached is None or cached[0] is not provider:
        return None
    if isinstance(cached[2], UpstreamError):
        return ()
    return tuple(str(model.get("id")) for model in cached[2] if isinstance(model, dict))


def remember(provider: Provider, models: list[dict[str, Any]] | UpstreamError) -> None:
    """A listing made elsewhere (the health probe): cached as if listed here."""
    with _lock:
        _cache[provider.name] = (provider, time.monotonic(), models)

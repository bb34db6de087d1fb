"""Bounded label values: endpoints by path, models only when a provider lists them (else ``other``)."""

from __future__ import annotations

import logging
import threading
import time

from app.providers.base import CLIENT_PATHS
from app.providers.registry import ProviderSource
from app.services.admin.catalog import known_model_ids

log = logging.getLogger(__name__)

OTHER = "other"
ENDPOINT_OF_PATH = {path: endpoint for endpoint, path in CLIENT_PATHS.items()}
REFRESH_S = 30.0
# A provider listing thousands of models still gives a bounded number of series.
MAX_MODELS_PER_PROVIDER = 200


def endpoint_label(path: str | None) -> str:
    """``chat``, ``embeddings``, ``completions``, ``responses``; anything else ``other``."""
    return ENDPOINT_OF_PATH.get(path or "", OTHER)


class ModelNames:
    """Which model strings may be label values: a provider's default model and the models it lists.

    Read from the catalogue's cache (never an upstream call on the hot path); a provider
    not listed yet is listed once in the background.
    """

    def __init__(self, source: ProviderSource | None, *, refresh_s: float = REFRESH_S) -> None:
        self.source = source
        self.refresh_s = refresh_s
        self._known: dict[str, frozenset[str]] = {}
        self._next = 0.0
        self._listing = False
        self._lock = threading.Lock()

    def label(self, provider: str | None, model: str | None) -> str:
        if not model or not provider:
            return OTHER
        if time.monotonic() >= self._next:
            self._refresh()
        known = self._known.get(provider)
        return model if known is not None and model in known else OTHER

    def provider_label(self, provider: str | None) -> str:
        """A configured provider's name (operators bound them), else ``other``."""
        if not provider:
            return OTHER
        if time.monotonic() >= self._next:
            self._refresh()
        return provider if provider in self._known else OTHER

    def _refresh(self) -> None:
        self._next = time.monotonic() + self.refresh_s
        if self.source is None:
            return
        try:
            registry = self.source.snapshot()
        except Exception:  # noqa: BLE001 - labels must never fail a call
            log.exception("reading the providers for metric labels failed")
            return
        known: dict[str, frozenset[str]] = {}
        unlisted = []
        for provider in registry.all():
            listed = known_model_ids(provider)
            if listed is None:
                unlisted.append(provider)
                listed = ()
            names = [provider.default_model] if provider.default_model else []
            known[provider.name] = frozenset([*names, *list(listed)[:MAX_MODELS_PER_PROVIDER]])
        self._known = known
        if unlisted:
            self._list_soon(unlisted, ttl=registry.models_cache_s)

    def _list_soon(self, providers: list, *, ttl: float) -> None:
        with self._lock:
            if self._listing:
                return
            self._listing = True

        def run() -> None:
            try:
                for provider in providers:
                    known_model_ids(provider, fetch_ttl=ttl)
            finally:
                self._listing = False
                self._next = 0.0  # read the new listings at the next call

        threading.Thread(target=run, name="metric-model-names", daemon=True).start()

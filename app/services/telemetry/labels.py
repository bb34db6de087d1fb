"""Bounded label values: endpoints by path, models only when a provider lists them (else ``other``)."""

from __future__ import annotations

import logging
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

    Read from the model catalogue's cache, filled by GET /v1/models and the health probes:
    never an upstream call of its own.
    """

    def __init__(self, source: ProviderSource | None, *, refresh_s: float = REFRESH_S) -> None:
        self.source = source
        self.refresh_s = refresh_s
        self._known: dict[str, frozenset[str]] = {}
        self._next = 0.0

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
        for provider in registry.all():
            listed = list(known_model_ids(provider) or ())[:MAX_MODELS_PER_PROVIDER]
            known[provider.name] = frozenset([provider.default_model, *listed] if provider.default_model else listed)
        self._known = known

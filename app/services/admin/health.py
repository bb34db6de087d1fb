"""Provider health for /health: probed in the background, cached, never on the request's path."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from app.errors import UpstreamError
from app.providers.base import Provider
from app.providers.http import redact_url
from app.providers.registry import ProviderRegistry
from app.services.admin import catalog

log = logging.getLogger(__name__)

PROBE_TTL_S = 15.0
PROBE_TIMEOUT_S = 3.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Probe:
    """What one provider said when last asked for its models."""

    provider: Provider
    status: str  # "ok" or "error"
    latency_ms: int
    error: str | None
    checked_at: float


class HealthMonitor:
    """Keeps the last probe of each provider; stale ones are refreshed by a background job."""

    def __init__(
        self, *, ttl_s: float = PROBE_TTL_S, timeout_s: float = PROBE_TIMEOUT_S,
        probed: Callable[..., None] | None = None,
    ) -> None:
        self.ttl_s = ttl_s
        self.probed = probed  # told (provider, up=, seconds=) after each probe: the metrics
        self.timeout_s = timeout_s
        self._probes: dict[str, Probe] = {}
        self._lock = threading.Lock()
        self._refreshing = False

    def report(self, registry: ProviderRegistry) -> dict[str, Any]:
        """The /health body from cached probes; starts a refresh if some are stale."""
        providers = registry.all()
        now = time.monotonic()
        stale = [p for p in providers if self._fresh(p, now) is None]
        if stale:
            self._refresh_soon(stale)
        entries = {}
        for provider in providers:
            probe = self._fresh(provider, now) or self._last(provider)
            entry: dict[str, Any] = {
                "status": probe.status if probe else "unknown",
                "base_url": redact_url(provider.base_url),
                "latency_ms": probe.latency_ms if probe else None,
            }
            if probe and probe.error:
                entry["error"] = probe.error
            entries[provider.name] = entry
        active = entries.get(registry.active_name)
        status = "degraded" if active is None or active["status"] == "error" else "ok"
        return {"status": status, "active_provider": registry.active_name, "providers": entries}

    def refresh(self, providers: list[Provider]) -> None:
        """Probe each provider now: list its models with a short timeout."""
        for provider in providers:
            started = time.perf_counter()
            error = None
            try:
                catalog.remember(provider, provider.list_models(timeout_s=self.timeout_s))
            except UpstreamError as exc:
                error = exc.message
            except Exception:  # noqa: BLE001 - a probe must never take the monitor down
                log.exception("probing %s failed", provider.name)
                error = "The probe failed inside the gateway."
            seconds = time.perf_counter() - started
            self._probes[provider.name] = Probe(
                provider=provider, status="error" if error else "ok", error=error,
                latency_ms=int(seconds * 1000), checked_at=time.monotonic(),
            )
            if self.probed is not None:
                self.probed(provider.name, up=error is None, seconds=seconds)

    def _last(self, provider: Provider) -> Probe | None:
        probe = self._probes.get(provider.name)
        return probe if probe is not None and probe.provider is provider else None

    def _fresh(self, provider: Provider, now: float) -> Probe | None:
        probe = self._last(provider)
        return probe if probe is not None and now - probe.checked_at < self.ttl_s else None

    def _refresh_soon(self, providers: list[Provider]) -> None:
        with self._lock:
            if self._refreshing:
                return
            self._refreshing = True

        def run() -> None:
            try:
                self.refresh(providers)
            finally:
                self._refreshing = False

        self._start(run)

    @staticmethod
    def _start(job: Callable[[], None]) -> None:
        """Run ``job`` in the background: a greenlet under gevent; /health answers from the cache meanwhile."""
        threading.Thread(target=job, name="health-probe", daemon=True).start()

"""What the app holds for its requests: settings, providers, the chat service, and its background work."""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app

from app.config import Settings
from app.providers.registry import ProviderSource
from app.services.admin.deferred_start import DeferredStart
from app.services.admin.health import HealthMonitor
from app.services.admin.live_registry import LiveRegistry
from app.services.audit.drainer import AuditDrainer
from app.services.proxy.chat import ChatService
from app.services.search.indexer import SearchIndexer
from app.services.telemetry.calls import Telemetry


@dataclass(slots=True, kw_only=True)
class Gateway:
    settings: Settings
    registry: ProviderSource  # .snapshot(): the providers of the moment
    chat: ChatService
    health: HealthMonitor
    telemetry: Telemetry
    drainer: AuditDrainer | None = None
    indexer: SearchIndexer | None = None  # content search's background indexer (SEARCH_INDEXER)
    deferred: DeferredStart | None = None  # the start-up work owed by a worker booted without its database

    def start_background(self) -> None:
        """Start the worker's background loops (gunicorn's post_worker_init): the provider watch, the audit
        drainer and sweep, the search indexer."""
        if isinstance(self.registry, LiveRegistry):
            self.registry.watch()
        if self.chat.audit is not None and self.drainer is None:
            self.drainer = AuditDrainer(self.chat.audit, grace_ms=self.settings.audit_sweep_grace_ms,
                                        ready=self.deferred)
            self.drainer.start()
        if self.indexer is not None and self.deferred is not None:
            self.deferred.then(self.indexer.start)  # once the database has its schema (the drainer's first work)
        elif self.indexer is not None:
            self.indexer.start()

    def stop_background(self) -> None:
        """At the worker's exit: write what is queued (to the journal if need be), replay, leave cleanly."""
        if isinstance(self.registry, LiveRegistry):
            self.registry.stop()
        if self.indexer is not None:
            self.indexer.stop()
        if self.chat.tracing is not None:
            self.chat.tracing.shutdown()  # the spans still queued are exported
        audit = self.chat.audit
        if audit is None:
            return
        audit.stop()
        if self.drainer is not None:
            self.drainer.stop()
        audit.journal.close()


def gateway() -> Gateway:
    """The gateway of the app handling the current request."""
    return current_app.extensions["gateway"]

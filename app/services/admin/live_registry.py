"""The providers of the database as this process last read them, re-read soon after any change.

A request never reads the database for routing: at most once per
``CHECK_INTERVAL_S`` a request finds the view stale and reads one value,
``config_version``; only when it changed are the providers and settings read
again. So a change made anywhere reaches every worker of every instance within
the interval plus one reload, with no restart. In a gunicorn worker the check
runs in a loop of its own (``watch``), so no request ever waits for it and a sick
database holds up none: requests route by the last view read. Elsewhere (the
CLI, tests) a request that finds the view stale checks inline; after a failed
check nobody asks again for a few seconds. Each version read is also saved on local
disk (``routing_snapshot``): a worker that boots while the database cannot be reached
routes by it until the database answers.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from contextlib import suppress

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from app.config import Settings
from app.db import get_engine
from app.db.limits import DatabaseTimeout, time_limit
from app.providers.base import Provider, ProviderConfig
from app.providers.registry import ProviderRegistry, build_provider
from app.services.admin.config_store import RoutingConfig, environment_config, read_config, read_version, seed
from app.services.admin.routing_snapshot import RoutingSnapshot, snapshot_path

log = logging.getLogger(__name__)
CHECK_INTERVAL_S = 0.5
CHECK_TIMEOUT_S = 2.0
RETRY_AFTER_FAILURE_S = 5.0


class LiveRegistry:
    """Hands out the current ProviderRegistry; rebuilds it when the database's version moves."""

    @classmethod
    def for_url(cls, url: str, *, settings: Settings) -> LiveRegistry:
        """Seed a database that never was, then read it."""
        engine = get_engine(url)
        seed(engine, settings)
        return cls(engine, settings=settings, snapshot=RoutingSnapshot(snapshot_path(settings.audit_journal_dir)))

    @classmethod
    def without_database(cls, url: str, *, settings: Settings) -> LiveRegistry:
        """The database cannot be reached: the providers last read from it (its snapshot), else the environment's."""
        snapshot = RoutingSnapshot(snapshot_path(settings.audit_journal_dir))
        return cls(get_engine(url), settings=settings, snapshot=snapshot,
                   start_from=snapshot.load() or environment_config(settings))

    def __init__(
        self,
        engine: Engine,
        *,
        settings: Settings,
        environ: Mapping[str, str] = os.environ,
        clock: Callable[[], float] = time.monotonic,
        interval_s: float = CHECK_INTERVAL_S,
        snapshot: RoutingSnapshot | None = None,
        start_from: RoutingConfig | None = None,
    ) -> None:
        """Read the database now; with ``start_from``, route by that until the database can be read."""
        self._engine = engine
        self._default_provider = settings.default_provider
        self._default_timeout_s = settings.request_timeout_s
        self._environ = environ
        self._clock = clock
        self._interval_s = interval_s
        self._lock = threading.Lock()
        self._version: str | None = None
        self._built: dict[str, tuple[ProviderConfig, Provider]] = {}
        self._current = ProviderRegistry([], active=settings.default_provider)
        self._checked_at = float("-inf")
        self._failing = False
        self._watching = False
        self._stop = threading.Event()
        self._snapshot = snapshot
        if start_from is None:
            self.reload()
        else:
            self._apply(start_from)
            self._failing = True  # said once at start-up; "readable again" follows
            self._checked_at = self._clock()

    def snapshot(self) -> ProviderRegistry:
        """The registry to route this request by: never older than the check interval (plus one check)."""
        if not self._watching and self._clock() - self._checked_at >= self._interval_s:
            self.check()
        return self._current

    def watch(self) -> None:
        """Check in a loop of this worker's own from now on (gunicorn's post_worker_init starts it)."""
        self._watching = True
        threading.Thread(target=self._watch, name="provider-watch", daemon=True).start()

    def stop(self) -> None:
        """End the watch loop (requests check inline again)."""
        self._stop.set()
        self._watching = False

    def _watch(self) -> None:
        while not self._stop.is_set():
            wait = self._checked_at + self._interval_s - self._clock()
            if wait > 0:
                self._stop.wait(wait)
            else:
                self.check()

    def check(self) -> None:
        """Read ``config_version``; reload when it moved. Another greenlet already checking: skip."""
        if not self._lock.acquire(blocking=False):
            return
        connection = None
        try:
            self._checked_at = self._clock()
            with time_limit(CHECK_TIMEOUT_S):
                connection = self._engine.connect()
                if read_version(connection) != self._version:
                    self._load(connection)
                connection.close()
            self._recovered()
        except (sa.exc.SQLAlchemyError, DatabaseTimeout) as exc:
            if connection is not None and not connection.closed:
                with suppress(sa.exc.SQLAlchemyError):
                    connection.invalidate()  # no rollback on a server that does not answer in time
            self._failed(exc)
        finally:
            self._lock.release()

    def reload(self) -> None:
        """Read everything now, whatever the version says."""
        with self._lock:
            self._checked_at = self._clock()
            with self._engine.connect() as connection:
                self._load(connection)

    @property
    def version(self) -> str | None:
        """The ``config_version`` routed by (None: the environment's providers, never read from a database)."""
        return self._version

    def _load(self, connection) -> None:
        config = read_config(connection, default_provider=self._default_provider)
        self._apply(config)
        if self._snapshot is not None:
            self._snapshot.save(config)

    def _apply(self, config: RoutingConfig) -> None:
        built: dict[str, tuple[ProviderConfig, Provider]] = {}
        for provider_config in config.providers:
            if not provider_config.enabled:
                continue
            previous = self._built.get(provider_config.name)
            if previous is not None and previous[0] == provider_config:
                built[provider_config.name] = previous  # keeps its pooled connections
                continue
            try:
                provider = build_provider(
                    provider_config, environ=self._environ, default_timeout_s=self._default_timeout_s
                )
            except ValueError as exc:  # a type this version does not know: leave it out
                log.error("provider %s left out: %s", provider_config.name, exc)
                continue
            built[provider_config.name] = (provider_config, provider)
        self._built = built
        self._current = ProviderRegistry(
            [provider for _, provider in built.values()],
            active=config.active, fallbacks=config.fallbacks, models_cache_s=config.models_cache_s,
        )
        self._version = config.version
        log.debug("providers loaded (version %s): %s", config.version, ", ".join(built))

    def _failed(self, exc: Exception) -> None:
        if not self._failing:
            log.warning("cannot read the provider settings (%s): routing by the last ones read", type(exc).__name__)
        self._failing = True
        self._checked_at = self._clock() + RETRY_AFTER_FAILURE_S - self._interval_s  # no request waits meanwhile

    def _recovered(self) -> None:
        if self._failing:
            log.warning("provider settings readable again")
        self._failing = False

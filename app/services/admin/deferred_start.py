"""A worker that boots while its database cannot be reached: it serves at once, and owes its start-up work.

Calls go to the audit journal and route by the providers last read (``routing_snapshot``), else
the environment's. Once the database answers, the audit drainer (before it replays anything)
runs the owed work exactly once: the schema check (creating a new database's schema), the seed
of the providers, the providers' reload. A schema behind the code, or a database that turned out
read-only, is logged and checked again; the calls wait in the journal meanwhile, never dropped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import sqlalchemy as sa

from app.config import Settings
from app.db import get_engine
from app.db.limits import DatabaseTimeout, time_limit
from app.db.reach import cannot_reach
from app.db.read_only import read_only_reason
from app.migrate import SchemaOutdated, ensure_schema, outage_line
from app.services.admin.config_store import seed
from app.services.admin.live_registry import LiveRegistry
from app.services.admin.routing_snapshot import snapshot_path

log = logging.getLogger(__name__)

PROBE_TIMEOUT_S = 2.0  # one connection and SELECT 1, before the owed work (a stalled server costs this, not more)


def live_providers(
    settings: Settings, *, outage: sa.exc.OperationalError | None
) -> tuple[LiveRegistry, DeferredStart | None]:
    """The providers to route by from boot, and the start-up work owed when the database could not be reached."""
    if outage is None:
        try:
            return LiveRegistry.for_url(settings.database_url, settings=settings), None
        except sa.exc.OperationalError as exc:  # gone between the schema check and the seed
            if not cannot_reach(exc):
                raise
            outage = exc
    registry = LiveRegistry.without_database(settings.database_url, settings=settings)
    snapshot = snapshot_path(settings.audit_journal_dir)
    log.warning(
        "DATABASE UNREACHABLE AT START-UP (%s): serving model calls anyway, recorded in the audit journal at %s, "
        "routed by %s; the schema check, the provider seed and the journal's replay follow once it answers",
        outage_line(outage), settings.audit_journal_dir,
        f"the providers last read ({snapshot})" if registry.version else "the environment's providers (no snapshot)",
    )
    return registry, DeferredStart(settings=settings, registry=registry)


class DeferredStart:
    """The start-up work still owed; called by the audit drainer until it returns True."""

    def __init__(self, *, settings: Settings, registry: LiveRegistry) -> None:
        self.settings = settings
        self.registry = registry
        self.done = False
        self._then: list[Callable[[], None]] = []
        self._said: str | None = None  # the last problem logged: each is logged once

    def then(self, action: Callable[[], None]) -> None:
        """Run ``action`` once the owed work is done (now, if it is)."""
        if self.done:
            action()
        else:
            self._then.append(action)

    def __call__(self) -> bool:
        """Try the owed work; True once it is done. The database still away, or not fit to take the calls: False."""
        if self.done:
            return True
        url = self.settings.database_url
        engine = get_engine(url)
        try:
            with time_limit(PROBE_TIMEOUT_S), engine.connect() as connection:
                connection.exec_driver_sql("SELECT 1")
            ensure_schema(url)
            reason = read_only_reason(engine)
            if reason is not None:
                self._say(f"the database is {reason}, and this gateway was started for a writable one: restart it "
                          "(it then serves history reads only), or point it at the primary")
                return False
            seed(engine, self.settings)
            self.registry.reload()
        except SchemaOutdated as exc:
            self._say(str(exc))
            return False
        except (sa.exc.OperationalError, DatabaseTimeout) as exc:
            if not cannot_reach(exc):
                self._say(f"the database refuses this gateway: {outage_line(exc)}")
            return False
        except sa.exc.SQLAlchemyError as exc:  # e.g. no privilege to create the schema: the operator's to fix
            self._say(f"the start-up work failed: {outage_line(exc)}")
            return False
        self.done = True
        log.warning("database reachable: schema checked, providers read from it; replaying the audit journal")
        for action in self._then:
            action()
        return True

    def _say(self, problem: str) -> None:
        if problem != self._said:
            log.error("DATABASE NOT READY (%s): calls stay in the audit journal, checked again every few seconds",
                      problem)
        self._said = problem

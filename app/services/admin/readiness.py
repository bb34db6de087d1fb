"""Is this process ready for traffic: can it route a call (an active provider) and record it (database or journal)."""

from __future__ import annotations

from typing import Any

from app.errors import GatewayError
from app.providers.registry import ProviderSource
from app.services.audit.log import AuditLog


def readiness(*, registry: ProviderSource, audit: AuditLog | None) -> tuple[bool, dict[str, Any]]:
    """(ready, what each check found); without persistence there is nothing to record, so only routing counts.

    Recording needs the database or, while it is unusable, the journal: both unusable is unready.
    """
    checks: dict[str, Any] = {}
    try:
        checks["active_provider"] = registry.snapshot().active.name
        routes = True
    except GatewayError as exc:
        checks["active_provider"] = None
        checks["error"] = exc.message
        routes = False
    if audit is None:
        checks["recording"] = "off"
        return routes, checks
    database = audit.healthy
    journal = audit.journal.usable()
    checks["database"] = "ok" if database else "down"
    checks["journal"] = "ok" if journal else "unusable"
    return routes and (database or journal), checks

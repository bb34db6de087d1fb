"""The edge of a read-only instance (a hot standby's gateway): reads are served, whatever would write is refused.

Refused before the view runs, with one clear error (app.errors.ReadOnlyInstance, 503), rather
than a view half done and PostgreSQL's "cannot execute INSERT in a read-only transaction".
"""

from __future__ import annotations

from flask import request

from app.errors import ReadOnlyInstance

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# POSTs that write nothing: the dashboard's sign-in and sign-out (a cookie), a provider's test call.
WRITELESS_ENDPOINTS = frozenset({"ui.login_post", "ui.logout", "providers.test_provider"})


def refuse_writes() -> None:
    """``before_request``: any method but a read is refused (an unknown path is left to routing's 404/405)."""
    if request.method in READ_METHODS or request.url_rule is None or request.endpoint in WRITELESS_ENDPOINTS:
        return
    raise ReadOnlyInstance()

"""Who may use the management endpoints: the ADMIN_API_KEY bearer, else loopback clients only."""

from __future__ import annotations

import hmac
import ipaddress

from flask import request

from app.errors import Forbidden, Unauthorized
from app.extensions import gateway


def require_admin() -> None:
    """A ``before_request`` for management blueprints.

    With ADMIN_API_KEY set, ``Authorization: Bearer <key>`` is required (compared
    in constant time); without it only clients on this host are served. Behind
    a reverse proxy every client looks local: set ADMIN_API_KEY there.
    """
    key = gateway().settings.admin_api_key
    if key:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), key.encode()):
            raise Unauthorized("Send the admin key as 'Authorization: Bearer <ADMIN_API_KEY>'.")
        return
    if not _loopback(request.remote_addr):
        raise Forbidden(
            "Management endpoints serve this host only; set ADMIN_API_KEY to manage the gateway remotely.",
            code="admin_local_only",
        )


def _loopback(address: str | None) -> bool:
    try:
        return address is not None and ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False

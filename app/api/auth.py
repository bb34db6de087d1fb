"""Who may use the history and management APIs: the ADMIN_API_KEY bearer, else loopback clients only."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress

from flask import request

from app.errors import Forbidden, Unauthorized
from app.extensions import gateway


def require_admin() -> None:
    """A ``before_request`` for the history and management blueprints.

    With ADMIN_API_KEY set, ``Authorization: Bearer <key>`` is required (compared
    in constant time); without it only clients on this host are served. Behind
    a reverse proxy every client looks local: set ADMIN_API_KEY there.
    """
    key = gateway().settings.admin_api_key
    if key is None:
        if not _loopback(request.remote_addr):
            raise Forbidden(
                "This API answers clients on this host only: set ADMIN_API_KEY to open it to others.",
                code="loopback_only",
            )
        return
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    # Digests first: compare_digest is constant-time only for inputs of equal length.
    given = hashlib.sha256(token.strip().encode()).digest()
    if scheme.lower() != "bearer" or not hmac.compare_digest(given, hashlib.sha256(key.encode()).digest()):
        raise Unauthorized("Missing or wrong admin key: send Authorization: Bearer <ADMIN_API_KEY>.")


def loopback_client() -> bool:
    """Whether the current request comes from this host."""
    return _loopback(request.remote_addr)


def _loopback(address: str | None) -> bool:
    try:
        return address is not None and ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False

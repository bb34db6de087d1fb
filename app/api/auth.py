"""Who may use the history and management APIs: the ADMIN_API_KEY bearer, else loopback clients only."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from urllib.parse import urlsplit

from flask import request

from app.errors import Forbidden, Unauthorized
from app.extensions import gateway


def require_admin() -> None:
    """A ``before_request`` for the history and management blueprints.

    With ADMIN_API_KEY set, ``Authorization: Bearer <key>`` is required (compared
    in constant time); without it only clients on this host are served, and only
    when they address it by a loopback name (see ``loopback_client``). Behind a
    reverse proxy every client looks local: set ADMIN_API_KEY there.
    """
    key = gateway().settings.admin_api_key
    if key is None:
        if not _loopback(request.remote_addr):
            raise Forbidden(
                "This API answers clients on this host only: set ADMIN_API_KEY to open it to others.",
                code="loopback_only",
            )
        if not _loopback_host(request.host):
            raise Forbidden(
                f"Without ADMIN_API_KEY this API answers requests addressed to localhost, 127.0.0.1 or [::1] "
                f"only, not to {request.host!r}: set ADMIN_API_KEY to serve it under another name.",
                code="loopback_only",
            )
        return
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    # Digests first: compare_digest is constant-time only for inputs of equal length.
    given = hashlib.sha256(token.strip().encode()).digest()
    if scheme.lower() != "bearer" or not hmac.compare_digest(given, hashlib.sha256(key.encode()).digest()):
        raise Unauthorized("Missing or wrong admin key: send Authorization: Bearer <ADMIN_API_KEY>.")


def loopback_client() -> bool:
    """Whether the current request comes from this host and addresses it by a loopback name.

    The name matters too: a web page whose domain an attacker points at 127.0.0.1 after it
    loaded (DNS rebinding) reaches this host from the user's own browser, as a loopback client,
    but its requests carry that domain in their ``Host``.
    """
    return _loopback(request.remote_addr) and _loopback_host(request.host)


def _loopback(address: str | None) -> bool:
    try:
        return address is not None and ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def _loopback_host(host: str) -> bool:
    """``localhost`` (or a name under it) or a loopback address, with or without a port."""
    try:
        name = (urlsplit(f"//{host}").hostname or "").rstrip(".")
    except ValueError:  # a malformed Host, such as an unclosed "[::1"
        return False
    return name == "localhost" or name.endswith(".localhost") or _loopback(name)

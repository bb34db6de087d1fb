"""Who may see the dashboard, and CSRF on its actions.

With ADMIN_API_KEY set, /ui/login takes the key and sets a signed session cookie (HttpOnly,
SameSite=Strict, Secure over HTTPS, 12 hours); without a key, loopback clients only, like the
API. Every form carries a token equal to a cookie of its own (double submit), checked on each
POST along with the request's origin.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from urllib.parse import urlsplit

from flask import abort, g, redirect, request, url_for
from itsdangerous import BadSignature, TimestampSigner
from werkzeug.wrappers import Response

from app.api.auth import loopback_client
from app.extensions import gateway

SESSION_COOKIE = "pr_ui_session"
CSRF_COOKIE = "pr_ui_csrf"
CSRF_FIELD = "csrf_token"
SESSION_MAX_AGE_S = 12 * 3600
OPEN_ENDPOINTS = {"ui.static", "ui.login", "ui.login_post"}


def _signer() -> TimestampSigner:
    settings = gateway().settings
    secret = settings.ui_secret_key or hmac.new(
        (settings.admin_api_key or "").encode(), b"provider-router dashboard session", hashlib.sha256
    ).hexdigest()
    return TimestampSigner(secret, salt="ui-session")


def key_required() -> bool:
    return gateway().settings.admin_api_key is not None


def key_matches(given: str) -> bool:
    key = gateway().settings.admin_api_key or ""
    return hmac.compare_digest(hashlib.sha256(given.encode()).digest(), hashlib.sha256(key.encode()).digest())


def signed_in() -> bool:
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return False
    try:
        _signer().unsign(token, max_age=SESSION_MAX_AGE_S)
    except BadSignature:
        return False
    return True


def guard() -> Response | None:
    """``before_request``: the login page for strangers, 403 for remote clients without a key."""
    if request.endpoint in OPEN_ENDPOINTS:
        return None
    if key_required():
        if not signed_in():
            return redirect(url_for("ui.login", next=request.full_path if request.method == "GET" else None))
    elif not loopback_client():
        abort(403, "Without ADMIN_API_KEY the dashboard answers clients on this host that address it as "
                   "localhost, 127.0.0.1 or [::1] only: set ADMIN_API_KEY to open it to others.")
    if request.method == "POST":
        check_csrf()
    return None


def csrf_token() -> str:
    """This browser's token (made on first use and set as a cookie after the response)."""
    if "ui_csrf" not in g:
        g.ui_csrf = request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(32)
    return g.ui_csrf


def check_csrf() -> None:
    sent = request.form.get(CSRF_FIELD, "")
    cookie = request.cookies.get(CSRF_COOKIE, "")
    if not cookie or not hmac.compare_digest(sent.encode(), cookie.encode()) or not _same_origin():
        abort(403, "The form's security token is missing or stale: reload the page and try again.")


def _same_origin() -> bool:
    origin = request.headers.get("Origin") or request.headers.get("Referer")
    if not origin or origin == "null":
        return request.headers.get("Sec-Fetch-Site", "same-origin") == "same-origin"
    return urlsplit(origin).netloc == request.host


def sign_in(response: Response) -> Response:
    _set(response, SESSION_COOKIE, _signer().sign(secrets.token_hex(8)).decode(), max_age=SESSION_MAX_AGE_S)
    return response


def sign_out(response: Response) -> Response:
    response.delete_cookie(SESSION_COOKIE, path="/ui", httponly=True, samesite="Strict", secure=request.is_secure)
    return response


def set_cookies(response: Response) -> Response:
    """``after_request``: the CSRF cookie, when this response handed out a new token."""
    token = g.get("ui_csrf")
    if token is not None and request.cookies.get(CSRF_COOKIE) != token:
        _set(response, CSRF_COOKIE, token, max_age=None)
    return response


def _set(response: Response, name: str, value: str, *, max_age: int | None) -> None:
    response.set_cookie(
        name, value, max_age=max_age, path="/ui", httponly=True, samesite="Strict", secure=request.is_secure
    )


def safe_next(target: str | None) -> str:
    """Where to go after signing in: a dashboard path only (never another site)."""
    if target and target.startswith("/ui") and not target.startswith("//") and "\\" not in target:
        return target
    return url_for("ui.overview")

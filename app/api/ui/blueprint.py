"""The dashboard's blueprint: /ui, its templates and static files, its guard and security headers."""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, render_template
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from app.api.ui import auth, format
from app.errors import GatewayError
from app.extensions import gateway

HERE = Path(__file__).resolve().parent
# No inline script or style at all: a logged prompt holding markup can never run.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "font-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)

bp = Blueprint(
    "ui", __name__, url_prefix="/ui", template_folder=str(HERE / "templates"),
    static_folder=str(HERE / "static"), static_url_path="/static",
)
bp.before_request(auth.guard)


@bp.after_request
def _headers(response: Response) -> Response:
    auth.set_cookies(response)
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["X-Frame-Options"] = "DENY"
    if response.mimetype == "text/html":
        response.headers["Cache-Control"] = "no-store"
    return response


@bp.app_context_processor
def _context() -> dict:
    return {"csrf_token": auth.csrf_token, "key_required": auth.key_required,
            "read_only": lambda: gateway().settings.read_only}


for name, function in format.FILTERS.items():
    bp.add_app_template_filter(function, name)


@bp.errorhandler(GatewayError)
def _gateway_error(error: GatewayError):
    return render_template("ui/error.html", status=error.status, message=error.message), error.status


@bp.errorhandler(HTTPException)
def _http_error(error: HTTPException):
    status = error.code or 500
    return render_template("ui/error.html", status=status, message=error.description), status

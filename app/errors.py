"""One error tree, rendered the way OpenAI renders errors: {"error": {message, type, param, code}}."""

from __future__ import annotations

import logging
from typing import Any

import sqlalchemy as sa
from flask import Flask, Response, current_app, jsonify
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)


class GatewayError(Exception):
    """An error the client should see, with its HTTP status, type and code."""

    status = 500
    type = "api_error"
    code = "internal_error"
    headers: dict[str, str] = {}

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status

    def body(self) -> dict[str, Any]:
        return error_body(self.message, type=self.type, param=self.param, code=self.code)


class InvalidRequest(GatewayError):
    status = 400
    type = "invalid_request_error"
    code = "invalid_request"


class NotFound(GatewayError):
    status = 404
    type = "invalid_request_error"
    code = "not_found"


class Unauthorized(GatewayError):
    status = 401
    type = "authentication_error"
    code = "invalid_api_key"
    headers = {"WWW-Authenticate": "Bearer"}


class Forbidden(GatewayError):
    status = 403
    type = "permission_error"
    code = "forbidden"


class TooManyRequests(GatewayError):
    """A gateway key over its budget (``budget_exceeded``) or its rate (``rate_limit_exceeded``)."""

    status = 429
    type = "rate_limit_error"
    code = "rate_limit_exceeded"

    def __init__(self, message: str, *, code: str, retry_after_s: int) -> None:
        super().__init__(message, code=code)
        self.retry_after = str(max(1, retry_after_s))


class Conflict(GatewayError):
    status = 409
    type = "invalid_request_error"
    code = "conflict"


class AuditUnavailable(GatewayError):
    """AUDIT_FAILURE_MODE=closed: the call cannot be recorded anywhere, so it is not made."""

    status = 503
    type = "api_error"
    code = "audit_unavailable"
    headers = {"Retry-After": "5"}


class ReadOnlyInstance(GatewayError):
    """This instance serves a read-only database (a hot standby): what would write belongs on the primary's."""

    status = 503
    type = "api_error"
    code = "read_only_instance"

    def __init__(self, message: str = "") -> None:
        super().__init__(message or (
            "This gateway instance is read-only (its database is a replica or read-only): it serves history "
            "and dashboard reads only. Send model calls and changes to a gateway on the primary database."
        ))


class StreamEnded(GatewayError):
    """The gateway is shutting down (SIGTERM, a recycled worker) and ended a stream that was still running."""

    status = 503
    type = "api_error"
    code = "gateway_shutting_down"


class UpstreamError(GatewayError):
    """The upstream provider failed; subclasses say how."""

    status = 502
    type = "upstream_error"
    code = "upstream_error"


class UpstreamUnreachable(UpstreamError):
    code = "upstream_unreachable"


class UpstreamTimeout(UpstreamError):
    status = 504
    code = "upstream_timeout"


class UpstreamCut(UpstreamError):
    """The upstream ended a stream early: dropped connection or no terminator."""

    code = "upstream_stream_cut"


class UpstreamHTTPError(UpstreamError):
    """The upstream answered 4xx/5xx: passed through with its status and error body."""

    def __init__(self, message: str, *, status: int, payload: dict[str, Any] | None) -> None:
        super().__init__(message, status=status, code=f"upstream_http_{status}")
        self.payload = payload
        self.retry_after: str | None = None

    def body(self) -> dict[str, Any]:
        if isinstance(self.payload, dict) and isinstance(self.payload.get("error"), dict | str):
            return self.payload
        return super().body()


def error_body(
    message: str, *, type: str, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def error_response(error: GatewayError) -> Response:
    response = jsonify(error.body())
    response.status_code = error.status
    response.headers.update(error.headers)
    retry_after = getattr(error, "retry_after", None)
    if retry_after:
        response.headers["Retry-After"] = retry_after
    return response


READ_ONLY_SQLSTATE = "25006"  # read_only_sql_transaction: a standby, or default_transaction_read_only
CANCELLED_BY_RECOVERY_SQLSTATE = "40001"  # how a hot standby cancels a query in the way of replay

_HTTP_CODES = {
    400: ("invalid_request_error", "bad_request"),
    401: ("authentication_error", "invalid_api_key"),
    403: ("permission_error", "forbidden"),
    404: ("invalid_request_error", "not_found"),
    405: ("invalid_request_error", "method_not_allowed"),
    413: ("invalid_request_error", "request_too_large"),
    415: ("invalid_request_error", "unsupported_media_type"),
    422: ("invalid_request_error", "invalid_request"),
}


def register_error_handlers(app: Flask) -> None:
    """Render every error, ours or Werkzeug's, in the OpenAI shape; never a traceback."""

    @app.errorhandler(GatewayError)
    def _gateway_error(error: GatewayError) -> Response:
        return error_response(error)

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException) -> Response:
        status = error.code or 500
        kind, code = _HTTP_CODES.get(status, ("api_error", "http_error"))
        response = jsonify(error_body(error.description or error.name, type=kind, code=code))
        response.status_code = status
        if status == 405 and getattr(error, "valid_methods", None):
            response.headers["Allow"] = ", ".join(error.valid_methods)
        return response

    @app.errorhandler(sa.exc.OperationalError)
    @app.errorhandler(sa.exc.InterfaceError)
    def _database_unavailable(error: sa.exc.DBAPIError) -> Response:
        log.warning("database unavailable: %s", error.orig or error)
        gateway = current_app.extensions.get("gateway")
        read_only = gateway is not None and gateway.settings.read_only
        # A query cancelled (40001), or a connection idle in its transaction ended, by the standby's replay.
        cancelled = (getattr(error.orig, "sqlstate", None) == CANCELLED_BY_RECOVERY_SQLSTATE
                     or "conflict with recovery" in str(error.orig))
        if cancelled:
            # A hot standby cancels a long read when replaying the primary's changes would wait too long for it.
            message = ("The replica cancelled this read to keep up with the primary (a conflict with recovery); "
                       "try again. hot_standby_feedback=on on the standby avoids it.")
        else:
            message = "The gateway's database is unavailable right now; try again shortly." + (
                "" if read_only else " Model calls are still served and recorded.")
        response = jsonify(error_body(message, type="api_error", code="database_unavailable"))
        response.status_code = 503
        response.headers["Retry-After"] = "1" if cancelled else "5"
        return response

    @app.errorhandler(sa.exc.InternalError)
    def _read_only_database(error: sa.exc.InternalError) -> Response:
        # A write that reached a read-only database anyway (turned read-only under a running gateway).
        if getattr(error.orig, "sqlstate", None) != READ_ONLY_SQLSTATE:
            return _unexpected(error)
        log.warning("a write reached a read-only database: %s", error.orig)
        return error_response(ReadOnlyInstance())

    @app.errorhandler(Exception)
    def _unexpected(error: Exception) -> Response:
        log.exception("unhandled error")
        response = jsonify(
            error_body("The gateway hit an internal error.", type="api_error", code="internal_error")
        )
        response.status_code = 500
        return response

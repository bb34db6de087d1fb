"""flask-smorest for the history API: one OpenAPI document, OpenAI-shaped errors, access control.

The schemas that validate each query are the ones ``/openapi.json`` documents, so the two
cannot drift. flask-smorest's own error handler is left out: ``app.errors`` renders every
error, and invalid parameters become our 400 with the parameter and its code.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any, NoReturn

from flask import Flask, g, request
from flask_smorest import Api, Blueprint
from marshmallow import RAISE, Schema, ValidationError
from sqlalchemy.orm import Session
from webargs.flaskparser import FlaskParser
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.routing import BaseConverter

from app.api.auth import require_admin
from app.db import get_engine
from app.errors import InvalidRequest
from app.extensions import gateway
from app.schemas.common import PRINTABLE_PATTERN, ErrorSchema, error_code
from app.services.history.records import RECORD_ID_PATTERN
from app.services.proxy.sessions import MAX_SESSION_ID

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024  # the history endpoints take no body
SECURITY_SCHEME = "adminKey"


class SessionIdConverter(BaseConverter):
    """A session id: may hold slashes (ids come from clients), but not end in /stats or /requests."""

    regex = r"[^/](?:[^/]|/(?!(?:stats|requests)$))*"
    part_isolating = False


class RecordIdConverter(BaseConverter):
    """A request or response id: the integer id or the UUID (checked in the view, for a 400).

    Not an id of OpenAI's form (``resp_...``): GET /v1/responses/resp_... is the Responses API's.
    """

    regex = r"(?!resp_)[^/]+"


def _session_id_doc(_converter: BaseConverter) -> dict[str, Any]:
    return {"type": "string", "minLength": 1, "maxLength": MAX_SESSION_ID, "pattern": PRINTABLE_PATTERN}


def _record_id_doc(_converter: BaseConverter) -> dict[str, Any]:
    return {"type": "string", "pattern": f"^{RECORD_ID_PATTERN}$", "description": "An integer id or a UUID."}


class HistoryApi(Api):
    ERROR_SCHEMA = ErrorSchema

    def _register_error_handlers(self) -> None:
        """app.errors already renders every error in the OpenAI shape."""


class _QueryParser(FlaskParser):
    DEFAULT_VALIDATION_STATUS = 400
    DEFAULT_UNKNOWN_BY_LOCATION = {**FlaskParser.DEFAULT_UNKNOWN_BY_LOCATION, "query": RAISE}

    def handle_error(self, error: ValidationError, req, schema: Schema, **_: Any) -> NoReturn:
        param, message = _first_error(error.messages)
        raise InvalidRequest(f"Invalid '{param}': {message}", param=param, code=error_code(param, schema))


def _first_error(messages: Any) -> tuple[str, str]:
    # {"query": {"limit": ["Must be ..."]}}: the location, then the parameter.
    errors = next(iter(messages.values())) if isinstance(messages, dict) else {}
    if isinstance(errors, dict) and errors:
        param, problems = next(iter(errors.items()))
        while isinstance(problems, dict):
            problems = next(iter(problems.values()))
        return str(param), str(problems[0] if isinstance(problems, list) else problems)
    return "query", "Invalid query."


class HistoryBlueprint(Blueprint):
    """A blueprint of history endpoints: guarded, and documented with their error responses."""

    ARGUMENTS_PARSER = _QueryParser()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.before_request(_guard)

    def query(self, schema: type[Schema]):
        """Validate the query string with ``schema``; the view gets what it loads."""
        return self.arguments(schema, location="query", error_status_code=400)

    def route(self, rule: str, *, errors: tuple[int, ...] = (), **options: Any):
        """Register a view; ``errors`` lists its error statuses besides 401 and 403."""
        register = super().route(rule, **options)

        def decorator(func):
            for status in sorted({HTTPStatus.UNAUTHORIZED, HTTPStatus.FORBIDDEN, *errors}):
                func = self.alt_response(status, response=HTTPStatus(status).name)(func)
            func = self.doc(security=[{SECURITY_SCHEME: []}])(func)
            return register(func)

        return decorator


def _guard() -> None:
    """Bodies are bounded, then the admin check (app.api.auth) applies."""
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise RequestEntityTooLarge(f"The history API takes no request body over {MAX_BODY_BYTES} bytes.")
    require_admin()


def db() -> Session:
    """This request's ORM session on the gateway's database (closed when the request ends)."""
    if "history_db" not in g:
        g.history_db = Session(get_engine(gateway().settings.database_url), expire_on_commit=False)
    return g.history_db


def _close_db(_exc: BaseException | None) -> None:
    session = g.pop("history_db", None)
    if session is not None:
        session.close()


def create_api(app: Flask) -> HistoryApi:
    """flask-smorest on ``app``: /openapi.json and the /docs page."""
    app.config.update(
        API_TITLE="provider-router history API",
        API_VERSION="1",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/",
        OPENAPI_JSON_PATH="openapi.json",
        OPENAPI_SWAGGER_UI_PATH="docs",
        OPENAPI_SWAGGER_UI_URL="https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/",
    )
    app.url_map.converters.update(session_id=SessionIdConverter, record_id=RecordIdConverter)
    api = HistoryApi(app)
    api.register_converter(SessionIdConverter, _session_id_doc)
    api.register_converter(RecordIdConverter, _record_id_doc)
    api.spec.components.security_scheme(
        SECURITY_SCHEME,
        {"type": "http", "scheme": "bearer",
         "description": "ADMIN_API_KEY. Without one set, only loopback clients are answered."},
    )
    app.teardown_appcontext(_close_db)
    return api

"""OpenAI's own GET and DELETE /v1/responses/{resp_id}, for the responses the gateway answered.

The history API owns GET /v1/responses and GET /v1/responses/<id> for an integer id or a UUID;
an id of OpenAI's form (``resp_...``) comes here instead. Open to whoever may call the model API.
"""

from __future__ import annotations

from flask import Blueprint
from sqlalchemy.orm import Session
from werkzeug.routing import BaseConverter

from app.db import get_engine
from app.extensions import gateway
from app.services.history import responses_api

bp = Blueprint("responses_api", __name__, url_prefix="/v1")


class ResponseIdConverter(BaseConverter):
    """An id of OpenAI's form: resp_ and letters or digits."""

    regex = r"resp_[A-Za-z0-9_-]{1,200}"


def _session() -> Session:
    return Session(get_engine(gateway().settings.database_url))


@bp.record_once
def _converter(state) -> None:
    state.app.url_map.converters["response_id"] = ResponseIdConverter


@bp.get("/responses/<response_id:response_id>")
def get_response(response_id: str) -> dict:
    with _session() as db:
        return responses_api.get_response(db, response_id)


@bp.get("/responses/<response_id:response_id>/input_items")
def list_input_items(response_id: str) -> dict:
    with _session() as db:
        return responses_api.list_input_items(db, response_id)


@bp.delete("/responses/<response_id:response_id>")
def delete_response(response_id: str) -> dict:
    with _session() as db, db.begin():
        return responses_api.delete_response(db, response_id)

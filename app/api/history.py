"""/v1/requests and /v1/responses: the audit trail, filtered and paged."""

from __future__ import annotations

from app.api.rest import HistoryBlueprint, db
from app.errors import InvalidRequest
from app.schemas.history import (
    RequestDeletedSchema,
    RequestListArgs,
    RequestListSchema,
    RequestSchema,
    ResponseListArgs,
    ResponseListSchema,
    ResponseSchema,
)
from app.services.history import records

blp = HistoryBlueprint("history", __name__, url_prefix="/v1", description="Requests and responses.")


def record_id(text: str) -> records.RecordId:
    try:
        return records.parse_record_id(text)
    except ValueError:
        raise InvalidRequest("An id is an integer id or a UUID.", param="id", code="invalid_id") from None


@blp.route("/requests", methods=["GET"])
@blp.query(RequestListArgs)
@blp.response(200, RequestListSchema)
def list_requests(args):
    """List requests, newest first, each with a summary of its response."""
    return records.list_requests(db(), filters=args["filters"], page=args["page"], bodies=args["bodies"])


@blp.route("/requests/<record_id:id>", methods=["GET"], errors=(400, 404))
@blp.response(200, RequestSchema)
def get_request(id: str):
    """A request by integer id or UUID, with its bodies."""
    return records.get_request(db(), record_id(id))


@blp.route("/requests/<record_id:id>", methods=["DELETE"], errors=(400, 404))
@blp.response(200, RequestDeletedSchema)
def delete_request(id: str):
    """Delete a request and its response."""
    deleted = records.delete_request(db(), record_id(id))
    db().commit()
    return deleted


@blp.route("/requests/<record_id:id>/response", methods=["GET"], errors=(400, 404))
@blp.response(200, ResponseSchema)
def get_request_response(id: str):
    """The response to a request."""
    return records.get_request_response(db(), record_id(id))


@blp.route("/responses", methods=["GET"])
@blp.query(ResponseListArgs)
@blp.response(200, ResponseListSchema)
def list_responses(args):
    """List responses, newest first."""
    return records.list_responses(db(), filters=args["filters"], page=args["page"], bodies=args["bodies"])


@blp.route("/responses/<record_id:id>", methods=["GET"], errors=(400, 404))
@blp.response(200, ResponseSchema)
def get_response(id: str):
    """A response by integer id or UUID."""
    return records.get_response(db(), record_id(id))

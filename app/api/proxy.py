"""The proxy itself: POST /v1/chat/completions, /v1/embeddings, /v1/completions and /v1/responses."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Blueprint, Response, g, request

from app.extensions import gateway
from app.schemas.chat import parse_chat_request
from app.schemas.model_calls import parse_completions_request, parse_embeddings_request, parse_responses_request
from app.services.keys.tags import header_tags
from app.services.proxy.sessions import SESSION_HEADER

bp = Blueprint("proxy", __name__, url_prefix="/v1")

REQUEST_ID_HEADER = "X-Request-Id"


@bp.post("/chat/completions")
def create_chat_completion() -> Response | tuple:
    return _serve("chat", parse_chat_request)


@bp.post("/embeddings")
def create_embeddings() -> Response | tuple:
    return _serve("embeddings", parse_embeddings_request)


@bp.post("/completions")
def create_completion() -> Response | tuple:
    return _serve("completions", parse_completions_request)


@bp.post("/responses")
def create_response() -> Response | tuple:
    return _serve("responses", parse_responses_request)


def _serve(endpoint: str, parse: Callable[[bytes], dict[str, Any]]) -> Response | tuple:
    raw = request.get_data(cache=False)
    body = parse(raw)
    chat = gateway().chat
    exchange = chat.begin(
        body=body,
        raw_body=raw.decode("utf-8", errors="replace"),
        session_header=request.headers.get(SESSION_HEADER),
        method=request.method,
        path=request.path,
        endpoint=endpoint,
        authorization=request.headers.get("Authorization"),
        tag_headers=header_tags(request.headers.items()),
        trace_headers=request.headers,  # read only while tracing: traceparent, tracestate
    )
    g.exchange = exchange
    headers = {REQUEST_ID_HEADER: exchange.request_id} if exchange.request_id else {}
    if not exchange.stream:
        completion = chat.complete(exchange)
        if completion.text is not None:  # relayed byte for byte
            return Response(completion.text, mimetype="application/json", headers=headers)
        return completion.body, 200, headers
    response = Response(
        chat.stream(exchange),
        mimetype="text/event-stream",
        headers={**headers, "Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
    # If the server drops the response before iterating it, the row is still written.
    response.call_on_close(lambda: chat.abandon(exchange))
    return response


@bp.after_request
def record_exchange(response: Response) -> Response:
    """The choke point for non-streaming calls: success or error, one response row."""
    exchange = g.pop("exchange", None)
    if exchange is not None and not exchange.streaming:
        if exchange.completion is not None and response.status_code < 400:
            body = exchange.completion.body
        else:
            body = response.get_json(silent=True)
        gateway().chat.finish_response(exchange, status_code=response.status_code, body=body)
    return response

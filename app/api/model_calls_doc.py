"""The model calls in /openapi.json: the proxied OpenAI endpoints, documented beside the history API.

Their bodies are OpenAI's; the document names what the gateway checks (a 400 names the field)
and lets every other field through, as the gateway does. They are open to whoever may call
the model API, not guarded by the admin key.
"""

from __future__ import annotations

from typing import Any

from apispec import APISpec
from flask import Flask

from app.schemas.chat import ChatCompletionRequestSchema
from app.schemas.model_calls import CompletionsRequestSchema, EmbeddingsRequestSchema, ResponsesRequestSchema

TAG = "model calls"
_ERRORS = {
    "400": "Bad input: the error names the field.",
    "404": "No such model or provider.",
    "429": "The upstream's rate limit (passed on).",
    "502": "The upstream failed or answered nonsense.",
    "503": "No provider can take the call, or the audit trail is unusable in closed mode.",
    "504": "The upstream timed out.",
}
_CREATE = {  # by view: proxy.create_chat_completion serves /v1/chat/completions
    "proxy.create_chat_completion": ("Create a chat completion", ChatCompletionRequestSchema,
                             "The completion, or a stream of chunks (`stream: true`) ending in `[DONE]`."),
    "proxy.create_embeddings": ("Create embeddings", EmbeddingsRequestSchema,
                       "The vectors (the record keeps their count and dimensions)."),
    "proxy.create_completion": ("Create a completion (legacy)", CompletionsRequestSchema,
                        "The completion, or a stream of chunks ending in `[DONE]`."),
    "proxy.create_response": ("Create a model response (the Responses API)", ResponsesRequestSchema,
                      "The Response object, or a stream of Responses API events."),
}
_RESPONSE_ID = {"name": "response_id", "in": "path", "required": True,
                "schema": {"type": "string", "pattern": "^resp_[A-Za-z0-9_-]{1,200}$"}}


def _errors(*statuses: str) -> dict[str, Any]:
    return {status: {"description": _ERRORS[status], "content": {"application/json": {"schema": "Error"}}}
            for status in statuses}


def document_model_calls(spec: APISpec, app: Flask) -> None:
    """Add the proxied endpoints (and OpenAI's GET/DELETE of a stored response) to ``spec``."""
    rules = {rule.endpoint: rule for rule in app.url_map.iter_rules()}
    spec.tag({"name": TAG, "description": "OpenAI's API, routed to the active provider and recorded."})
    for view, (summary, schema, answer) in _CREATE.items():
        spec.path(rule=rules[view], operations={"post": {
            "tags": [TAG], "summary": summary, "operationId": "create" + schema.__name__.removesuffix("Schema"),
            "parameters": [{"name": "X-Session-Id", "in": "header", "schema": {"type": "string"},
                            "description": "The conversation this call belongs to (optional)."}],
            "requestBody": {"required": True, "content": {"application/json": {"schema": schema}}},
            "responses": {"200": {"description": answer, "content": {
                "application/json": {"schema": {"type": "object"}},
                "text/event-stream": {"schema": {"type": "string"}},
            }}, **_errors("400", "404", "429", "502", "503", "504")},
        }})
    if "responses_api.get_response" not in rules:  # without persistence nothing is stored
        return
    stored = {"tags": [TAG]}
    spec.path(rule=rules["responses_api.get_response"], parameters=[dict(_RESPONSE_ID)], operations={
        "get": {**stored, "summary": "A response the gateway answered, as the client got it",
                "operationId": "getModelResponse",
                "responses": {"200": {"description": "The Response object."}, **_errors("404")}},
        "delete": {**stored, "summary": "Delete a response the gateway answered (and its record)",
                   "operationId": "deleteModelResponse",
                   "responses": {"200": {"description": "`{id, object, deleted: true}`."}, **_errors("404")}},
    })
    spec.path(rule=rules["responses_api.list_input_items"], parameters=[dict(_RESPONSE_ID)], operations={"get": {
        **stored, "summary": "The input items of a response the gateway answered",
        "operationId": "listModelResponseInputItems",
        "responses": {"200": {"description": "A list of input items."}, **_errors("404")},
    }})

"""The OpenAI endpoints the gateway proxies, each routed and recorded like chat.

For each endpoint and route: how the provider's request is built, how it is called or streamed,
and what the record keeps. A provider serves an endpoint natively (``Provider.serves``), passed
through; otherwise legacy completions and the Responses API are translated through chat, and
embeddings are refused with ``endpoint_not_supported``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from app.errors import InvalidRequest
from app.providers.base import Completion, Conversation, EventStream, ask_for_stream_usage, not_served
from app.providers.registry import Route
from app.providers.tokens import estimate_prompt_tokens, message_text
from app.services.proxy import translate_completions as completions
from app.services.proxy import translate_responses as responses
from app.services.proxy.responses_stream import ResponsesCapture, ResponsesFromChat
from app.services.proxy.streaming import ChatDialect, ResponsesDialect, StreamCapture
from app.services.proxy.translate_completions import CompletionsCapture, CompletionsFromChat
from app.services.search.text import vectors_of


@dataclass(slots=True, kw_only=True)
class Call:
    """What one call of an endpoint carries besides its body (a Responses call: its id and whole input)."""

    endpoint: str
    response_id: str | None = None
    items: list[dict[str, Any]] = field(default_factory=list)
    referable: bool = False  # stored for a later previous_response_id (OpenAI's ``store``, true by default)


def opening_text(endpoint: str, body: dict[str, Any]) -> str | None:
    """The text a conversation opens with: the session key's fallback and the session's first message."""
    if endpoint == "chat":
        for message in body.get("messages") or []:
            if isinstance(message, dict) and message.get("role") == "user":
                return message_text(message.get("content"))
        return None
    if endpoint == "completions":
        return completions.prompt_text(body) or None
    if endpoint == "embeddings":
        value = body.get("input")
        value = value[0] if isinstance(value, list) and value else value
        return value if isinstance(value, str) else None
    for item in responses.input_items(body):
        if item.get("type", "message") == "message" and item.get("role") == "user":
            return message_text(item.get("content"))
    return None


def prompt_tokens(call: Call, body: dict[str, Any]) -> int:
    """An offline estimate of the prompt's tokens, for an upstream that reports none."""
    if call.endpoint == "chat":
        return estimate_prompt_tokens(body)
    if call.endpoint == "responses":
        try:
            return estimate_prompt_tokens(responses.to_chat(body, call.items))
        except InvalidRequest:  # items only a native provider takes: estimate from their text
            pass
    return estimate_prompt_tokens({"messages": [{"role": "user", "content": opening_text(call.endpoint, body)}]})


def native(call: Call, route: Route) -> bool:
    return call.endpoint in route.provider.serves


def build(call: Call, route: Route, body: dict[str, Any], conversation: Conversation) -> dict[str, Any]:
    """The provider's request for this call (what the request row keeps as provider_request)."""
    provider = route.provider
    if call.endpoint == "chat":
        return provider.build_request(body, model=route.model, conversation=conversation)
    if call.endpoint == "embeddings":
        if not native(call, route):
            raise not_served(provider, "embeddings")
        return {**body, "model": route.model}
    if call.endpoint == "completions":
        if native(call, route):
            return ask_for_stream_usage({**body, "model": route.model})
        return provider.build_request(completions.to_chat(body), model=route.model, conversation=conversation)
    if native(call, route):  # responses: the earlier turns inlined, so any upstream continues them
        payload = {key: value for key, value in body.items() if key != "previous_response_id"}
        return {**payload, "model": route.model, "input": call.items}
    return provider.build_request(responses.to_chat(body, call.items), model=route.model, conversation=conversation)


def complete(call: Call, route: Route, payload: dict[str, Any], body: dict[str, Any],
             conversation: Conversation) -> Completion:
    """A whole answer in the endpoint's own shape."""
    provider = route.provider
    if call.endpoint == "chat":
        return provider.complete(payload, conversation=conversation)
    if native(call, route):
        answer = provider.call(call.endpoint, payload)
        if call.endpoint != "responses":
            return answer
        # Under the gateway's own id: the one GET /v1/responses/{id} and previous_response_id know.
        return Completion(body={**answer.body, "id": call.response_id}, raw=answer.body)
    chat = provider.complete(payload, conversation=conversation)
    if call.endpoint == "completions":
        converted = completions.from_chat(chat.body)
    else:
        converted = responses.from_chat(chat.body, request=body, response=call.response_id)
    return Completion(body=converted, raw=chat.body, parent_id=chat.parent_id, chat_id=chat.chat_id)


def open_stream(call: Call, route: Route, payload: dict[str, Any], body: dict[str, Any],
                conversation: Conversation) -> EventStream:
    """The upstream's stream, told in the endpoint's own events."""
    provider = route.provider
    if call.endpoint == "chat":
        return provider.open_stream(payload, conversation=conversation)
    if native(call, route):
        return provider.open(call.endpoint, payload)
    chat = provider.open_stream(payload, conversation=conversation)
    if call.endpoint == "completions":
        return CompletionsFromChat(chat)
    return ResponsesFromChat(chat, request=body, response=call.response_id, model=route.model)


def dialect(call: Call, route: Route, body: dict[str, Any], *, started: float) -> ChatDialect | ResponsesDialect:
    """How the stream is relayed and what is captured of it."""
    options = body.get("stream_options")
    forward_usage = isinstance(options, dict) and options.get("include_usage") is True
    if call.endpoint == "responses":
        capture = ResponsesCapture(started=started, response=call.response_id)
        return ResponsesDialect(capture, rewrite=native(call, route), referable=call.referable)
    capture = StreamCapture(started=started) if call.endpoint == "chat" else CompletionsCapture(started=started)
    return ChatDialect(capture, forward_usage=forward_usage)


def answer_facts(call: Call, body: dict[str, Any]) -> tuple[str | None, Any, str]:
    """A whole answer's finish reason, usage (chat's shape) and text, whatever the endpoint."""
    if call.endpoint == "responses":
        capture = ResponsesCapture(started=0.0, response=call.response_id or "")
        capture.add({"type": "response.completed", "response": body})
        text = "".join(
            part.get("text", "") for item in body.get("output") or () if isinstance(item, dict)
            for part in item.get("content") or () if isinstance(part, dict)
        )
        return capture.finish_reason, capture.usage, text
    usage = body.get("usage")
    if call.endpoint == "embeddings":
        if isinstance(usage, dict) and isinstance(usage.get("prompt_tokens"), int):
            usage = {"completion_tokens": 0, **usage}
        return None, usage, ""
    choices = body.get("choices") if isinstance(body.get("choices"), list) else []
    choice = choices[0] if choices and isinstance(choices[0], dict) else {}
    if call.endpoint == "completions":
        return choice.get("finish_reason"), usage, choice.get("text") or ""
    message = choice.get("message") if isinstance(choice.get("message"), dict) else {}
    return choice.get("finish_reason"), usage, message_text(message.get("content"))


def stored_answer(call: Call, body: dict[str, Any], *, store_vectors: bool) -> dict[str, Any]:
    """What the response row keeps: embeddings without their vectors unless asked (STORE_EMBEDDING_VECTORS)."""
    if call.endpoint != "embeddings" or store_vectors:
        return body
    count, dimensions = vectors_of(body) or (0, None)
    return {
        "object": body.get("object", "list"), "model": body.get("model"), "usage": body.get("usage"),
        "embeddings": {"count": count, "dimensions": dimensions, "vectors_stored": False},
    }

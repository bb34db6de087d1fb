"""A built-in, deterministic provider: try the gateway with no upstream at all."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator, Mapping
from typing import Any

from app.providers.base import (
    Completion,
    Conversation,
    EventStream,
    Provider,
    ProviderConfig,
    StreamEvent,
    ask_for_stream_usage,
    not_served,
)
from app.providers.sse import DONE
from app.providers.tokens import estimate_prompt_tokens, message_text

MOCK_MODELS = ("mock-chat", "mock-tools")
MOCK_URL = "mock://local"


class MockProvider(Provider):
    """Echoes the last user message; calls the first tool when tools are given.

    It serves chat, embeddings (deterministic vectors) and legacy completions itself;
    the Responses API reaches it through the gateway's translation to chat.
    """

    kind = "mock"
    serves = frozenset({"chat", "embeddings", "completions"})

    def __init__(self, *, name: str = "mock", default_model: str = "mock-chat") -> None:
        super().__init__(name=name, base_url=MOCK_URL, default_model=default_model)

    @classmethod
    def from_config(cls, config: ProviderConfig, *, environ: Mapping[str, str], timeout_s: float) -> Provider:
        return cls(name=config.name, default_model=config.default_model or "mock-chat")

    def build_request(
        self, body: dict[str, Any], *, model: str, conversation: Conversation
    ) -> dict[str, Any]:
        return ask_for_stream_usage({**body, "model": model})

    def complete(self, payload: dict[str, Any], *, conversation: Conversation) -> Completion:
        answer = _Answer(payload)
        message: dict[str, Any] = {"role": "assistant", "content": answer.text}
        if answer.tool_calls:
            message["tool_calls"] = answer.tool_calls
        body = {
            "id": answer.id,
            "object": "chat.completion",
            "created": int(time.time()),
            "model": payload["model"],
            "choices": [{"index": 0, "message": message, "finish_reason": answer.finish_reason}],
            "usage": answer.usage,
        }
        return Completion(body=body)

    def open_stream(self, payload: dict[str, Any], *, conversation: Conversation) -> EventStream:
        return _MockStream(payload)

    def call(self, endpoint: str, payload: dict[str, Any]) -> Completion:
        if endpoint == "chat":
            return self.complete(payload, conversation=Conversation(session_id=""))
        if endpoint == "embeddings":
            return Completion(body=_embeddings(payload))
        if endpoint == "completions":
            return Completion(body=_text_completion(payload))
        raise not_served(self, endpoint)

    def open(self, endpoint: str, payload: dict[str, Any]) -> EventStream:
        if endpoint == "chat":
            return _MockStream(payload)
        if endpoint == "completions":
            return _MockCompletionStream(payload)
        raise not_served(self, endpoint)

    def list_models(self, *, timeout_s: float | None = None) -> list[dict[str, Any]]:
        return [{"id": model, "object": "model", "created": 0, "owned_by": self.name} for model in MOCK_MODELS]


class _Answer:
    def __init__(self, payload: dict[str, Any]) -> None:
        messages = payload.get("messages") or []
        last_user = next(
            (m for m in reversed(messages) if isinstance(m, dict) and m.get("role") == "user"), {}
        )
        prompt = message_text(last_user.get("content"))
        digest = hashlib.sha256(json.dumps(messages, sort_keys=True).encode()).hexdigest()[:24]
        self.id = f"chatcmpl-mock-{digest}"
        tools = [t for t in payload.get("tools") or [] if isinstance(t, dict) and t.get("function")]
        if tools:
            function = tools[0]["function"]
            self.text = None
            self.tool_calls = [{
                "id": f"call_{digest[:16]}",
                "type": "function",
                "function": {"name": function.get("name", "tool"), "arguments": _arguments(function)},
            }]
            self.finish_reason = "tool_calls"
            completion = 8
        else:
            self.text = f"Mock reply to: {prompt[:200]}" if prompt else "Mock reply."
            self.tool_calls = []
            self.finish_reason = "stop"
            completion = len(self.text.split())
        prompt_tokens = estimate_prompt_tokens(payload)
        self.usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion,
            "total_tokens": prompt_tokens + completion,
        }


def _arguments(function: dict[str, Any]) -> str:
    """Arguments that satisfy the tool's required parameters, with placeholder values."""
    parameters = function.get("parameters") or {}
    properties = parameters.get("properties") or {}
    samples = {"string": "mock", "integer": 1, "number": 1, "boolean": True, "array": [], "object": {}}
    arguments = {
        name: samples.get((properties.get(name) or {}).get("type"), None)
        for name in parameters.get("required") or list(properties)[:1]
    }
    return json.dumps(arguments)


class _MockStream(EventStream):
    def __init__(self, payload: dict[str, Any]) -> None:
        self._payload = payload

    def __iter__(self) -> Iterator[StreamEvent]:
        answer = _Answer(self._payload)
        base = {
            "id": answer.id,
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": self._payload["model"],
        }
        include_usage = bool((self._payload.get("stream_options") or {}).get("include_usage"))

        def event(choices: list[dict[str, Any]], **extra: Any) -> StreamEvent:
            chunk = {**base, "choices": choices, **extra}
            return StreamEvent(data=json.dumps(chunk, separators=(",", ":")), chunk=chunk)

        yield event([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])
        if answer.tool_calls:
            call = answer.tool_calls[0]
            head = {"index": 0, "id": call["id"], "type": "function",
                    "function": {"name": call["function"]["name"], "arguments": ""}}
            yield event([{"index": 0, "delta": {"tool_calls": [head]}, "finish_reason": None}])
            arguments = call["function"]["arguments"]
            for start in range(0, len(arguments), 8):
                part = {"index": 0, "function": {"arguments": arguments[start : start + 8]}}
                yield event([{"index": 0, "delta": {"tool_calls": [part]}, "finish_reason": None}])
        else:
            words = answer.text.split(" ")
            for index, word in enumerate(words):
                piece = word if index == len(words) - 1 else word + " "
                yield event([{"index": 0, "delta": {"content": piece}, "finish_reason": None}])
        yield event([{"index": 0, "delta": {}, "finish_reason": answer.finish_reason}])
        if include_usage:
            yield event([], usage=answer.usage)
        yield StreamEvent(data=DONE, chunk=None)

    def close(self) -> None:
        pass


def _embeddings(payload: dict[str, Any]) -> dict[str, Any]:
    """Deterministic vectors: the same text always embeds the same (``dimensions`` long, 8 by default)."""
    inputs = payload.get("input")
    inputs = inputs if isinstance(inputs, list) and inputs and not isinstance(inputs[0], int) else [inputs]
    size = payload.get("dimensions") if isinstance(payload.get("dimensions"), int) else 8
    data, tokens = [], 0
    for index, item in enumerate(inputs):
        text = item if isinstance(item, str) else json.dumps(item)
        seed = hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()
        vector = [round((seed[i % len(seed)] - 127.5) / 127.5, 6) for i in range(size)]
        data.append({"object": "embedding", "index": index, "embedding": vector})
        tokens += len(item) if isinstance(item, list) else max(1, len(text) // 4)
    return {"object": "list", "data": data, "model": payload["model"],
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}


def _completion_text(payload: dict[str, Any]) -> tuple[str, int]:
    prompt = payload.get("prompt")
    prompt = prompt[0] if isinstance(prompt, list) and prompt and isinstance(prompt[0], str) else prompt
    prompt = prompt if isinstance(prompt, str) else ""
    return (f"Mock completion of: {prompt[:200]}" if prompt else "Mock completion."), max(1, len(prompt) // 4)


def _text_completion(payload: dict[str, Any]) -> dict[str, Any]:
    text, prompt_tokens = _completion_text(payload)
    completion = len(text.split())
    return {
        "id": f"cmpl-mock-{hashlib.sha256(text.encode()).hexdigest()[:24]}", "object": "text_completion",
        "created": int(time.time()), "model": payload["model"],
        "choices": [{"text": text, "index": 0, "logprobs": None, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion,
                  "total_tokens": prompt_tokens + completion},
    }


class _MockCompletionStream(EventStream):
    def __init__(self, payload: dict[str, Any]) -> None:
        self._payload = payload

    def __iter__(self) -> Iterator[StreamEvent]:
        body = _text_completion(self._payload)
        base = {key: body[key] for key in ("id", "object", "created", "model")}
        words = body["choices"][0]["text"].split(" ")
        for index, word in enumerate(words):
            chunk = {**base, "choices": [{"text": word if index == len(words) - 1 else word + " ", "index": 0,
                                          "logprobs": None, "finish_reason": None}]}
            yield StreamEvent(data=json.dumps(chunk, separators=(",", ":")), chunk=chunk)
        final = {**base, "choices": [{"text": "", "index": 0, "logprobs": None, "finish_reason": "stop"}]}
        yield StreamEvent(data=json.dumps(final, separators=(",", ":")), chunk=final)
        if (self._payload.get("stream_options") or {}).get("include_usage"):
            usage = {**base, "choices": [], "usage": body["usage"]}
            yield StreamEvent(data=json.dumps(usage, separators=(",", ":")), chunk=usage)
        yield StreamEvent(data=DONE, chunk=None)

    def close(self) -> None:
        pass

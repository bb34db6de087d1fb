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
)
from app.providers.sse import DONE
from app.providers.tokens import estimate_prompt_tokens, message_text

MOCK_MODELS = ("mock-chat", "mock-tools")
MOCK_URL = "mock://local"


class MockProvider(Provider):
    """Echoes the last user message; calls the first tool when tools are given."""

    kind = "mock"

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

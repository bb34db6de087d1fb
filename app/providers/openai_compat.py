"""Any server that speaks the OpenAI chat API: requests pass through, answers come back as-is."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from app.errors import UpstreamError
from app.providers.base import (
    ENDPOINTS,
    UPSTREAM_PATHS,
    Completion,
    Conversation,
    EventStream,
    Provider,
    ProviderConfig,
    ask_for_stream_usage,
    not_served,
    parse_serves,
)
from app.providers.http import HTTPTransport, SSEEventStream


class OpenAICompatibleProvider(Provider):
    """Serves every endpoint natively unless its ``serves`` option lists fewer (a chat-only server)."""

    kind = "openai-compatible"
    option_names = frozenset({"serves"})
    serves = frozenset(ENDPOINTS)

    def __init__(
        self,
        *,
        name: str,
        base_url: str,
        timeout_s: float,
        api_key: str | None = None,
        default_model: str | None = None,
        serves: frozenset[str] | None = None,
    ) -> None:
        super().__init__(name=name, base_url=base_url, default_model=default_model)
        self.transport = HTTPTransport(name=name, base_url=base_url, timeout_s=timeout_s)
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        if serves is not None:
            self.serves = serves

    @classmethod
    def from_config(cls, config: ProviderConfig, *, environ: Mapping[str, str], timeout_s: float) -> Provider:
        return cls(
            name=config.name, base_url=config.base_url, timeout_s=timeout_s,
            api_key=environ.get(config.api_key_env) if config.api_key_env else None,
            default_model=config.default_model,
            serves=parse_serves(config.options.get("serves"), cls.serves),
        )

    def build_request(
        self, body: dict[str, Any], *, model: str, conversation: Conversation
    ) -> dict[str, Any]:
        return ask_for_stream_usage({**body, "model": model})

    def complete(self, payload: dict[str, Any], *, conversation: Conversation) -> Completion:
        return self.call("chat", payload)

    def call(self, endpoint: str, payload: dict[str, Any]) -> Completion:
        if endpoint not in self.serves:
            raise not_served(self, endpoint)
        response = self.transport.request("POST", UPSTREAM_PATHS[endpoint], body=payload, headers=self._headers)
        text = response.content.decode("utf-8", errors="replace")
        try:
            body = json.loads(text)
        except ValueError:
            raise UpstreamError(f"Provider {self.name!r} answered with a body that is not JSON.") from None
        if not isinstance(body, dict):
            raise UpstreamError(f"Provider {self.name!r} answered with JSON that is not an object.")
        # provider_response would repeat openai_response byte for byte: stored once.
        return Completion(body=body, text=text)

    def open_stream(self, payload: dict[str, Any], *, conversation: Conversation) -> EventStream:
        return self.open("chat", payload)

    def open(self, endpoint: str, payload: dict[str, Any]) -> EventStream:
        if endpoint not in self.serves:
            raise not_served(self, endpoint)
        headers = {**self._headers, "Accept": "text/event-stream"}
        response = self.transport.request(
            "POST", UPSTREAM_PATHS[endpoint], body=payload, headers=headers, stream=True
        )
        return SSEEventStream(self.transport, response)

    def close(self) -> None:
        self.transport.session.close()

    def list_models(self, *, timeout_s: float | None = None) -> list[dict[str, Any]]:
        response = self.transport.request("GET", "/models", headers=self._headers, timeout_s=timeout_s)
        try:
            data = response.json().get("data", [])
        except (ValueError, AttributeError):
            data = None
        if not isinstance(data, list):
            raise UpstreamError(f"Provider {self.name!r} listed its models in an unknown shape.")
        return [model for model in data if isinstance(model, dict) and model.get("id")]

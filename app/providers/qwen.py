"""Qwen's chat web API (chat.qwen.ai): a chat per session, one new message per turn."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import requests

from app.errors import UpstreamError
from app.providers.base import Completion, Conversation, EventStream, Provider, ProviderConfig
from app.providers.http import HTTPTransport, SSEEventStream
from app.providers.qwen_translate import (
    StreamTranslator,
    build_turn,
    completion_body,
    error_message,
    new_chat_request,
)

QWEN_DEFAULT_URL = "https://chat.qwen.ai"
COMPLETIONS_PATH = "/api/v2/chat/completions"
_JSON_LIMIT = 64 * 1024


class QwenProvider(Provider):
    """Auth is ``bx-umidtoken`` (the key) and ``Cookie`` (the ``cookies_env`` option) on every call."""

    kind = "qwen"
    option_names = frozenset({"cookies_env"})

    def __init__(
        self,
        *,
        name: str,
        base_url: str,
        timeout_s: float,
        token: str | None = None,
        cookies: str | None = None,
        default_model: str | None = None,
    ) -> None:
        super().__init__(name=name, base_url=base_url, default_model=default_model)
        self.transport = HTTPTransport(name=name, base_url=base_url, timeout_s=timeout_s)
        self._headers: dict[str, str] = {}
        if token:
            self._headers["bx-umidtoken"] = token
        if cookies:
            self._headers["Cookie"] = cookies

    @classmethod
    def from_config(cls, config: ProviderConfig, *, environ: Mapping[str, str], timeout_s: float) -> Provider:
        cookies_env = config.options.get("cookies_env")
        return cls(
            name=config.name, base_url=config.base_url, timeout_s=timeout_s,
            token=environ.get(config.api_key_env) if config.api_key_env else None,
            cookies=environ.get(cookies_env) if cookies_env else None,
            default_model=config.default_model,
        )

    def build_request(
        self, body: dict[str, Any], *, model: str, conversation: Conversation
    ) -> dict[str, Any]:
        return build_turn(body, model=model, conversation=conversation)

    def complete(self, payload: dict[str, Any], *, conversation: Conversation) -> Completion:
        payload, new_chat = self._in_a_chat(payload)
        response = self.transport.request(
            "POST", COMPLETIONS_PATH, params={"chat_id": payload["chat_id"]}, body=payload, headers=self._headers,
        )
        raw = self._json(response)
        answer = completion_body(raw, model=payload["model"]) if error_message(raw) is None else None
        if answer is None:
            raise UpstreamError(f"Provider {self.name!r} refused the request: {error_message(raw) or 'no answer'}.")
        body, parent_id = answer
        return Completion(body=body, raw=raw, parent_id=parent_id, chat_id=new_chat)

    def open_stream(self, payload: dict[str, Any], *, conversation: Conversation) -> EventStream:
        payload, new_chat = self._in_a_chat(payload)
        response = self.transport.request(
            "POST", COMPLETIONS_PATH, params={"chat_id": payload["chat_id"]}, body=payload,
            headers={**self._headers, "Accept": "text/event-stream"}, stream=True,
        )
        if response.headers.get("Content-Type", "").startswith("application/json"):
            # A refusal comes back as JSON with status 200: report it before the stream begins.
            try:
                raw = json.loads(response.raw.read(_JSON_LIMIT, decode_content=True) or b"null")
            except (ValueError, requests.RequestException, OSError):
                raw = None
            finally:
                response.close()
            raise UpstreamError(f"Provider {self.name!r} refused the request: {error_message(raw) or 'no stream'}.")
        translate = StreamTranslator(model=payload["model"], chat_id=new_chat)
        return SSEEventStream(self.transport, response, translate=translate)

    def close(self) -> None:
        self.transport.session.close()

    def list_models(self, *, timeout_s: float | None = None) -> list[dict[str, Any]]:
        response = self.transport.request("GET", "/api/models", headers=self._headers, timeout_s=timeout_s)
        data = self._json(response).get("data")
        if isinstance(data, dict):
            data = data.get("data")
        if not isinstance(data, list):
            raise UpstreamError(f"Provider {self.name!r} listed its models in an unknown shape.")
        return [
            {"id": model["id"], "object": "model", "created": 0, "owned_by": self.name}
            for model in data if isinstance(model, dict) and model.get("id")
        ]

    def _in_a_chat(self, payload: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
        """The payload with its chat_id, opening a new chat (network I/O) if it has none."""
        if payload.get("chat_id"):
            return payload, None
        response = self.transport.request(
            "POST", "/api/v2/chats/new", body=new_chat_request(model=payload["model"]), headers=self._headers,
        )
        raw = self._json(response)
        data = raw.get("data")
        chat_id = data.get("id") if isinstance(data, dict) else None
        if not chat_id:
            raise UpstreamError(
                f"Provider {self.name!r} did not open a chat: {error_message(raw) or 'no chat id'}."
            )
        return {**payload, "chat_id": chat_id}, chat_id

    def _json(self, response: requests.Response) -> dict[str, Any]:
        try:
            raw = response.json()
        except ValueError:
            raise UpstreamError(f"Provider {self.name!r} answered with a body that is not JSON.") from None
        if not isinstance(raw, dict):
            raise UpstreamError(f"Provider {self.name!r} answered with JSON that is not an object.")
        return raw

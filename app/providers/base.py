"""The small interface every provider implements, and the shapes it trades in."""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from app.errors import InvalidRequest

# The OpenAI endpoints the gateway proxies; a provider serves some of them natively
# (``Provider.serves``) and the gateway translates completions and responses through chat for it.
ENDPOINTS = ("chat", "embeddings", "completions", "responses")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
UPSTREAM_PATHS = {
    "chat": "/chat/completions", "embeddings": "/embeddings", "completions": "/completions", "responses": "/responses",
}
# Where clients call each endpoint: what a request row's ``path`` says.
CLIENT_PATHS = {endpoint: "/v1" + path for endpoint, path in UPSTREAM_PATHS.items()}


@dataclass(frozen=True, slots=True, kw_only=True)
class ProviderConfig:
    """A provider as the operator configured it (a providers row); never holds a secret."""

    name: str
    type: str
    base_url: str
    api_key_env: str | None = None
    default_model: str | None = None
    timeout_ms: int | None = None
    enabled: bool = True
    options: Mapping[str, str] = field(default_factory=dict)


@dataclass(slots=True, kw_only=True)
class Conversation:
    """What a provider may need to know of the session (Qwen keeps history upstream)."""

    session_id: str
    chat_id: str | None = None
    parent_id: str | None = None


@dataclass(slots=True, kw_only=True)
class Completion:
    """A whole answer: the OpenAI body for the client, and what the upstream sent."""

    body: dict[str, Any]
    # The upstream's JSON text when ``body`` is exactly it: relayed and stored as-is.
    text: str | None = None
    raw: dict[str, Any] | None = None
    parent_id: str | None = None
    chat_id: str | None = None


@dataclass(slots=True, kw_only=True)
class StreamEvent:
    """One event of a stream: the OpenAI chunk, and the exact bytes to forward."""

    data: str
    chunk: dict[str, Any] | None
    parent_id: str | None = None
    chat_id: str | None = None


class EventStream(ABC):
    """An open upstream stream: iterate for events; always close."""

    @abstractmethod
    def __iter__(self) -> Iterator[StreamEvent]: ...

    def batches(self) -> Iterator[Sequence[StreamEvent]]:
        """The events in the groups they arrived in (never empty), so a relay forwards a group at once."""
        for event in self:
            yield (event,)

    @abstractmethod
    def close(self) -> None: ...


class Provider(ABC):
    """An upstream: build its request, call it, and speak OpenAI back."""

    kind: str = "abstract"
    # The keys a config's ``options`` may hold for this type (``*_env`` ones name an environment variable).
    option_names: frozenset[str] = frozenset()
    # The endpoints the upstream serves itself; chat always (completions and responses are
    # translated through chat for a provider that serves only chat).
    serves: frozenset[str] = frozenset({"chat"})

    def __init__(self, *, name: str, base_url: str, default_model: str | None = None) -> None:
        self.name = name
        self.base_url = base_url
        self.default_model = default_model

    @classmethod
    def from_config(cls, config: ProviderConfig, *, environ: Mapping[str, str], timeout_s: float) -> Provider:
        """The provider a configuration describes; secrets are looked up in ``environ``."""
        return cls(name=config.name, base_url=config.base_url, default_model=config.default_model)

    @abstractmethod
    def build_request(
        self, body: dict[str, Any], *, model: str, conversation: Conversation
    ) -> dict[str, Any]:
        """The provider's request body for an OpenAI chat request (this is what gets stored)."""

    @abstractmethod
    def complete(self, payload: dict[str, Any], *, conversation: Conversation) -> Completion:
        """Send a non-streaming request; raise an UpstreamError on failure."""

    @abstractmethod
    def open_stream(self, payload: dict[str, Any], *, conversation: Conversation) -> EventStream:
        """Start a stream; errors before its first byte are raised here, not in iteration."""

    @abstractmethod
    def list_models(self, *, timeout_s: float | None = None) -> list[dict[str, Any]]:
        """The upstream's models as OpenAI model objects (``timeout_s`` caps this one call)."""

    @classmethod
    def option_problem(cls, name: str, value: str) -> str | None:
        """What is wrong with an option's value, or None (``*_env`` options name an environment variable)."""
        if name.endswith("_env"):
            if not _ENV_NAME.fullmatch(value):
                return "Must be the NAME of an environment variable (letters, digits, '_'), never the secret itself."
        elif name == "serves":
            unknown = sorted({part.strip() for part in value.split(",")} - set(ENDPOINTS))
            if unknown:
                return f"Must list endpoints among {', '.join(ENDPOINTS)}, separated by commas; not {unknown[0]!r}."
        return None

    def call(self, endpoint: str, payload: dict[str, Any]) -> Completion:
        """Send a non-streaming request to one of the endpoints it ``serves``, passed through."""
        raise not_served(self, endpoint)

    def open(self, endpoint: str, payload: dict[str, Any]) -> EventStream:
        """Start a stream on one of the endpoints it ``serves``, passed through."""
        raise not_served(self, endpoint)

    def close(self) -> None:
        """Release pooled connections (a provider built for one test call)."""
        return None


def not_served(provider: Provider, endpoint: str) -> InvalidRequest:
    return InvalidRequest(
        f"Provider {provider.name!r} does not serve /v1/{UPSTREAM_PATHS[endpoint].lstrip('/')}.",
        param="model", code="endpoint_not_supported",
    )


def parse_serves(value: str | None, default: frozenset[str]) -> frozenset[str]:
    """A provider's ``serves`` option: the endpoints its upstream serves (chat always)."""
    if not value:
        return default
    return frozenset(part.strip() for part in value.split(",") if part.strip()) | {"chat"}


def ask_for_stream_usage(payload: dict[str, Any]) -> dict[str, Any]:
    """Streams always ask for usage; the gateway forwards it only if the client asked."""
    if payload.get("stream"):
        options = payload.get("stream_options")
        payload["stream_options"] = {**(options if isinstance(options, dict) else {}), "include_usage": True}
    return payload

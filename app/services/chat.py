"""A chat completion from request to audit row: route, record, call, relay, finish."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from app.errors import GatewayError, UpstreamCut, UpstreamTimeout
from app.providers.base import Completion, Conversation
from app.providers.registry import ProviderRegistry, Route
from app.services.audit import AuditLog, Outcome, RequestRecord
from app.services.sessions import first_user_message, session_key
from app.services.streaming import StreamCapture, relay
from app.services.tokens import estimate_prompt_tokens, estimate_text_tokens, message_text


@dataclass(slots=True, kw_only=True)
class Exchange:
    """One chat call in flight."""

    route: Route
    body: dict[str, Any]
    payload: dict[str, Any]
    record: RequestRecord | None
    started: float
    completion: Completion | None = None
    streaming: bool = False

    @property
    def stream(self) -> bool:
        return bool(self.body.get("stream"))

    @property
    def request_id(self) -> str | None:
        return self.record.request_id if self.record else None

    @property
    def conversation(self) -> Conversation:
        return self.record.conversation if self.record else Conversation(session_id="")


class ChatService:
    def __init__(self, *, registry: ProviderRegistry, audit: AuditLog | None) -> None:
        self.registry = registry
        self.audit = audit

    def begin(
        self, *, body: dict[str, Any], raw_body: str, session_header: str | None, method: str, path: str
    ) -> Exchange:
        """Route the request and record it before anything is sent upstream."""
        route = self.registry.route(body.get("model"))
        session_id = session_key(header=session_header, body=body)

        def build(conversation: Conversation) -> dict[str, Any]:
            return route.provider.build_request(body, model=route.model, conversation=conversation)

        if self.audit is None:
            return Exchange(
                route=route, body=body, record=None, started=time.perf_counter(),
                payload=build(Conversation(session_id=session_id)),
            )
        record, payload = self.audit.open(
            session_id=session_id, first_user_message=first_user_message(body),
            openai_request=raw_body, provider=route.provider.name, model=route.model,
            stream=bool(body.get("stream")), method=method, path=path, build=build,
        )
        return Exchange(route=route, body=body, payload=payload, record=record, started=record.started)

    def complete(self, exchange: Exchange) -> Completion:
        """A non-streaming answer; the after-request hook records it."""
        exchange.completion = exchange.route.provider.complete(
            exchange.payload, conversation=exchange.conversation
        )
        return exchange.completion

    def stream(self, exchange: Exchange) -> Iterator[bytes]:
        """Open the upstream stream (failing here if it fails before its first byte) and relay it."""
        events = exchange.route.provider.open_stream(exchange.payload, conversation=exchange.conversation)
        exchange.streaming = True
        options = exchange.body.get("stream_options")
        return relay(
            events,
            capture=StreamCapture(started=exchange.started),
            forward_usage=isinstance(options, dict) and options.get("include_usage") is True,
            finish=lambda outcome: self._finish(exchange, outcome),
            outcome=lambda **kwargs: self._stream_outcome(exchange, **kwargs),
        )

    def finish_response(self, exchange: Exchange, *, status_code: int, body: Any) -> None:
        """Record a non-streaming exchange from the response the client got."""
        if exchange.streaming:
            return
        if exchange.completion is not None and status_code < 400:
            outcome = self._completion_outcome(exchange, exchange.completion, status_code)
        else:
            outcome = Outcome(
                status="error", status_code=status_code,
                openai_response=body if isinstance(body, dict) else None,
                error=_error_text(body),
            )
        self._finish(exchange, outcome)

    def abandon(self, exchange: Exchange) -> None:
        """A stream the server closed without ever iterating: the client never got it."""
        if exchange.record is not None and not exchange.record.closed:
            self._finish(exchange, Outcome(
                status="incomplete", status_code=200, client_disconnected=True,
                error="The stream was closed before it started.",
            ))

    def _finish(self, exchange: Exchange, outcome: Outcome) -> None:
        if self.audit is not None and exchange.record is not None:
            self.audit.close(exchange.record, outcome)

    def _completion_outcome(self, exchange: Exchange, completion: Completion, status_code: int) -> Outcome:
        body = completion.body
        choice = (body.get("choices") or [{}])[0] if isinstance(body.get("choices"), list) else {}
        message = choice.get("message") or {} if isinstance(choice, dict) else {}
        outcome = Outcome(
            status="ok", status_code=status_code,
            openai_response=completion.text or body, provider_response=completion.raw,
            finish_reason=choice.get("finish_reason") if isinstance(choice, dict) else None,
            parent_id=completion.parent_id, chat_id=completion.chat_id,
        )
        _set_usage(outcome, body.get("usage"), exchange.body, message_text(message.get("content")))
        return outcome

    def _stream_outcome(
        self, exchange: Exchange, *, capture: StreamCapture, error: GatewayError | None, client_gone: bool
    ) -> Outcome:
        outcome = Outcome(
            status="ok", status_code=200, openai_response=capture.body(),
            finish_reason=capture.finish_reason, ttft_ms=capture.ttft_ms,
            parent_id=capture.parent_id, chat_id=capture.chat_id,
        )
        if client_gone:
            outcome.status, outcome.client_disconnected = "incomplete", True
            outcome.error = "The client disconnected before the stream ended."
        elif isinstance(error, UpstreamCut | UpstreamTimeout):
            outcome.status, outcome.error = "incomplete", error.message
        elif error is not None:
            outcome.status, outcome.error = "error", error.message
        elif capture.error is not None:
            outcome.status, outcome.error = "error", _error_text({"error": capture.error})
        _set_usage(outcome, capture.usage, exchange.body, "".join(capture.content))
        if capture.tool_calls and outcome.usage_estimated:
            outcome.completion_tokens += sum(
                estimate_text_tokens(call["function"]["arguments"]) for call in capture.tool_calls.values()
            )
            outcome.total_tokens = outcome.prompt_tokens + outcome.completion_tokens
        return outcome


def _set_usage(outcome: Outcome, usage: Any, request_body: dict[str, Any], content: str) -> None:
    """Token counts as reported; estimated (and flagged) when the upstream sent none."""
    if isinstance(usage, dict) and isinstance(usage.get("prompt_tokens"), int):
        outcome.prompt_tokens = usage["prompt_tokens"]
        outcome.completion_tokens = usage.get("completion_tokens") or 0
        outcome.total_tokens = usage.get("total_tokens")
        if not isinstance(outcome.total_tokens, int):
            outcome.total_tokens = outcome.prompt_tokens + outcome.completion_tokens
        return
    outcome.usage_estimated = True
    outcome.prompt_tokens = estimate_prompt_tokens(request_body)
    outcome.completion_tokens = estimate_text_tokens(content)
    outcome.total_tokens = outcome.prompt_tokens + outcome.completion_tokens


def _error_text(body: Any) -> str | None:
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            return str(error.get("message") or error)
        if error is not None:
            return str(error)
    return None if body is None else str(body)[:2000]

"""A chat completion from request to audit row: route, record, call, relay, finish."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from app.errors import GatewayError, StreamEnded, UpstreamCut, UpstreamTimeout
from app.providers.base import Completion, Conversation
from app.providers.registry import ProviderSource, Route
from app.providers.tokens import estimate_prompt_tokens, estimate_text_tokens, message_text
from app.services.audit.log import AuditLog
from app.services.audit.records import AttemptRecord, Outcome, RequestRecord
from app.services.proxy.fallback import call_with_fallbacks, open_primed
from app.services.proxy.sessions import first_user_message, session_key
from app.services.proxy.streaming import StreamCapture, relay


@dataclass(slots=True, kw_only=True)
class Exchange:
    """One chat call in flight."""

    route: Route
    body: dict[str, Any]
    payload: dict[str, Any]
    record: RequestRecord | None
    started: float
    # Where to go when ``route`` fails, ``route`` first; and by when (time.monotonic).
    routes: list[Route]
    deadline: float
    attempts: list[AttemptRecord] = field(default_factory=list)
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


T = TypeVar("T")


class ChatService:
    def __init__(self, *, registry: ProviderSource, audit: AuditLog | None, request_timeout_s: float = 120.0) -> None:
        self.registry = registry
        self.audit = audit
        self.request_timeout_s = request_timeout_s

    def begin(
        self, *, body: dict[str, Any], raw_body: str, session_header: str | None, method: str, path: str
    ) -> Exchange:
        """Route the request and record it before anything is sent upstream."""
        registry = self.registry.snapshot()  # one view of the providers for the whole call
        route = registry.route(body.get("model"))
        routes = registry.fallback_routes(route)
        deadline = time.monotonic() + self.request_timeout_s
        session_id = session_key(header=session_header, body=body)

        def build(conversation: Conversation) -> dict[str, Any]:
            return route.provider.build_request(body, model=route.model, conversation=conversation)

        if self.audit is None:
            return Exchange(
                route=route, routes=routes, deadline=deadline, body=body, record=None,
                started=time.perf_counter(), payload=build(Conversation(session_id=session_id)),
            )
        record, payload = self.audit.open(
            session_id=session_id, first_user_message=first_user_message(body),
            openai_request=raw_body, provider=route.provider.name, model=route.model,
            stream=bool(body.get("stream")), method=method, path=path, build=build,
        )
        return Exchange(
            route=route, routes=routes, deadline=deadline, body=body, payload=payload,
            record=record, started=record.started,
        )

    def complete(self, exchange: Exchange) -> Completion:
        """A non-streaming answer, after retries and fallbacks; the after-request hook records it."""
        exchange.completion = self._call(
            exchange, lambda route, payload: route.provider.complete(payload, conversation=exchange.conversation)
        )
        return exchange.completion

    def stream(self, exchange: Exchange) -> Iterator[bytes]:
        """Open the upstream stream (retrying while nothing was sent) and relay it."""
        events = self._call(
            exchange,
            lambda route, payload: open_primed(route.provider, payload, conversation=exchange.conversation),
        )
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

    def _call(self, exchange: Exchange, call: Callable[[Route, dict[str, Any]], T]) -> T:
        def build(route: Route) -> dict[str, Any]:
            return route.provider.build_request(exchange.body, model=route.model, conversation=exchange.conversation)

        route, payload, result = call_with_fallbacks(
            exchange.routes, first_payload=exchange.payload, build=build, call=call,
            deadline=exchange.deadline, attempts=exchange.attempts,
        )
        exchange.route, exchange.payload = route, payload
        return result

    def _finish(self, exchange: Exchange, outcome: Outcome) -> None:
        if self.audit is not None and exchange.record is not None:
            attempts = exchange.attempts
            outcome.provider = attempts[-1].provider if attempts else exchange.route.provider.name
            outcome.attempts = attempts
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
        elif isinstance(error, UpstreamCut | UpstreamTimeout | StreamEnded):
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

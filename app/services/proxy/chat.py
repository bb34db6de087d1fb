"""A model call from request to audit row: route, record, call, relay, finish.

Chat completions, embeddings, legacy completions and the Responses API alike
(``endpoints`` says how each is built, called and recorded for a provider).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from app.config import ModelPrice
from app.errors import GatewayError
from app.providers.base import CLIENT_PATHS, Completion, Conversation
from app.providers.http import call_headers
from app.providers.registry import ProviderRegistry, ProviderSource, Route
from app.services.audit.log import AuditLog
from app.services.audit.records import AttemptRecord, Outcome, RequestRecord
from app.services.keys.gate import Access, KeyGate, call_cost
from app.services.proxy import endpoints
from app.services.proxy.endpoints import Call
from app.services.proxy.fallback import call_with_fallbacks, open_primed
from app.services.proxy.outcomes import completion_outcome, error_text, stream_outcome
from app.services.proxy.sessions import FIRST_MESSAGE_KEPT, session_key
from app.services.proxy.streaming import relay
from app.services.proxy.translate_responses import input_items, response_id
from app.services.telemetry.calls import Telemetry

if TYPE_CHECKING:
    from app.services.telemetry.tracing import Tracing  # imported only when tracing is configured

# Earlier turns of a Responses conversation (previous_response_id), from the audit trail.
PreviousItems = Callable[[str], list[dict[str, Any]]]


@dataclass(slots=True, kw_only=True)
class Exchange:
    """One model call in flight."""

    call: Call
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
    ended: bool = False
    span: Any = None  # its OpenTelemetry span, while tracing

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
    def __init__(
        self, *, registry: ProviderSource, audit: AuditLog | None, request_timeout_s: float = 120.0,
        previous_items: PreviousItems | None = None, store_embedding_vectors: bool = False,
        keys: KeyGate | None = None, prices: Mapping[str, ModelPrice] | None = None,
        telemetry: Telemetry | None = None, tracing: Tracing | None = None,
    ) -> None:
        self.registry = registry
        self.keys = keys  # gateway keys: who calls, with which tags, within which limits
        self.prices = prices or {}
        self.audit = audit
        # Told of each call's start and end by the audit trail; here only when nothing is recorded.
        self.telemetry = audit.telemetry if audit is not None else telemetry or Telemetry.off()
        self.tracing = tracing  # None unless OpenTelemetry is configured: then nothing of it runs here
        self.request_timeout_s = request_timeout_s
        self.previous_items = previous_items
        self.store_embedding_vectors = store_embedding_vectors

    def begin(
        self, *, body: dict[str, Any], raw_body: str, session_header: str | None, method: str, path: str,
        endpoint: str = "chat", authorization: str | None = None, tag_headers: Mapping[str, str] | None = None,
        trace_headers: Mapping[str, str] | None = None,
    ) -> Exchange:
        """Route the request and record it before anything is sent upstream.

        A call its gateway key may not make is recorded with the reason, then refused.
        ``trace_headers``: the client's W3C ``traceparent`` and ``tracestate``, continued while tracing.
        """
        access = None if self.keys is None else self.keys.identify(
            authorization=authorization, tag_headers=tag_headers or {})
        registry = self.registry.snapshot()  # one view of the providers for the whole call
        try:
            route = registry.route(body.get("model"))
        except GatewayError:
            if access is not None and access.refusal is not None:
                raise access.refusal from None
            raise
        span = None
        if self.tracing is not None:
            span = self.tracing.start(endpoint=endpoint, model=route.model, provider=route.provider.name,
                                      base_url=route.provider.base_url, incoming=trace_headers or {})
            call_headers.set(self.tracing.upstream_headers(span))
        try:
            exchange = self._begin(body=body, raw_body=raw_body, session_header=session_header, method=method,
                                   path=path, endpoint=endpoint, registry=registry, route=route, span=span,
                                   access=access)
        except Exception as exc:
            if span is not None:
                call_headers.set(None)
                self.tracing.fail(span, exc)
            raise
        exchange.span = span
        return exchange

    def _begin(
        self, *, body: dict[str, Any], raw_body: str, session_header: str | None, method: str, path: str,
        endpoint: str, registry: ProviderRegistry, route: Route, span: Any, access: Access | None,
    ) -> Exchange:
        routes = registry.fallback_routes(route)
        deadline = time.monotonic() + self.request_timeout_s
        call = self._call_of(endpoint, body)
        opening = endpoints.opening_text(endpoint, body)
        session_id = session_key(header=session_header, body=body, opening=opening)

        def build(conversation: Conversation) -> dict[str, Any]:
            if access is not None and access.refusal is not None:
                raise access.refusal
            return endpoints.build(call, route, body, conversation)

        if self.audit is None:
            exchange = Exchange(
                call=call, route=route, routes=routes, deadline=deadline, body=body, record=None,
                started=time.perf_counter(), payload=build(Conversation(session_id=session_id)),
            )
            self.telemetry.started(path)
            return exchange
        record, payload = self.audit.open(
            session_id=session_id, first_user_message=None if opening is None else opening[:FIRST_MESSAGE_KEPT],
            openai_request=raw_body, provider=route.provider.name, model=route.model,
            stream=bool(body.get("stream")), method=method, path=path, build=build,
            trace_id=None if span is None else self.tracing.trace_id(span),
            **self._key_fields(access, call, route, body),
        )
        return Exchange(
            call=call, route=route, routes=routes, deadline=deadline, body=body, payload=payload,
            record=record, started=record.started,
        )

    def _key_fields(self, access: Access | None, call: Call, route: Route, body: dict[str, Any]) -> dict[str, Any]:
        """What the request row and the key's counters get from the call's key and tags."""
        if access is None or self.keys is None:
            return {}
        key = access.key
        self.keys.check_model(access, body.get("model"), f"{route.provider.name}/{route.model}")
        use = None
        if key is not None and access.refusal is None:
            try:
                use = self.keys.use(
                    key, provider=route.provider.name, model=route.model,
                    prompt_tokens=endpoints.prompt_tokens(call, body) if key.budget_usd is not None or key.tpm else 0,
                    max_tokens=body.get("max_tokens") or body.get("max_completion_tokens")
                    or body.get("max_output_tokens"),
                )
            except GatewayError as exc:  # over its budget or rate: recorded, then refused
                access.refusal = exc
        return {"key_id": None if key is None else key.id, "tags": access.tags, "key_use": use}

    def complete(self, exchange: Exchange) -> Completion:
        """A non-streaming answer, after retries and fallbacks; the after-request hook records it."""
        exchange.completion = self._call(exchange, lambda route, payload: endpoints.complete(
            exchange.call, route, payload, exchange.body, exchange.conversation))
        return exchange.completion

    def stream(self, exchange: Exchange) -> Iterator[bytes]:
        """Open the upstream stream (retrying while nothing was sent) and relay it."""
        events = self._call(exchange, lambda route, payload: open_primed(
            route.provider, lambda: endpoints.open_stream(exchange.call, route, payload, exchange.body,
                                                          exchange.conversation)))
        exchange.streaming = True
        self.telemetry.sink.stream_opened()
        return relay(
            events,
            dialect=endpoints.dialect(exchange.call, exchange.route, exchange.body, started=exchange.started),
            finish=lambda outcome: self._finish(exchange, outcome),
            outcome=lambda **kwargs: stream_outcome(exchange.call, exchange.body, **kwargs),
        )

    def _call_of(self, endpoint: str, body: dict[str, Any]) -> Call:
        if endpoint != "responses":
            return Call(endpoint=endpoint)
        items = input_items(body)
        previous = body.get("previous_response_id")
        if previous and self.previous_items is not None:
            items = self.previous_items(previous) + items  # the earlier turns, rebuilt from the audit trail
        return Call(endpoint=endpoint, response_id=response_id(), items=items, referable=body.get("store") is not False)

    def finish_response(self, exchange: Exchange, *, status_code: int, body: Any) -> None:
        """Record a non-streaming exchange from the response the client got."""
        if exchange.streaming:
            return
        if exchange.completion is not None and status_code < 400:
            outcome = completion_outcome(exchange.call, exchange.body, exchange.completion, status_code,
                                         store_vectors=self.store_embedding_vectors)
        else:
            outcome = Outcome(
                status="error", status_code=status_code,
                openai_response=body if isinstance(body, dict) else None,
                error=error_text(body),
            )
        self._finish(exchange, outcome)

    def abandon(self, exchange: Exchange) -> None:
        """A stream the server closed without ever iterating: the client never got it."""
        if not exchange.ended:
            self._finish(exchange, Outcome(
                status="incomplete", status_code=200, client_disconnected=True,
                error="The stream was closed before it started.",
            ))

    def _call(self, exchange: Exchange, call: Callable[[Route, dict[str, Any]], T]) -> T:
        def build(route: Route) -> dict[str, Any]:
            return endpoints.build(exchange.call, route, exchange.body, exchange.conversation)

        route, payload, result = call_with_fallbacks(
            exchange.routes, first_payload=exchange.payload, build=build, call=call,
            deadline=exchange.deadline, attempts=exchange.attempts,
        )
        exchange.route, exchange.payload = route, payload
        return result

    def _finish(self, exchange: Exchange, outcome: Outcome) -> None:
        if exchange.ended:
            return
        exchange.ended = True
        if exchange.streaming:
            self.telemetry.sink.stream_closed()
        attempts = exchange.attempts
        outcome.provider = attempts[-1].provider if attempts else exchange.route.provider.name
        outcome.attempts = attempts
        outcome.response_id = exchange.call.response_id
        outcome.referable = exchange.call.referable
        if exchange.span is not None:
            call_headers.set(None)
            self.tracing.end(exchange.span, outcome, request_body=exchange.body)
        if self.audit is not None and exchange.record is not None:
            request = exchange.record.request_row
            outcome.cost_usd = self._priced(request, outcome)
            self.audit.close(exchange.record, outcome)
        elif self.audit is None:
            self.telemetry.ended(
                request_id=None, session_id=None, path=CLIENT_PATHS.get(exchange.call.endpoint, ""),
                provider=exchange.route.provider.name, model=exchange.route.model, outcome=outcome,
                duration_s=time.perf_counter() - exchange.started, stream=exchange.stream,
            )

    def _priced(self, request: dict[str, Any], outcome: Outcome) -> float | None:
        """The call's cost by MODEL_PRICES (None: not priced), counted against its gateway key."""
        if not self.prices or outcome.prompt_tokens is None:
            return None
        cost = call_cost(self.prices, provider=request["provider"], model=request["model"],
                         prompt_tokens=outcome.prompt_tokens, completion_tokens=outcome.completion_tokens)
        if self.keys is not None and request.get("key_id") is not None and cost is not None:
            self.keys.spent(request["key_id"], cost)
        return cost

"""OpenTelemetry traces of model calls, after the GenAI semantic conventions (imported only when configured).

One CLIENT span per call (``chat {model}``, ``embeddings {model}``, ...), continuing the
client's W3C ``traceparent``; one child span per upstream attempt; the trace passed on to the
upstream. Spans are exported over OTLP/HTTP by a batch processor in the background: a call only
queues its span (a full queue drops it), so an unreachable collector never slows or fails a call.
Message content is recorded only with OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from app.services.audit.records import Outcome

log = logging.getLogger(__name__)

# gen_ai.operation.name of each endpoint.
OPERATIONS = {"chat": "chat", "embeddings": "embeddings", "completions": "text_completion",
              "responses": "generate_content"}
_propagator = TraceContextTextMapPropagator()


class Tracing:
    """This process's tracer: its own provider (no global state), exporting in the background."""

    def __init__(self, *, capture_content: bool, exporter: Any = None) -> None:
        self.capture_content = capture_content
        self.provider = TracerProvider(resource=Resource.create({"service.name": "provider-router"}))
        self.provider.add_span_processor(BatchSpanProcessor(exporter or OTLPSpanExporter()))
        self.tracer = self.provider.get_tracer("provider-router")

    def start(self, *, endpoint: str, model: str | None, provider: str, base_url: str,
              incoming: Mapping[str, str]) -> Any:
        """The call's span, a child of the client's ``traceparent`` when it sent one."""
        operation = OPERATIONS.get(endpoint, endpoint)
        parent = _propagator.extract(incoming) if incoming.get("traceparent") else None
        address = urlsplit(base_url)
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": operation, "gen_ai.provider.name": provider,
            "gen_ai.request.model": model or "",
        }
        if address.hostname:
            attributes["server.address"] = address.hostname
            attributes["server.port"] = address.port or (443 if address.scheme == "https" else 80)
        return self.tracer.start_span(f"{operation} {model or ''}".strip(), context=parent, kind=SpanKind.CLIENT,
                                      attributes=attributes)

    @staticmethod
    def trace_id(span: Any) -> str:
        return format(span.get_span_context().trace_id, "032x")

    @staticmethod
    def upstream_headers(span: Any) -> dict[str, str]:
        """``traceparent`` (and ``tracestate``) for the upstream: the call's span is its parent."""
        carrier: dict[str, str] = {}
        _propagator.inject(carrier, context=trace.set_span_in_context(span))
        return carrier

    def end(self, span: Any, outcome: Outcome, *, request_body: Mapping[str, Any] | None) -> None:
        """Attempts as child spans, the answer's attributes, the error if any; then the span is queued."""
        parent = trace.set_span_in_context(span)
        for attempt in outcome.attempts:
            started = attempt.started_at * 1_000_000
            child = self.tracer.start_span(
                f"attempt {attempt.number} {attempt.provider}", context=parent, kind=SpanKind.CLIENT,
                start_time=started, attributes={"gen_ai.provider.name": attempt.provider,
                                                "gen_ai.request.model": attempt.model},
            )
            if attempt.status_code is not None:
                child.set_attribute("http.response.status_code", attempt.status_code)
            if attempt.error is not None:
                child.set_attribute("error.type", attempt.reason or str(attempt.status_code or "error"))
                child.set_status(StatusCode.ERROR)
            child.end(end_time=started + attempt.duration_ms * 1_000_000)
        answer = _answer(outcome.openai_response)
        if outcome.provider:
            span.set_attribute("gen_ai.provider.name", outcome.provider)
        if isinstance(answer.get("model"), str):
            span.set_attribute("gen_ai.response.model", answer["model"])
        if isinstance(answer.get("id"), str):
            span.set_attribute("gen_ai.response.id", answer["id"])
        if outcome.finish_reason:
            span.set_attribute("gen_ai.response.finish_reasons", [outcome.finish_reason])
        if outcome.prompt_tokens is not None:
            span.set_attribute("gen_ai.usage.input_tokens", outcome.prompt_tokens)
        if outcome.completion_tokens is not None:
            span.set_attribute("gen_ai.usage.output_tokens", outcome.completion_tokens)
        if outcome.status != "ok":
            span.set_attribute("error.type", str(outcome.status_code) if outcome.status == "error"
                               and outcome.status_code else outcome.status)
            span.set_status(StatusCode.ERROR, (outcome.error or "")[:200])
        if self.capture_content:
            if request_body is not None:
                asked = {key: request_body[key] for key in ("messages", "input", "prompt", "instructions")
                         if key in request_body}
                span.set_attribute("gen_ai.input.messages", json.dumps(asked, ensure_ascii=False))
            if answer:
                span.set_attribute("gen_ai.output.messages", json.dumps(answer, ensure_ascii=False))
        span.end()

    def fail(self, span: Any, error: Exception) -> None:
        """A call refused before it was made (no provider request, no audit record)."""
        span.set_attribute("error.type", getattr(error, "code", None) or type(error).__name__)
        span.set_status(StatusCode.ERROR)
        span.end()

    def flush(self, timeout_s: float = 5.0) -> None:
        self.provider.force_flush(int(timeout_s * 1000))

    def shutdown(self) -> None:
        self.provider.shutdown()


def _answer(response: Any) -> dict[str, Any]:
    """The client's answer as a dict (a relayed answer is stored as its text)."""
    if isinstance(response, dict):
        return response
    if isinstance(response, str) and response.startswith("{"):
        try:
            value = json.loads(response)
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {}
    return {}

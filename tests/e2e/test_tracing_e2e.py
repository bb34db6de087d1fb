"""OpenTelemetry through real gunicorn: an in-test OTLP/HTTP receiver gets one GenAI span per call and a
child per upstream attempt; a client's traceparent is continued and reaches the upstream; the trace id is
stored with the request; message content only when opted in."""

from __future__ import annotations

import uuid

import pytest
import requests

from app import migrate
from app.db import dispose_engines
from tests.e2e.otlp import attribute_values, header_keeping_upstream, otlp_receiver
from tests.faults import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]

CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"


@pytest.fixture
def traced(start_gateway, tmp_path, request):
    """(base URL, OTLP receiver, upstream) for a gateway exporting to the receiver."""
    url = f"sqlite:///{tmp_path / 'gateway.db'}"
    migrate.upgrade(url)
    dispose_engines()
    with otlp_receiver() as (collector, receiver), header_keeping_upstream() as (upstream_url, upstream):
        env = {"DATABASE_URL": url, "DEFAULT_PROVIDER": "lm-studio", "LM_STUDIO_BASE_URL": upstream_url,
               "OTEL_EXPORTER_OTLP_ENDPOINT": collector, "OTEL_BSP_SCHEDULE_DELAY": "100",
               "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": getattr(request, "param", "false")}
        with start_gateway(env) as base:
            yield base, receiver, upstream


def call(base: str, text: str, *, model: str = "traced-model", headers: dict | None = None) -> requests.Response:
    return requests.post(base + "/v1/chat/completions", timeout=30, headers={"Connection": "close", **(headers or {})},
                         json={"model": model, "messages": [{"role": "user", "content": text}]})


def test_a_span_per_call_with_genai_attributes_continuing_the_clients_trace(traced):
    base, receiver, upstream = traced
    secret_prompt = f"prompt {uuid.uuid4()}"
    reply = call(base, secret_prompt, headers={"traceparent": f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"})
    assert reply.status_code == 200
    others = [call(base, f"untraced {n}") for n in range(3)]
    assert [other.status_code for other in others] == [200] * 3
    assert wait_until(lambda: len(receiver.named("chat ")) == 4, timeout_s=15)
    spans = receiver.named("chat ")
    assert len(spans) == 4  # one per call, no more

    continued = [span for span in spans if span.trace_id.hex() == CLIENT_TRACE]
    assert len(continued) == 1
    span = continued[0]
    assert span.parent_span_id.hex() == CLIENT_SPAN
    assert span.name == "chat traced-model"
    assert span.kind == 3  # SPAN_KIND_CLIENT
    attributes = attribute_values(span)
    port = int(upstream_port(upstream_url_of(base)))
    assert attributes == {
        "gen_ai.operation.name": "chat", "gen_ai.provider.name": "lm-studio", "gen_ai.request.model": "traced-model",
        "server.address": "127.0.0.1", "server.port": port,
        "gen_ai.response.model": "traced-model-2026", "gen_ai.response.id": "chatcmpl-traced",
        "gen_ai.response.finish_reasons": ["stop"], "gen_ai.usage.input_tokens": 7, "gen_ai.usage.output_tokens": 2,
    }
    # The upstream was called inside the same trace, as a child of the call's span.
    forwarded = [h["traceparent"] for h in upstream.headers
                 if h.get("traceparent", "").startswith("00-" + CLIENT_TRACE)]
    assert forwarded == [f"00-{CLIENT_TRACE}-{span.span_id.hex()}-01"]
    assert len({h["traceparent"].split("-")[1] for h in upstream.headers}) == 4  # the others: a trace each
    attempts = [s for s in receiver.named("attempt ") if s.trace_id.hex() == CLIENT_TRACE]
    assert [(a.name, a.parent_span_id) for a in attempts] == [("attempt 1 lm-studio", span.span_id)]
    # Stored with the request and shown by the history API; no content without the opt-in.
    stored = requests.get(base + f"/v1/requests/{reply.headers['X-Request-Id']}", timeout=5).json()
    assert stored["trace_id"] == CLIENT_TRACE
    assert all("gen_ai.input.messages" not in attribute_values(s) for s in spans)


def upstream_url_of(base: str) -> str:
    return requests.get(base + "/health", timeout=5).json()["providers"]["lm-studio"]["base_url"]


def upstream_port(url: str) -> str:
    return url.split(":")[-1].split("/")[0]


def test_a_refused_call_has_its_error_on_the_span(traced):
    base, receiver, _ = traced
    assert call(base, "no", model="refuse").status_code == 400
    assert wait_until(lambda: receiver.named("chat refuse"), timeout_s=15)
    span = receiver.named("chat refuse")[0]
    assert attribute_values(span)["error.type"] == "400"
    assert span.status.code == 2  # STATUS_CODE_ERROR
    assert wait_until(lambda: receiver.named("attempt 1"), timeout_s=15)
    assert attribute_values(receiver.named("attempt 1")[0])["http.response.status_code"] == 400


@pytest.mark.parametrize("traced", ["true"], indirect=True)
def test_message_content_only_when_opted_in(traced):
    base, receiver, _ = traced
    assert call(base, "show me in the trace").status_code == 200
    assert wait_until(lambda: receiver.named("chat "), timeout_s=15)
    attributes = attribute_values(receiver.named("chat ")[0])
    assert "show me in the trace" in attributes["gen_ai.input.messages"]
    assert "traced answer" in attributes["gen_ai.output.messages"]

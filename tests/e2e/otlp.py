"""In-test servers for tracing: an OTLP/HTTP receiver (decoded with opentelemetry-proto) and an
OpenAI-compatible upstream that keeps the headers it was sent."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest


def attribute_values(span: Any) -> dict[str, Any]:
    """A protobuf span's attributes as plain values (arrays as lists)."""
    values = {}
    for attribute in span.attributes:
        value = attribute.value
        kind = value.WhichOneof("value")
        if kind == "array_value":
            values[attribute.key] = [getattr(v, v.WhichOneof("value")) for v in value.array_value.values]
        else:
            values[attribute.key] = getattr(value, kind)
    return values


class Receiver:
    """What the collector got: every span, decoded."""

    def __init__(self) -> None:
        self.spans: list[Any] = []
        self.lock = threading.Lock()

    def take(self, body: bytes) -> None:
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        with self.lock:
            for resource_spans in request.resource_spans:
                for scope_spans in resource_spans.scope_spans:
                    self.spans.extend(scope_spans.spans)

    def named(self, prefix: str) -> list[Any]:
        with self.lock:
            return [span for span in self.spans if span.name.startswith(prefix)]


class Upstream:
    """Answers chat completions (``model`` "refuse" gets a 400) and lists one model; keeps each request's headers."""

    def __init__(self) -> None:
        self.headers: list[dict[str, str]] = []


@contextmanager
def serve(handler_class: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler_class)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def otlp_receiver() -> Iterator[tuple[str, Receiver]]:
    receiver = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.path == "/v1/traces":
                receiver.take(body)
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    with serve(Handler) as url:
        yield url, receiver


@contextmanager
def header_keeping_upstream() -> Iterator[tuple[str, Upstream]]:
    upstream = Upstream()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            self._json(200, {"object": "list", "data": [{"id": "traced-model", "object": "model"}]})

        def do_POST(self) -> None:  # noqa: N802
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
            upstream.headers.append({key.lower(): value for key, value in self.headers.items()})
            if body.get("model") == "refuse":
                self._json(400, {"error": {"message": "refused", "type": "invalid_request_error"}})
                return
            self._json(200, {
                "id": "chatcmpl-traced", "object": "chat.completion", "created": 1, "model": "traced-model-2026",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "traced answer"},
                             "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 7, "completion_tokens": 2, "total_tokens": 9},
            })

        def _json(self, status: int, payload: dict) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    with serve(Handler) as url:
        yield url + "/v1", upstream

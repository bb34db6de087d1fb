"""A stream relayed through the app from a real socket: the client gets exactly the bytes sent.

The upstream writes its chunked SSE body in pieces cut at awkward places (inside an event, inside a
chunk's size line, several events in one write), so the gateway's own chunked and SSE decoding
(not urllib3's) is what is under test.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from app.models import Response

MESSAGES = [{"role": "user", "content": "Hello"}]


def event(**delta) -> bytes:
    body = {"id": "chatcmpl-r", "object": "chat.completion.chunk", "created": 1, "model": "m",
            "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
    return b"data: " + json.dumps(body).encode() + b"\n\n"


TOOL = {"index": 0, "id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": ""}}
EVENTS = [
    event(role="assistant", content=""),
    *[event(content=f"tok{n} \u00fc ") for n in range(20)],
    event(tool_calls=[TOOL]),
    event(tool_calls=[{"index": 0, "function": {"arguments": '{"city": '}}]),
    event(tool_calls=[{"index": 0, "function": {"arguments": '"Oslo"}'}}]),
    b'data: {"id":"chatcmpl-r","object":"chat.completion.chunk","created":1,"model":"m",'
    b'"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}\n\n',
    b'data: {"id":"chatcmpl-r","object":"chat.completion.chunk","created":1,"model":"m","choices":[],'
    b'"usage":{"prompt_tokens":9,"completion_tokens":24,"total_tokens":33}}\n\n',
    b"data: [DONE]\n\n",
]
SENT = b"".join(EVENTS)


def wire(cut_body: bool) -> list[bytes]:
    """The response's writes: chunks that split events and hold several, and writes that split chunks."""
    sizes = [7, 300, 1, 2, 900, 5, 64, 2000]
    chunks, position, index = [], 0, 0
    while position < len(SENT):
        piece = SENT[position:position + sizes[index % len(sizes)]]
        chunks.append(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
        position, index = position + len(piece), index + 1
    body = b"".join(chunks) + (b"" if cut_body else b"0\r\n\r\n")
    if cut_body:
        body = body[: len(body) // 2]
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
    data = head + body
    writes, position = [], 0
    for size in (90, 3, 1, 250, 17, 1200):  # a write ends inside the head, a size line, a CRLF, an event
        writes.append(data[position:position + size])
        position += size
    return [*writes, data[position:]]


class Upstream:
    """An HTTP/1.1 server on a real socket: keep-alive, each answer written in awkward pieces."""

    def __init__(self, *, cut_body: bool = False) -> None:
        self.cut_body = cut_body
        self.connections = 0
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            buffer = b""
            while True:
                while b"\r\n\r\n" not in buffer:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buffer += data
                head, buffer = buffer.split(b"\r\n\r\n", 1)
                length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                                  if line.lower().startswith(b"content-length")))
                while len(buffer) < length:
                    buffer += conn.recv(65536)
                buffer = buffer[length:]
                for piece in wire(self.cut_body):
                    conn.sendall(piece)
                    time.sleep(0.002)  # separate reads, most of the time
                if self.cut_body:
                    conn.shutdown(socket.SHUT_WR)
                    return

    def close(self) -> None:
        self.server.close()


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    server = Upstream()
    yield server
    server.close()


@pytest.fixture
def settings(make_settings, upstream):
    return make_settings(lm_studio_base_url=f"http://127.0.0.1:{upstream.port}/v1", request_timeout_ms=5000)


def test_relayed_bytes_are_the_bytes_sent_and_the_answer_is_captured(client, upstream, db_session, flush_audit):
    for _ in range(2):
        reply = client.post("/v1/chat/completions", json={
            "model": "m", "messages": MESSAGES, "stream": True, "stream_options": {"include_usage": True}})
        assert reply.status_code == 200
        assert reply.data == SENT
    assert upstream.connections == 1  # read to its end, the connection went back to the pool
    flush_audit()
    rows = db_session.query(Response).all()
    assert len(rows) == 2
    for row in rows:
        assert row.status == "ok"
        answer = row.openai_response if isinstance(row.openai_response, dict) else json.loads(row.openai_response)
        choice = answer["choices"][0]
        assert choice["message"]["content"] == "".join(f"tok{n} \u00fc " for n in range(20))
        assert choice["message"]["tool_calls"] == [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}]
        assert choice["finish_reason"] == "tool_calls"
        assert (row.prompt_tokens, row.completion_tokens, row.total_tokens) == (9, 24, 33)
        assert row.ttft_ms is not None


@pytest.fixture
def cut_upstream(upstream) -> Upstream:
    upstream.cut_body = True
    return upstream


def test_a_chunked_body_cut_short_ends_the_stream_with_an_error_event(client, cut_upstream, db_session, flush_audit):
    reply = client.post("/v1/chat/completions", json={"model": "m", "messages": MESSAGES, "stream": True})
    relayed = reply.data
    sent_before_cut = relayed[: relayed.rindex(b"data: {\"error\"")]
    assert SENT.startswith(sent_before_cut)
    error = json.loads(relayed[relayed.rindex(b"data: {\"error\"") + 6:].split(b"\n\n")[0])
    assert "dropped the stream" in error["error"]["message"]
    assert relayed.endswith(b"data: [DONE]\n\n")
    flush_audit()
    assert db_session.query(Response).one().status == "incomplete"
